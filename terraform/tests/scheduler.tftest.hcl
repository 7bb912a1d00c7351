# `terraform test` of scheduler = "tick" with a mocked AWS provider (tests/mocks/aws.tfmock.hcl): no Secrets
# Manager rotation rule, the function told to schedule, and what is refused. tests/integration/test_terraform_scheduler.py
# runs this file alone.

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


run "tick_scheduler_configures_no_rotation_rule_and_tells_the_function" {
  command = plan

  variables {
    scheduler = "tick"
    windows = {
      timezone          = "Europe/Berlin"
      allow             = [{ cron = "0 22 * * *", duration = "4h" }]
      deny              = [{ cron = "0 0 20 12 *", duration = "14d" }]
      expiry_lead       = "21d"
      starts_per_window = 20
    }
  }

  assert {
    condition     = length(aws_secretsmanager_secret_rotation.managed) == 0
    error_message = "with the tick as the scheduler, Secrets Manager has no rotation rule (its schedule would not be gated)"
  }
  assert {
    condition     = length(aws_lambda_permission.secretsmanager) == 0
    error_message = "Secrets Manager is not allowed to invoke the function: it runs no rotation"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_SCHEDULER"] == "tick"
    error_message = "the function is told that its tick starts due rotations"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_ROTATE_EVERY"] == "90d" && aws_lambda_function.rotator.environment[0].variables["ROTATOR_SEEDED_KEY_AGE"] == "count"
    error_message = "rotation_days becomes the function's rotation period; a key put in by hand is dated, not rotated at once"
  }
  assert {
    condition     = jsondecode(aws_lambda_function.rotator.environment[0].variables["ROTATOR_WINDOWS"]).allow[0].cron == "0 22 * * *" && jsondecode(aws_lambda_function.rotator.environment[0].variables["ROTATOR_WINDOWS"]).starts_per_window == 20 && jsondecode(aws_lambda_function.rotator.environment[0].variables["ROTATOR_WINDOWS"]).timezone == "Europe/Berlin"
    error_message = "the windows reach the function as ROTATOR_WINDOWS"
  }
  assert {
    condition     = aws_cloudwatch_event_target.tick.input == jsonencode({ rotator = "tick" })
    error_message = "the tick is still scheduled, with the same event"
  }
}

run "tick_scheduler_rotates_immediately_when_asked" {
  command = plan

  variables {
    scheduler          = "tick"
    rotation_days      = 30
    rotate_immediately = true
  }

  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_ROTATE_EVERY"] == "30d" && aws_lambda_function.rotator.environment[0].variables["ROTATOR_SEEDED_KEY_AGE"] == "due"
    error_message = "rotate_immediately makes the first tick rotate a key put in by hand"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.rotator.environment[0].variables), "ROTATOR_WINDOWS")
    error_message = "no windows unless given"
  }
}

run "default_scheduler_is_secrets_manager" {
  command = plan

  assert {
    condition     = length(aws_secretsmanager_secret_rotation.managed) == 1 && length(aws_lambda_permission.secretsmanager) == 1
    error_message = "by default Secrets Manager's rotation rule rotates, as before"
  }
  assert {
    condition     = aws_lambda_function.rotator.environment[0].variables["ROTATOR_SCHEDULER"] == "secrets_manager" && !contains(keys(aws_lambda_function.rotator.environment[0].variables), "ROTATOR_ROTATE_EVERY")
    error_message = "the function is told Secrets Manager schedules, and gets none of the tick's settings"
  }
}

run "windows_without_the_tick_scheduler_are_refused" {
  command = plan

  variables {
    windows = { allow = [{ cron = "0 22 * * *", duration = "4h" }] }
  }

  expect_failures = [aws_lambda_function.rotator]
}

run "tick_scheduler_with_a_schedule_expression_is_refused" {
  command = plan

  variables {
    scheduler                    = "tick"
    rotation_days                = null
    rotation_schedule_expression = "rate(30 days)"
  }

  expect_failures = [aws_lambda_function.rotator]
}

run "tick_scheduler_over_90_days_is_refused" {
  command = plan

  variables {
    scheduler     = "tick"
    rotation_days = 120
  }

  expect_failures = [aws_lambda_function.rotator]
}

run "an_unknown_scheduler_is_refused" {
  command = plan

  variables {
    scheduler = "cron"
  }

  expect_failures = [var.scheduler]
}
