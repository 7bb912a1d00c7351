# The function's role, least privilege: each statement names the resources this module made or was given.

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rotator" {
  name               = "${var.name}-lambda"
  description        = "bluum-rotator's function: the managed secrets, the manager key, its ledger table and its own logs"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

locals {
  kms_key_arns = compact([local.kms_key_arn, var.manager_secret_kms_key_arn])
}

data "aws_iam_policy_document" "rotator" {
  statement {
    sid = "RotateManagedSecrets"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = local.managed_secret_arns
  }

  statement {
    sid = "ReadManagerKey"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
    ]
    resources = [local.manager_secret_arn]
  }

  statement {
    sid = "Ledger"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:UpdateItem",
    ]
    resources = [aws_dynamodb_table.ledger.arn]
  }

  statement {
    sid = "OwnLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.rotator.arn}:*"]
  }

  dynamic "statement" {
    # Known at plan time (the created key's ARN is not): whether any customer-managed key is in play.
    for_each = local.use_kms_key || var.manager_secret_kms_key_arn != null ? [1] : []
    content {
      sid = "DecryptThroughServices"
      actions = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]
      resources = local.kms_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "secretsmanager.${data.aws_region.current.name}.amazonaws.com",
          "dynamodb.${data.aws_region.current.name}.amazonaws.com",
        ]
      }
    }
  }

  dynamic "statement" {
    # X-Ray's write actions have no resource-level permissions: "*" is the only resource they take.
    for_each = var.tracing_mode == "Active" ? [1] : []
    content {
      sid = "XRayTraces"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    # What Lambda needs to attach the function to the VPC's subnets (AWSLambdaVPCAccessExecutionRole without its
    # logs:* on every group). These EC2 actions take no narrower resource for a function's own interfaces.
    for_each = local.in_vpc ? [1] : []
    content {
      sid = "VpcNetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "rotator" {
  name   = "${var.name}-lambda"
  role   = aws_iam_role.rotator.id
  policy = data.aws_iam_policy_document.rotator.json
}
