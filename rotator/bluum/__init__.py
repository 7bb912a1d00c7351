"""The Bluum API client (operations), its transport (retries, send), answers (error decoding and advice), throttle,
shared rate window and traffic observers.

This face re-exports what callers imported from `rotator.bluum` before the package existed.
"""

from rotator.bluum.answers import parse_retry_after
from rotator.bluum.client import BluumClient, CheckOutcome, CheckResult
from rotator.bluum.transport import RetryPolicy
from rotator.core.errors import BluumUnexpectedResponse

__all__ = ["BluumClient", "BluumUnexpectedResponse", "CheckOutcome", "CheckResult", "RetryPolicy", "parse_retry_after"]
