variable "region" {
  type        = string
  description = "AWS region to deploy into."
  default     = "us-east-1"
}

variable "name" {
  type        = string
  description = "Name of the function and prefix of the other resources."
  default     = "bluum-rotator-example"
}

variable "lambda_zip_path" {
  type        = string
  description = "The package built by `make lambda-zip`, relative to this folder by default."
  default     = "../../../build/bluum-rotator-lambda.zip"
}

variable "alarm_emails" {
  type        = list(string)
  description = "Addresses that receive the alarms (each confirms the subscription by e-mail)."
  default     = []
}
