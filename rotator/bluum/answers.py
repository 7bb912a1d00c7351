"""What Bluum's answers mean: error bodies decoded into the typed tree of `rotator.core.errors`, the advice each
error carries, and the key objects of a 2xx answer read and checked.

Why apart from the transport: deciding what an answer means is pure (a response in, a value or an error out), so
it is tested without a socket and read without the retry loop around it. Nothing here sends, sleeps or logs.
A message never holds a body or a header value: at most 300 characters of Bluum's own `message`, with the
secret of the pair masked should a server echo it (I6).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, Final

import httpx

from rotator.core.durations import format_duration
from rotator.core.errors import (
    BluumAuthError,
    BluumConflict,
    BluumError,
    BluumForbidden,
    BluumInvalidRequest,
    BluumNotFound,
    BluumRateLimited,
    BluumServerError,
    BluumUnexpectedResponse,
)
from rotator.core.model import ApiKeyInfo, CreatedKey, Environment, KeyPair
from rotator.core.secret import MASK, Secret

__all__ = [
    "AUTH_REASONS",
    "REJECTING_CODES",
    "created_key",
    "error_from",
    "gave_up",
    "json_object",
    "key_info",
    "meta_of",
    "parse_retry_after",
]

AUTH_REASONS: Final[Mapping[str, str]] = {
    "BLUM-401-001": "no Authorization header reached Bluum",
    "BLUM-401-002": "malformed Authorization header",
    "BLUM-401-003": "wrong key or secret, or revoked",
    "BLUM-401-004": "key inactive",
    "BLUM-401-005": "key expired",
}
"""What each 401 code means (bluum-api.md §5); `check()` uses these as its `reason`."""

_AUTH_ADVICE: Final[Mapping[str, str]] = {
    "BLUM-401-001": "a proxy between here and Bluum may strip the header; report it if there is none",
    "BLUM-401-002": "re-copy the key pair into the store (a colon, space or newline in the key breaks it)",
    "BLUM-401-003": (
        "check that the stored pair is a key that is active at Bluum in this environment; if the secret is lost "
        "or the key was revoked, create a new key pair (rotate)"
    ),
    "BLUM-401-004": "reactivate the key in the Bluum dashboard, or create a new key pair (rotate)",
    "BLUM-401-005": "key expired: create a new key pair (rotate) and deploy it; an expired key cannot be renewed",
}

REJECTING_CODES: Final = frozenset({"BLUM-401-003", "BLUM-401-004", "BLUM-401-005"})
"""The check rejects a key only for these codes; the other 401s say our request was wrong, not the key."""


def meta_of(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "trace_id": response.headers.get("x-trace-id"),
    }


def json_object(response: httpx.Response, op: str) -> dict[str, Any]:
    """The body as a JSON object, or BluumUnexpectedResponse. The body itself never enters the message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BluumUnexpectedResponse(
            f"{op}: Bluum answered {response.status_code} but the body is not a JSON object "
            f"({response.headers.get('content-type', 'no content-type')}, {len(response.content)} bytes)",
            **meta_of(response),
        )
    return body


def key_info(obj: Mapping[str, Any], op: str, *, default_status: str, meta: Mapping[str, Any]) -> ApiKeyInfo:
    """Parse a key object. `status` is missing from Bluum's examples, hence `default_status`.

    The environment comes from `environment`, else from `livemode` (true = PRODUCTION), else is unknown.
    """
    key_id = obj.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise BluumUnexpectedResponse(f"{op}: a key object has no id", **meta)
    environment: Environment | None = None
    raw_env = obj.get("environment")
    if isinstance(raw_env, str) and raw_env:
        try:
            environment = Environment.from_bluum(raw_env)
        except ValueError:
            raise BluumUnexpectedResponse(
                f"{op}: key {key_id} has an unknown environment {raw_env!r}", key_id=key_id, **meta
            ) from None
        livemode = obj.get("livemode")
        if isinstance(livemode, bool) and livemode != (environment is Environment.PRODUCTION):
            raise BluumUnexpectedResponse(
                f"{op}: key {key_id} says environment {raw_env} but livemode {livemode}", key_id=key_id, **meta
            )
    elif isinstance(obj.get("livemode"), bool):
        environment = Environment.PRODUCTION if obj["livemode"] else Environment.SANDBOX
    status = obj.get("status")
    created = obj.get("created")
    account_id = obj.get("account_id")
    name = obj.get("name")
    public_key = obj.get("public_key")
    return ApiKeyInfo(
        id=key_id,
        status=status if isinstance(status, str) and status else default_status,
        environment=environment,
        name=name if isinstance(name, str) else "",
        public_key=public_key if isinstance(public_key, str) else "",
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        account_id=account_id if isinstance(account_id, str) else None,
        expires_at=_epoch(obj.get("expires_at")),
    )


def _epoch(value: object) -> float | None:
    """Bluum's `expires_at` (an ISO 8601 date-time, or null) as unix seconds; None when absent or unreadable (a key
    whose expiry we cannot read is treated as one without: its rotation period still applies)."""
    if not isinstance(value, str) or not value:
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def created_key(
    response: httpx.Response, op: str, *, investor_id: str, environment: Environment, attempts: int
) -> CreatedKey:
    """The new key of a create's 2xx answer, checked before anything is returned: id, public_key and secret_key
    present, the environment equal to the one asked for (I7), bound to the investor asked for. On a mismatch the
    key exists at Bluum; the error names its id (`key_id`) so the caller can revoke it."""
    body = json_object(response, op)
    secret_value = body.pop("secret_key", None)
    meta = meta_of(response)
    key_id = body.get("id") if isinstance(body.get("id"), str) else None
    if not isinstance(secret_value, str) or not secret_value:
        raise BluumUnexpectedResponse(
            f"{op}: Bluum's answer has no secret_key, so the new key {key_id or '(no id)'} cannot be used; "
            "revoke it and create another",
            key_id=key_id,
            **meta,
        )
    secret = Secret(secret_value)
    del secret_value
    info = key_info(body, op, default_status="active", meta=meta)
    problem = _created_problem(info, investor_id, environment)
    if problem:
        raise BluumUnexpectedResponse(f"{op}: {problem}", key_id=info.id, **meta)
    pair = KeyPair(api_key=info.public_key, api_secret=secret, environment=environment, key_id=info.id)
    return CreatedKey(info=info, pair=pair, attempts=attempts)


def _created_problem(info: ApiKeyInfo, investor_id: str, environment: Environment) -> str | None:
    """Why a freshly made key cannot be used, with the fix; None when it can."""
    if not info.public_key:
        return f"Bluum's answer for {info.id} has no public_key; revoke it and create another"
    if info.environment is None:
        return (
            f"Bluum's answer for {info.id} says neither environment nor livemode, so it cannot be "
            f"confirmed as a {environment.bluum_name} key; revoke it and check the base URL"
        )
    if info.environment is not environment:
        return (
            f"asked for a {environment.bluum_name} key but Bluum made {info.id} as "
            f"{info.environment.bluum_name}; revoke it and check the base URL and the managing key"
        )
    if info.account_id is not None and info.account_id != investor_id:
        return f"Bluum bound the new key {info.id} to {info.account_id}, not {investor_id}; revoke it"
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date. None when absent or junk."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read the same way
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def error_from(response: httpx.Response, op: str, pair: KeyPair) -> tuple[BluumError, float | None]:
    """Map an error response (any of the three body shapes, or no JSON at all) to the typed tree."""
    status = response.status_code
    code, server_message, trace_id = _parse_error_body(response)
    trace_id = trace_id or response.headers.get("x-trace-id")
    request_id = response.headers.get("x-request-id")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    meta: dict[str, Any] = {"status": status, "code": code, "request_id": request_id, "trace_id": trace_id}
    cls: type[BluumError]
    if status == 401:
        cls = BluumAuthError
        reason = AUTH_REASONS.get(code or "", "authentication failed")
        advice = f"{reason}: {_AUTH_ADVICE.get(code or '', 'check the key pair and the environment (base URL)')}"
        if code == "BLUM-401-005":
            advice = _AUTH_ADVICE[code]
    elif status == 403:
        cls = BluumForbidden
        advice = (
            "forbidden: the key lacks permission (key management needs a tenant-wide key, not an "
            "investor-scoped one; production routes need production access)"
        )
    elif status == 404:
        cls = BluumNotFound
        advice = "not found: check the investor and key ids belong to this tenant and environment, and the base URL"
    elif status == 409:
        cls = BluumConflict
        advice = "conflict: e.g. an Idempotency-Key reused with a different body; a new rotation token makes a new key"
    elif status == 429:
        wait = f" (Retry-After {format_duration(retry_after)})" if retry_after is not None else ""
        message = _message(
            op,
            pair,
            f"rate limited{wait}: another process may share this key pair; slow down or try again later",
            server_message,
        )
        return BluumRateLimited(message, retry_after=retry_after, **meta), retry_after
    elif 400 <= status < 500:  # 400 and 422 by the docs; 405, 413 and the like are just as final
        cls = BluumInvalidRequest
        advice = "Bluum rejected the request as invalid: fix the input; retrying will not help"
    elif status >= 500:
        cls = BluumServerError
        advice = "Bluum server error: try again later; if it persists, give Bluum support the request id and trace id"
    else:
        cls = BluumError
        advice = f"unexpected HTTP {status} (a redirect? check the base URL)"
    return cls(_message(op, pair, advice, server_message), **meta), retry_after


def _message(op: str, pair: KeyPair, advice: str, server_message: str | None) -> str:
    text = f"{op} ({pair.label}): {advice}"
    if server_message:
        said = server_message[:300]
        secret = pair.api_secret.reveal()
        if secret:
            said = said.replace(secret, MASK)  # a server that echoes credentials must not leak them through us
        text += f". Bluum said: {said!r}"
    return text


def _parse_error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, trace_id) from `{"error": {...}}`, flat `{"code", "message"}` or legacy
    `{"status": "error", ...}` bodies; all None for a body that is not a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    inner = body.get("error")
    source: Mapping[str, Any] = inner if isinstance(inner, dict) else body
    code = source.get("code")
    message = source.get("message")
    if message is None and isinstance(inner, str):
        message = inner
    trace_id = source.get("trace_id") or body.get("trace_id")
    return (
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
        str(trace_id) if isinstance(trace_id, str | int) and not isinstance(trace_id, bool) else None,
    )


def gave_up(error: BluumError, note: str) -> BluumError:
    """The same error, its message saying that retries ran out and why."""
    kwargs: dict[str, Any] = {
        "status": error.status,
        "code": error.code,
        "request_id": error.request_id,
        "trace_id": error.trace_id,
    }
    if isinstance(error, BluumRateLimited):
        return BluumRateLimited(f"{error.detail}; {note}", retry_after=error.retry_after, **kwargs)
    return type(error)(f"{error.detail}; {note}", **kwargs)
