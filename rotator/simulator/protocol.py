"""Transport-free request/response values, the API error type and the three error-body styles.

Kept apart from the socket code so the routing and the state can be exercised without HTTP, and so the one
place that decides what an error looks like on the wire is easy to find.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_STYLES = ("wrapped", "flat", "legacy")

_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An answer other than success. `key_id` is set once a key has authenticated, for the request log."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        key_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = dict(headers or {})
        self.key_id = key_id

    @property
    def type(self) -> str:
        """The `type` of the wrapped style: Stripe-like names; 5xx are `api_error`, other 4xx invalid request."""
        if self.status >= 500:
            return "api_error"
        return _ERROR_TYPES.get(self.status, "invalid_request_error")


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request. Header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Response:
    """What the HTTP layer writes. `key_id` is the key that authenticated (None if none did), for the log."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None


def error_body(err: ApiError, style: str, trace_id: str) -> dict[str, Any]:
    """Render an error in one of the shapes Bluum's pages disagree about, so clients must accept all three."""
    if style == "flat":
        return {"code": err.code, "message": err.message, "trace_id": trace_id}
    if style == "legacy":
        return {"status": "error", "code": err.code, "message": err.message, "trace_id": trace_id}
    inner: dict[str, Any] = {"type": err.type, "code": err.code, "message": err.message, "trace_id": trace_id}
    if err.param is not None:
        inner["param"] = err.param
    return {"error": inner}


def parse_basic(header: str | None) -> tuple[str, str]:
    """Split `Authorization: Basic base64(user:password)`; raise the documented 401-001/002 otherwise."""
    if header is None:
        raise ApiError(401, "BLUM-401-001", "No Authorization header. Send HTTP Basic credentials: key and secret.")
    scheme, _, token = header.strip().partition(" ")
    malformed = ApiError(401, "BLUM-401-002", "Malformed Authorization header: expected `Basic base64(key:secret)`.")
    if scheme.lower() != "basic" or not token.strip():
        raise malformed
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise malformed from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise malformed
    return user, password
