# The smallest useful deployment: one managed secret, the manager secret and the alarm topic created by the module.
#
#   make lambda-zip                      # in the bluum-rotator checkout: build/bluum-rotator-lambda.zip
#   cd terraform/examples/basic
#   terraform init && terraform apply
#
# Then follow the module README's "First rotation".

provider "aws" {
  region = var.region
}

module "bluum_rotator" {
  source = "../.."

  name            = var.name
  lambda_zip_path = var.lambda_zip_path

  secrets = {
    "bluum/example/api-key" = {
      environment = "sandbox"
      investor_id = "inv_example"
    }
  }

  alarm_emails = var.alarm_emails

  # So that `terraform destroy` removes everything; keep the default (true) for real deployments.
  ledger_deletion_protection = false
}
