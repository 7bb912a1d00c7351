# `terraform test` with a mocked AWS provider: no credentials, no network. Run from terraform/ after `make lambda-zip`
# (tests/integration/test_terraform.py runs it in a copy, with the package built there).

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  lambda_zip_path = "../build/bluum-rotator-lambda.zip"
  secrets = {
    "bluum/test/api-key" = {
      environment = "sandbox"
      investor_id = "inv_test"
    }
  }
}

run "defaults_rotate_every_90_days" {
  command = plan

  assert {
    condition     = aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotation_rules[0].automatically_after_days == 90
    error_message = "rotation must default to every 90 days"
  }
  assert {
    condition     = aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotation_rules[0].schedule_expression == null
    error_message = "no schedule expression unless one is given"
  }
  assert {
    condition     = aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotate_immediately == false
    error_message = "the first rotation must wait until the placeholder is replaced"
  }
  assert {
    condition     = aws_lambda_function.rotator.handler == "rotator.aws_lambda.handler" && aws_lambda_function.rotator.runtime == "python3.12"
    error_message = "handler and runtime are the package's"
  }
  assert {
    condition     = aws_lambda_function.rotator.reserved_concurrent_executions == 2 && aws_lambda_function.rotator.environment[0].variables["ROTATOR_CONCURRENCY"] == "2"
    error_message = "reserved concurrency defaults to 2, and the function is told so (its share of the manager key's rate)"
  }
  assert {
    condition     = aws_cloudwatch_log_group.rotator.retention_in_days == 365
    error_message = "logs are kept a year by default"
  }
  assert {
    condition     = jsondecode(aws_secretsmanager_secret_version.placeholder["bluum/test/api-key"].secret_string) == { environment = "sandbox", investor_id = "inv_test" }
    error_message = "the placeholder holds the fields that are not the key, and no made-up key"
  }
  assert {
    condition     = length(aws_sns_topic.alarms) == 1 && length(aws_secretsmanager_secret.manager) == 1
    error_message = "the alarm topic and the manager secret are created when not given"
  }
  assert {
    condition     = length(aws_kms_key.rotator) == 1 && aws_kms_key.rotator[0].enable_key_rotation
    error_message = "a customer-managed key, rotated, is created by default"
  }
  assert {
    condition     = aws_dynamodb_table.ledger.hash_key == "ledger_id" && aws_dynamodb_table.ledger.billing_mode == "PAY_PER_REQUEST"
    error_message = "the ledger table is keyed by ledger_id, on demand"
  }
  assert {
    condition     = aws_cloudwatch_event_target.tick.input == jsonencode({ rotator = "tick" })
    error_message = "the schedule sends the tick event"
  }
}

run "permissions_are_scoped_to_their_source" {
  command = apply

  assert {
    condition     = aws_lambda_permission.secretsmanager["bluum/test/api-key"].principal == "secretsmanager.amazonaws.com"
    error_message = "Secrets Manager is the principal that may invoke the rotation"
  }
  assert {
    condition     = aws_lambda_permission.secretsmanager["bluum/test/api-key"].source_arn == aws_secretsmanager_secret.managed["bluum/test/api-key"].arn
    error_message = "the permission is scoped to the managed secret's ARN"
  }
  assert {
    condition     = aws_lambda_permission.tick.principal == "events.amazonaws.com" && aws_lambda_permission.tick.source_arn == aws_cloudwatch_event_rule.tick.arn
    error_message = "EventBridge may invoke the function only from the tick rule"
  }
  assert {
    condition     = jsondecode(aws_lambda_function.rotator.environment[0].variables["ROTATOR_SECRETS"]) == { (aws_secretsmanager_secret.managed["bluum/test/api-key"].arn) = { investor_id = "inv_test", environment = "sandbox" } }
    error_message = "the function manages exactly the module's secrets, each with the investor and environment of `secrets`"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.rotator.environment[0].variables), "ROTATOR_ALLOWED_HOSTS")
    error_message = "no host beyond Bluum's own unless allowed_hosts names one"
  }
  assert {
    condition     = aws_secretsmanager_secret.managed["bluum/test/api-key"].kms_key_id == aws_kms_key.rotator[0].arn && aws_secretsmanager_secret.manager[0].kms_key_id == aws_kms_key.rotator[0].arn
    error_message = "the secrets are encrypted with the key the module creates"
  }
  assert {
    condition     = aws_lambda_function.rotator.kms_key_arn == aws_kms_key.rotator[0].arn && aws_cloudwatch_log_group.rotator.kms_key_id == aws_kms_key.rotator[0].arn && aws_sns_topic.alarms[0].kms_master_key_id == aws_kms_key.rotator[0].arn && aws_dynamodb_table.ledger.server_side_encryption[0].kms_key_arn == aws_kms_key.rotator[0].arn
    error_message = "the function's environment, logs, alarm topic and ledger use the created key too"
  }
  assert {
    condition     = aws_secretsmanager_secret_policy.manager[0].secret_arn == aws_secretsmanager_secret.manager[0].arn && aws_secretsmanager_secret_policy.manager[0].block_public_policy
    error_message = "the manager secret the module creates has its resource policy"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_LEDGER_TABLE"] == "bluum-rotator-ledger"
    error_message = "the function is told its ledger table"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_VERIFY_TIMEOUT"] == "60s" && aws_lambda_function.rotator.environment[0].variables["ROTATOR_GRACE"] == "1h"
    error_message = "durations are passed in the rotator's own spelling"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_LEASE_TTL"] == "900s"
    error_message = "the lease lasts 15 minutes unless lease_ttl_seconds says otherwise"
  }
}

run "lease_ttl_is_passed_to_the_function" {
  command = plan

  variables {
    lease_ttl_seconds = 120
  }

  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_LEASE_TTL"] == "120s"
    error_message = "lease_ttl_seconds reaches the function as ROTATOR_LEASE_TTL"
  }
}

run "lease_shorter_than_two_bluum_calls_is_refused" {
  command = plan

  variables {
    lease_ttl_seconds = 79
  }

  expect_failures = [var.lease_ttl_seconds]
}

run "lease_of_a_fraction_of_a_second_is_refused" {
  command = plan

  variables {
    lease_ttl_seconds = 90.5
  }

  expect_failures = [var.lease_ttl_seconds]
}

run "schedule_expression_replaces_days" {
  command = plan

  variables {
    rotation_days                = null
    rotation_schedule_expression = "rate(30 days)"
    rotation_window              = "4h"
  }

  assert {
    condition     = aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotation_rules[0].automatically_after_days == null
    error_message = "AutomaticallyAfterDays and ScheduleExpression are exclusive"
  }
  assert {
    condition     = aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotation_rules[0].schedule_expression == "rate(30 days)" && aws_secretsmanager_secret_rotation.managed["bluum/test/api-key"].rotation_rules[0].duration == "4h"
    error_message = "the schedule and its window are passed through"
  }
}

run "given_topic_and_manager_secret_are_used" {
  command = plan

  variables {
    alarm_topic_arn    = "arn:aws:sns:us-east-1:123456789012:ops"
    manager_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/manager-XyZ123"
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 0 && length(aws_secretsmanager_secret.manager) == 0
    error_message = "nothing is created for what is given"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.errors.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:ops"])
    error_message = "the alarms notify the given topic"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_MANAGER_SECRET_ID"] == "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/manager-XyZ123"
    error_message = "the function reads the given manager secret"
  }
}

run "days_and_schedule_together_are_refused" {
  command = plan

  variables {
    rotation_schedule_expression = "rate(30 days)"
  }

  expect_failures = [aws_secretsmanager_secret_rotation.managed]
}

run "rotation_days_out_of_range_is_refused" {
  command = plan

  variables {
    rotation_days = 1001
  }

  expect_failures = [var.rotation_days]
}

run "short_log_retention_is_refused" {
  command = plan

  variables {
    log_retention_days = 14
  }

  expect_failures = [var.log_retention_days]
}

run "ten_instances_are_refused" {
  command = plan

  variables {
    reserved_concurrency = 10
  }

  expect_failures = [var.reserved_concurrency]
}

run "timeout_shorter_than_verification_is_refused" {
  command = plan

  variables {
    timeout_seconds        = 60
    verify_timeout_seconds = 60
  }

  expect_failures = [aws_lambda_function.rotator]
}

run "given_kms_key_is_used_and_none_created" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"
  }

  assert {
    condition     = length(aws_kms_key.rotator) == 0
    error_message = "no key is created when one is given"
  }
  assert {
    condition     = aws_lambda_function.rotator.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"
    error_message = "the given key is used"
  }
}

run "without_a_customer_managed_key_when_asked" {
  command = plan

  variables {
    create_kms_key = false
  }

  assert {
    condition     = length(aws_kms_key.rotator) == 0 && aws_lambda_function.rotator.kms_key_arn == null
    error_message = "create_kms_key = false leaves the AWS-managed keys"
  }
}

run "an_undocumented_bluum_host_is_refused" {
  command = plan

  variables {
    secrets = {
      "bluum/test/api-key" = {
        environment = "sandbox"
        investor_id = "inv_test"
        base_url    = "https://bluum.attacker.example/v1"
      }
    }
  }

  expect_failures = [aws_lambda_function.rotator]
}

run "a_host_the_deployer_names_is_allowed" {
  command = plan

  variables {
    allowed_hosts = ["bluum-proxy.internal.example"]
    secrets = {
      "bluum/test/api-key" = {
        environment = "sandbox"
        investor_id = "inv_test"
        base_url    = "https://bluum-proxy.internal.example/v1"
      }
    }
  }

  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_ALLOWED_HOSTS"] == "bluum-proxy.internal.example"
    error_message = "the named host is passed to the function"
  }
}

run "a_production_secret_on_a_sandbox_host_is_refused" {
  command = plan

  variables {
    secrets = {
      "bluum/test/api-key" = {
        environment = "production"
        investor_id = "inv_test"
        base_url    = "https://sandbox.api.bluumfinance.com/v1"
      }
    }
  }

  expect_failures = [aws_lambda_function.rotator]
}
