"""The simulator's switches and injected faults: plain values and their validation, no state and no I/O.

Shared by the Python API (`Simulator.configure`, `inject_fault`) and the `/_sim` control plane, so both reject
the same mistakes with the same messages. Bad input raises `ValueError`, which the control plane answers 400.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rotator.simulator.protocol import ERROR_STYLES

ENVIRONMENTS = ("TEST", "PRODUCTION")
DEFAULT_RATE_LIMITS: dict[str, float] = {"TEST": 10.0, "PRODUCTION": 25.0}
REVOKE_REPEAT = ("ok", "conflict")
FAULT_FIELDS = frozenset({"method", "path", "count", "status", "latency_ms", "drop", "retry_after"})
CONFIG_FIELDS = frozenset({"propagation_delay", "error_style", "revoke_repeat", "key_ttl", "rate_limits"})


@dataclass(slots=True)
class SimConfig:
    """Behaviour switches; `updated_config` documents each."""

    propagation_delay: float = 0.0
    error_style: str = "wrapped"
    revoke_repeat: str = "ok"
    key_ttl: float | None = None
    rate_limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))

    def as_dict(self) -> dict[str, Any]:
        return {
            "propagation_delay": self.propagation_delay,
            "error_style": self.error_style,
            "revoke_repeat": self.revoke_repeat,
            "key_ttl": self.key_ttl,
            "rate_limits": dict(self.rate_limits),
        }


def updated_config(current: SimConfig, changes: Mapping[str, Any]) -> SimConfig:
    """A copy of `current` with `changes` applied; a field left out is unchanged, None restores its default.

    propagation_delay: seconds after creation during which an API-created key still gets 401-003.
    error_style: wrapped | flat | legacy. revoke_repeat: ok (200 unchanged) | conflict (409-002).
    key_ttl: seconds until an API-created key expires (None: never). rate_limits: {"TEST": n, "PRODUCTION": m}
    requests per second, merged over the current limits. Validation happens before anything changes.
    """
    unknown = set(changes) - CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    new = copy.deepcopy(current)
    if "propagation_delay" in changes:
        delay = changes["propagation_delay"]
        new.propagation_delay = 0.0 if delay is None else non_negative(delay, "propagation_delay")
    if "error_style" in changes:
        style = changes["error_style"]
        new.error_style = "wrapped" if style is None else choice(style, ERROR_STYLES, "error_style")
    if "revoke_repeat" in changes:
        repeat = changes["revoke_repeat"]
        new.revoke_repeat = "ok" if repeat is None else choice(repeat, REVOKE_REPEAT, "revoke_repeat")
    if "key_ttl" in changes:
        ttl = changes["key_ttl"]
        new.key_ttl = None if ttl is None else positive(ttl, "key_ttl")
    if "rate_limits" in changes:
        new.rate_limits = _rate_limits(changes["rate_limits"], new.rate_limits)
    return new


def _rate_limits(value: object, current: dict[str, float]) -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_RATE_LIMITS)
    if not isinstance(value, Mapping):
        raise ValueError('rate_limits must be an object such as {"TEST": 10, "PRODUCTION": 25}')
    merged = dict(current)
    for name, limit in value.items():
        try:
            env = parse_environment(name)
        except ValueError:
            raise ValueError(f"rate_limits: unknown environment {name!r} (TEST or PRODUCTION)") from None
        merged[env] = positive(limit, f"rate_limits.{name}")
    return merged


@dataclass(slots=True)
class Fault:
    """The next `remaining` requests matching `method` and starting with `path` misbehave this way."""

    id: int
    method: str
    path: str
    remaining: int
    status: int | None
    latency_ms: float | None
    drop: bool
    retry_after: int | None

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method.upper()) and path.startswith(self.path)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "count": self.remaining,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "drop": self.drop,
            "retry_after": self.retry_after,
        }


def parse_fault(spec: Mapping[str, Any], fault_id: int) -> Fault:
    """Validate a fault spec. Defaults: method GET, path /v1/assets, count 1; Retry-After 1 for status 429.

    At least one of status / latency_ms / drop; status and drop exclude each other; "*" matches any method.
    """
    unknown = set(spec) - FAULT_FIELDS
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    method = spec.get("method", "GET")
    path = spec.get("path", "/v1/assets")
    count = spec.get("count", 1)
    status = spec.get("status")
    latency = spec.get("latency_ms")
    drop = spec.get("drop", False)
    retry_after = spec.get("retry_after")
    if not isinstance(method, str) or not (method == "*" or method.isalpha()):
        raise ValueError("method must be an HTTP method name or '*'")
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("/_sim"):
        raise ValueError("path must be an absolute path prefix outside /_sim")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be an integer >= 1")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status 400..599")
    latency_ms = None if latency is None else non_negative(latency, "latency_ms")
    if latency_ms is not None and latency_ms > 60_000:
        raise ValueError("latency_ms must be <= 60000")
    if not isinstance(drop, bool):
        raise ValueError("drop must be true or false")
    if status is None and latency_ms is None and not drop:
        raise ValueError("a fault needs status, latency_ms or drop")
    if status is not None and drop:
        raise ValueError("status and drop exclude each other: a dropped request gets no status")
    if retry_after is not None:
        if status != 429:
            raise ValueError("retry_after applies to status 429 only")
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError("retry_after must be an integer >= 0 (seconds)")
    elif status == 429:
        retry_after = 1
    return Fault(fault_id, method.upper(), path, count, status, latency_ms, drop, retry_after)


CONFIG_NAMES: dict[str, str] = {"SANDBOX": "TEST", "PRODUCTION": "PRODUCTION"}
"""rotator.toml's names (sandbox, production) for Bluum's (TEST, PRODUCTION): the simulator's own knobs (its control
plane, `serves=`, `rate_limits`) take either, so a user need not translate. Bluum's API routes keep Bluum's rule."""


def parse_environment(value: object) -> str:
    """TEST or PRODUCTION, from Bluum's name or the configuration's, in any case."""
    folded = value.strip().upper() if isinstance(value, str) else ""
    if folded in ENVIRONMENTS:
        return folded
    if folded in CONFIG_NAMES:
        return CONFIG_NAMES[folded]
    raise ValueError("environment must be TEST or PRODUCTION (Bluum's names; sandbox and production work too)")


def finite_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


def non_negative(value: object, name: str) -> float:
    number = finite_number(value, name)
    if number < 0:
        raise ValueError(f"{name} must be >= 0")
    return number


def positive(value: object, name: str) -> float:
    number = finite_number(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be > 0")
    return number


def choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return str(value)
