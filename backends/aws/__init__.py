"""The AWS Secrets Manager store.

This face keeps `backends.aws:AwsStore` (the entry point) valid.
"""

from backends.aws.store import AwsStore, quiet_body_loggers

__all__ = ["AwsStore", "quiet_body_loggers"]
