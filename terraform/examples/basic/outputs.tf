output "function_name" {
  description = "Name of the rotation function."
  value       = module.bluum_rotator.function_name
}

output "secret_arns" {
  description = "The managed secrets: put the current key pair into each once."
  value       = module.bluum_rotator.secret_arns
}

output "manager_secret_arn" {
  description = "The secret to put the managing (tenant) key into."
  value       = module.bluum_rotator.manager_secret_arn
}

output "log_group_name" {
  description = "Where the function logs each step."
  value       = module.bluum_rotator.log_group_name
}
