"""The Secrets Manager rotation function.

This face keeps the Terraform handler string `rotator.aws_lambda.handler` valid;
it imports only what the handler imports.
"""

from rotator.aws_lambda.entry import handler

__all__ = ["handler"]
