"""What the Bluum client tells observers after each HTTP exchange, without knowing who listens.

Why a hook and not metrics in the client: the client runs in the Lambda, whose package has no prometheus_client, and
in the CLI, where metrics are optional. So the client only calls plain functions with a `ResponseInfo` (standard
library types, nothing else); the Runtime keeps the list, and `rotator.daemon.metrics.Telemetry` (metrics) and
`rotator.ops.alerts.TrafficCount` (the 5xx/429 count) subscribe. An observer runs on the request's thread: it must
be quick and must not raise (a raise is logged and ignored, never the request's failure).

A `ResponseInfo` carries no key id and no request id: only what a metric label may hold (an endpoint kind, a status)
plus the SHA-256 of the API key, which the Runtime turns into the credential's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["ENDPOINT_KINDS", "ResponseInfo", "ResponseObserver", "endpoint_kind"]

ENDPOINT_KINDS: Final = ("create_key", "list_keys", "revoke_key", "check", "other")
"""Every value `ResponseInfo.endpoint` takes: a bounded label set."""


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """One attempt at one Bluum request, answered or not."""

    method: str
    endpoint: str
    """One of ENDPOINT_KINDS."""
    status: int | None
    """The HTTP status, or None when no answer came (network error, timeout)."""
    key_hash: str
    """SHA-256 (hex) of the API key that paid for the request (`rotator.bluum.throttle.key_hash`): never the key."""
    rate_limit: float
    """Requests per second Bluum allows that key (10 sandbox, 25 production, or the configured value)."""
    seconds: float
    """How long the exchange took (not counting the throttle's wait before it)."""
    at: float
    """When it was sent, in the client's monotonic clock (for per-second rate windows)."""


ResponseObserver = Callable[[ResponseInfo], None]


def endpoint_kind(method: str, op: str) -> str:
    """The kind of call, from the client's own operation name ("create key for …", "list keys of …", …).

    The path would not do: the keys path is configurable, and ids in it would make labels unbounded.
    """
    if op == "check":
        return "check"
    if method == "POST" and op.startswith("create key"):
        return "create_key"
    if method == "POST" and op.startswith("revoke"):
        return "revoke_key"
    if method == "GET" and op.startswith("list keys"):
        return "list_keys"
    return "other"
