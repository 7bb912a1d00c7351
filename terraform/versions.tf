terraform {
  # 1.5: `check` blocks and the `optional()` defaults this module's variables use.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.37: `rotate_immediately` on aws_secretsmanager_secret_rotation, with AWS's own default (true).
      # Tested here with 5.100.0.
      version = ">= 5.37"
    }
  }
}
