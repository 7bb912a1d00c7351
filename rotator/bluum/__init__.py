"""The Bluum API client, its throttle, shared rate window and traffic observers.

This face re-exports what callers imported from `rotator.bluum` before the package existed.
"""

from rotator.bluum.client import (
    BluumClient,
    BluumUnexpectedResponse,
    CheckOutcome,
    CheckResult,
    RetryPolicy,
    parse_retry_after,
)

__all__ = ["BluumClient", "BluumUnexpectedResponse", "CheckOutcome", "CheckResult", "RetryPolicy", "parse_retry_after"]
