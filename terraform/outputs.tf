output "function_name" {
  description = "Name of the rotation function (its logs are in log_group_name)."
  value       = aws_lambda_function.rotator.function_name
}

output "function_arn" {
  description = "ARN of the rotation function, as Secrets Manager invokes it."
  value       = aws_lambda_function.rotator.arn
}

output "handler" {
  description = "The handler the function runs (it must exist in the package: rotator/aws_lambda/__init__.py re-exports it from entry.py)."
  value       = aws_lambda_function.rotator.handler
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.rotator.arn
}

output "secret_arns" {
  description = "ARN of each managed secret, by name: put the current key pair into each once (README, \"First rotation\")."
  value       = { for name, secret in aws_secretsmanager_secret.managed : name => secret.arn }
}

output "manager_secret_arn" {
  description = "ARN of the secret holding the managing (tenant) key: the one given, or the one created (put the key into it once)."
  value       = local.manager_secret_arn
}

output "ledger_table_name" {
  description = "Name of the DynamoDB table holding each rotation's record and lease."
  value       = aws_dynamodb_table.ledger.name
}

output "ledger_table_arn" {
  description = "ARN of the ledger table."
  value       = aws_dynamodb_table.ledger.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the function: one JSON record per rotation step and per secret on each tick."
  value       = aws_cloudwatch_log_group.rotator.name
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic the alarms notify: the one given, or the one created."
  value       = local.alarm_topic_arn
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms: function errors, failed rotations, overdue keys, Bluum 5xx and 429."
  value = concat(
    [aws_cloudwatch_metric_alarm.errors.alarm_name],
    [for alarm in aws_cloudwatch_metric_alarm.metric : alarm.alarm_name],
  )
}

output "tick_rule_name" {
  description = "Name of the EventBridge rule that runs the tick."
  value       = aws_cloudwatch_event_rule.tick.name
}
