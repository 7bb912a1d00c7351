data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  tags = merge({ "bluum-rotator" = var.name }, var.tags)

  handler = "rotator.aws_lambda.handler"

  create_manager_secret = var.manager_secret_arn == null
  manager_secret_arn    = local.create_manager_secret ? aws_secretsmanager_secret.manager[0].arn : var.manager_secret_arn

  managed_secret_arns = [for name in sort(keys(var.secrets)) : aws_secretsmanager_secret.managed[name].arn]

  create_alarm_topic = var.alarm_topic_arn == null
  alarm_topic_arn    = local.create_alarm_topic ? aws_sns_topic.alarms[0].arn : var.alarm_topic_arn

  log_group_name = "/aws/lambda/${var.name}"

  # scheduler = "tick": no Secrets Manager rotation rule; the tick starts due rotations (ROTATOR_SCHEDULER).
  tick_schedules = var.scheduler == "tick"
  sm_rotated     = local.tick_schedules ? {} : var.secrets
  windows_config = var.windows == null ? "" : jsonencode(var.windows)
  # What the tick decides with when it is the scheduler; nothing of it applies to Secrets Manager's rule.
  tick_config = local.tick_schedules ? merge(
    {
      ROTATOR_ROTATE_EVERY   = "${coalesce(var.rotation_days, 90)}d"
      ROTATOR_SEEDED_KEY_AGE = var.rotate_immediately ? "due" : "count"
    },
    var.windows == null ? {} : { ROTATOR_WINDOWS = local.windows_config },
  ) : {}
  in_vpc = length(var.vpc_subnet_ids) > 0

  # The customer-managed key: the one given, or the one created (by default), or none (AWS-managed keys).
  create_kms_key = var.kms_key_arn == null && var.create_kms_key
  use_kms_key    = var.kms_key_arn != null || var.create_kms_key
  kms_key_arn    = local.create_kms_key ? aws_kms_key.rotator[0].arn : var.kms_key_arn

  # What the function trusts about each managed secret (ROTATOR_SECRETS): by ARN, its investor, environment and base
  # URL. The secret's own JSON is never trusted for these; one that disagrees is refused.
  managed_config = jsonencode({
    for name, s in var.secrets : aws_secretsmanager_secret.managed[name].arn => {
      for field, value in {
        investor_id = s.investor_id
        environment = s.environment
        base_url    = s.base_url
      } : field => value if value != null
    }
  })

  # Bluum's documented hosts (docs/bluum-api.md §3), by environment; anything else must be named in allowed_hosts.
  bluum_hosts = {
    sandbox    = ["sandbox.api.bluumfinance.com", "test-service.bluumfinance.com", "sandbox.api.bluum.finance"]
    production = ["api.bluumfinance.com", "service.bluumfinance.com", "api.bluum.finance"]
  }
  base_url_hosts = {
    for name, s in var.secrets : name => lower(regex("^https://([^/:]+)", s.base_url)[0]) if s.base_url != null
  }
  unlisted_base_urls = [
    for name, host in local.base_url_hosts : name if !contains(
      concat(local.bluum_hosts[var.secrets[name].environment], [for h in var.allowed_hosts : split(":", h)[0]]),
      host
    )
  ]

  # What an empty secret holds until the key applications use is put in: the fields that are not the key, so the
  # rotator's first read says "no api_key field yet" rather than finding a made-up key.
  placeholders = {
    for name, s in var.secrets : name => jsonencode({
      for field, value in {
        environment = s.environment
        base_url    = s.base_url
        investor_id = s.investor_id
      } : field => value if value != null
    })
  }
}

# ---------------------------------------------------------------------------------------------------------------------
# The secrets. Seeded once with a placeholder; the rotator owns the value from then on, and Terraform never writes it
# again (`ignore_changes`). A plan after any number of rotations shows no change here.
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_secretsmanager_secret" "managed" {
  for_each = var.secrets

  name                    = each.key
  description             = each.value.description
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
  tags                    = merge(local.tags, each.value.tags)
}

resource "aws_secretsmanager_secret_version" "placeholder" {
  for_each = var.secrets

  secret_id     = aws_secretsmanager_secret.managed[each.key].id
  secret_string = local.placeholders[each.key]

  lifecycle {
    # The rotator puts every later version and moves AWSCURRENT off this one; Terraform must not put it back.
    ignore_changes = [secret_string, version_stages]
  }
}

resource "aws_secretsmanager_secret_rotation" "managed" {
  # None with scheduler = "tick": then only the function's tick starts rotations, inside the windows.
  for_each = local.sm_rotated

  secret_id           = aws_secretsmanager_secret.managed[each.key].id
  rotation_lambda_arn = aws_lambda_function.rotator.arn
  rotate_immediately  = var.rotate_immediately

  rotation_rules {
    automatically_after_days = var.rotation_days
    schedule_expression      = var.rotation_schedule_expression
    duration                 = var.rotation_window
  }

  lifecycle {
    precondition {
      condition     = (var.rotation_days == null) != (var.rotation_schedule_expression == null)
      error_message = "Give exactly one of rotation_days and rotation_schedule_expression: with a schedule expression, set rotation_days = null."
    }
  }

  # Secrets Manager checks that it may invoke the function when rotation is configured, and rotation of a secret
  # without any version fails: both must exist first.
  depends_on = [aws_lambda_permission.secretsmanager, aws_secretsmanager_secret_version.placeholder]
}

resource "aws_secretsmanager_secret" "manager" {
  #checkov:skip=CKV2_AWS_57:The manager (tenant) key is not rotated by this function: it is the key that mints and revokes the others, and Bluum rotates it from the dashboard.
  count = local.create_manager_secret ? 1 : 0

  name                    = "${var.name}/manager"
  description             = "The Bluum managing (tenant) key bluum-rotator mints and revokes keys with"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "manager_placeholder" {
  count = local.create_manager_secret ? 1 : 0

  secret_id     = aws_secretsmanager_secret.manager[0].id
  secret_string = jsonencode({})

  lifecycle {
    ignore_changes = [secret_string, version_stages]
  }
}

# The tenant key mints and revokes every investor key: only the function's role and the principals the deployer names
# (manager_secret_readers) may read it, whatever else IAM grants in the account. One exception keeps Terraform's own
# refresh working: the placeholder version, which holds "{}" for ever (a version's value never changes), read by its id.
data "aws_iam_policy_document" "manager" {
  count = local.create_manager_secret ? 1 : 0

  statement {
    sid       = "OnlyTheRotatorAndNamedReadersReadTheTenantKey"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.manager[0].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = concat([aws_iam_role.rotator.arn], var.manager_secret_readers)
    }

    condition {
      test     = "StringNotEquals"
      variable = "secretsmanager:VersionId"
      values   = [aws_secretsmanager_secret_version.manager_placeholder[0].version_id]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "manager" {
  count = local.create_manager_secret ? 1 : 0

  secret_arn          = aws_secretsmanager_secret.manager[0].arn
  policy              = data.aws_iam_policy_document.manager[0].json
  block_public_policy = true
}

# ---------------------------------------------------------------------------------------------------------------------
# The customer-managed key (unless one is given, or create_kms_key = false)
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_kms_key" "rotator" {
  count = local.create_kms_key ? 1 : 0

  description             = "bluum-rotator ${var.name}: its secrets, ledger table, log group, alarm topic and function environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The account administers the key through IAM (the function's role may use it only through Secrets Manager and
  # DynamoDB, iam.tf); CloudWatch Logs may use it for this function's log group only, and CloudWatch alarms may
  # publish to the topic encrypted with it.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsForThisLogGroup"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.${data.aws_partition.current.dns_suffix}" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnEquals = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${local.log_group_name}"
          }
        }
      },
      {
        Sid       = "AlarmsPublishToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.${data.aws_partition.current.dns_suffix}" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        }
      },
    ]
  })

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------------------------------
# The ledger: each rotation's record and lease, by conditional writes
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "ledger" {
  #checkov:skip=CKV_AWS_119:Encrypted with the customer-managed key the module creates by default, or the one given (local.kms_key_arn); only create_kms_key = false leaves DynamoDB's AWS-owned key. checkov cannot follow that conditional through examples/basic's module call. The table holds rotation records and leases, never a key.
  name                        = "${var.name}-ledger"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "ledger_id"
  deletion_protection_enabled = var.ledger_deletion_protection

  attribute {
    name = "ledger_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = local.use_kms_key
    kms_key_arn = local.kms_key_arn
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "rotator" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "rotator" {
  #checkov:skip=CKV_AWS_116:No dead-letter queue: a failed invocation is retried by its caller (Secrets Manager retries a failed rotation; the idempotent tick runs again on its next schedule) and raises the errors alarm, so a queue would only hold copies of tick events.
  #checkov:skip=CKV_AWS_117:Running in a VPC is optional (var.vpc_subnet_ids): the function calls Bluum's public API, which from a VPC needs a NAT gateway.
  #checkov:skip=CKV_AWS_272:Code signing is optional (var.code_signing_config_arn): it needs an AWS Signer profile the package is signed with, which this project does not publish.
  function_name = var.name
  description   = "bluum-rotator: rotates Bluum API keys held in Secrets Manager"
  role          = aws_iam_role.rotator.arn

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  handler          = local.handler
  runtime          = "python3.12"
  # The package's compiled dependencies are built for manylinux2014_x86_64 (scripts/build_lambda_zip.py).
  architectures = ["x86_64"]

  timeout                        = var.timeout_seconds
  memory_size                    = var.memory_size
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = local.kms_key_arn
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = merge(
      {
        ROTATOR_MANAGER_SECRET_ID = local.manager_secret_arn
        # Who starts rotations: Secrets Manager's rotation rule, or the tick (gated by pause and windows).
        ROTATOR_SCHEDULER = var.scheduler
        # The managed secrets and, for each, the investor, environment and base URL: the only source trusted for them.
        ROTATOR_SECRETS        = local.managed_config
        ROTATOR_GRACE          = var.grace
        ROTATOR_VERIFY_TIMEOUT = "${var.verify_timeout_seconds}s"
        ROTATOR_LEASE_TTL      = "${var.lease_ttl_seconds}s"
        ROTATOR_LEDGER_TABLE   = aws_dynamodb_table.ledger.name
        # Each instance takes this share of the manager key's rate limit: the same number as the reserved concurrency.
        ROTATOR_CONCURRENCY = tostring(var.reserved_concurrency)
        # The namespace of the EMF metrics in its log records, which the alarms below watch.
        ROTATOR_METRIC_NAMESPACE = var.metric_namespace
      },
      # Hosts beyond Bluum's documented ones that keys may be sent to (a base_url in `secrets` or the manager secret).
      length(var.allowed_hosts) > 0 ? { ROTATOR_ALLOWED_HOSTS = join(",", var.allowed_hosts) } : {},
      local.tick_config,
    )
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  lifecycle {
    precondition {
      condition     = var.verify_timeout_seconds + 30 <= var.timeout_seconds
      error_message = "timeout_seconds must exceed verify_timeout_seconds by at least 30 s, or testSecret is cut off while it waits for Bluum."
    }
    precondition {
      condition     = (length(var.vpc_subnet_ids) > 0) == (length(var.vpc_security_group_ids) > 0)
      error_message = "vpc_subnet_ids and vpc_security_group_ids go together: give both or neither."
    }
    precondition {
      # Lambda allows 4 KB of environment; each secret takes its ARN (about 90 characters) and its settings.
      condition     = length(local.managed_config) + length(local.windows_config) <= 3500
      error_message = "Too many secrets for one function's environment (ROTATOR_SECRETS and ROTATOR_WINDOWS over 3500 characters): split them across several module instances."
    }
    precondition {
      condition     = !local.tick_schedules || (var.rotation_days != null && try(var.rotation_days <= 90, false) && var.rotation_schedule_expression == null && var.rotation_window == null)
      error_message = "With scheduler = \"tick\" the tick starts rotations every rotation_days (at most 90, Bluum's longest); rotation_schedule_expression and rotation_window are Secrets Manager's schedule: use `windows` instead."
    }
    precondition {
      condition     = local.tick_schedules || var.windows == null
      error_message = "windows apply only with scheduler = \"tick\": Secrets Manager's rotation rule starts rotations otherwise, and nothing can hold it back. Set scheduler = \"tick\", or remove windows."
    }
    precondition {
      condition     = length(local.unlisted_base_urls) == 0
      error_message = "The base_url of ${join(", ", local.unlisted_base_urls)} is not one of Bluum's documented hosts for its environment: use a documented URL, or name the host in allowed_hosts if it really is your Bluum endpoint."
    }
  }

  # The log group exists (with its retention) before the first invocation, and the role may write to it.
  depends_on = [aws_cloudwatch_log_group.rotator, aws_iam_role_policy.rotator]

  tags = local.tags
}

resource "aws_lambda_permission" "secretsmanager" {
  # Secrets Manager invokes the function only when it runs the rotation (scheduler = "secrets_manager").
  for_each = local.sm_rotated

  statement_id  = "SecretsManagerRotation-${substr(sha256(each.key), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.rotator.function_name
  principal     = "secretsmanager.amazonaws.com"
  source_arn    = aws_secretsmanager_secret.managed[each.key].arn
}

# ---------------------------------------------------------------------------------------------------------------------
# The tick: revokes previous keys after their grace, resumes or rolls back stuck rotations, reports overdue keys; with
# scheduler = "tick" it also starts due rotations (gated by pause and windows): the only scheduler then
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "tick" {
  name                = "${var.name}-tick"
  description         = "bluum-rotator's scheduled tick"
  schedule_expression = var.tick_schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "tick" {
  rule  = aws_cloudwatch_event_rule.tick.name
  arn   = aws_lambda_function.rotator.arn
  input = jsonencode({ rotator = "tick" })
}

resource "aws_lambda_permission" "tick" {
  statement_id  = "EventBridgeTick"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.rotator.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.tick.arn
}

# ---------------------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name              = "${var.name}-alarms"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = local.create_alarm_topic ? toset(var.alarm_emails) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

# The rotator's JSON log records are CloudWatch Embedded Metric Format documents where they count something:
# `RotationFailed` (a rotation rolled back or left incomplete) and `KeyOverdue` (each managed secret whose current key
# is older than its rotation period, per tick), both in var.metric_namespace (ROTATOR_METRIC_NAMESPACE), no dimensions.
# CloudWatch Logs extracts them itself: no metric filter, no PutMetricData permission.
# Bluum's own trouble is counted too: `BluumServerErrors` (5xx answers) and `BluumRateLimited` (429 answers), every
# attempt of every call of an invocation, retried or not.
# One alarm per metric, keyed by its name suffix. The tick reports every overdue key on each run, so that alarm looks
# at an hour (several ticks). Retries absorb a few 5xx; three in 15 minutes means Bluum (or the path to it) is in
# trouble. The function paces itself under Bluum's rate limit (its share of ROTATOR_CONCURRENCY), so any 429 means
# something else spends the tenant key's budget too.
locals {
  metric_alarms = {
    "rotation-failed" = {
      metric      = "RotationFailed"
      period      = 300
      threshold   = 1
      description = "A Bluum key rotation failed (rolled back, or left incomplete for the tick to resume). Search ${local.log_group_name} for \"rotation_failed\"."
    }
    "overdue-keys" = {
      metric      = "KeyOverdue"
      period      = 3600
      threshold   = 1
      description = "A managed secret's current Bluum key is older than its rotation period: rotation is not happening. Search ${local.log_group_name} for \"key_overdue\"."
    }
    "bluum-5xx" = {
      metric      = "BluumServerErrors"
      period      = 900
      threshold   = 3
      description = "Bluum answered the rotator with 5xx errors (retried, but rotations may stop half-way for the tick to resume). Search ${local.log_group_name} for \"bluum_trouble\"."
    }
    "bluum-429" = {
      metric      = "BluumRateLimited"
      period      = 900
      threshold   = 1
      description = "Bluum rate-limited the rotator (429): another user of the tenant key spends its budget, or ROTATOR_CONCURRENCY is below the function's real concurrency. Search ${local.log_group_name} for \"bluum_trouble\"."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-errors"
  alarm_description   = "The bluum-rotator function raised: a rotation step or the tick failed. Its log group ${local.log_group_name} says which secret and why."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.rotator.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "metric" {
  for_each            = local.metric_alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = var.metric_namespace
  metric_name         = each.value.metric
  statistic           = "Sum"
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
  tags                = local.tags
}

# The alarms had a resource each before: their state moves along, so an upgrade neither destroys nor recreates them.
moved {
  from = aws_cloudwatch_metric_alarm.rotation_failed
  to   = aws_cloudwatch_metric_alarm.metric["rotation-failed"]
}

moved {
  from = aws_cloudwatch_metric_alarm.key_overdue
  to   = aws_cloudwatch_metric_alarm.metric["overdue-keys"]
}

moved {
  from = aws_cloudwatch_metric_alarm.bluum_server_errors
  to   = aws_cloudwatch_metric_alarm.metric["bluum-5xx"]
}

moved {
  from = aws_cloudwatch_metric_alarm.bluum_rate_limited
  to   = aws_cloudwatch_metric_alarm.metric["bluum-429"]
}
