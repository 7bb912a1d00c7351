"""The longest request a runner may still have in flight once its lease ran out, from the configuration alone.

Why one figure: a runner sends nothing once its lease ran out on its own clocks (`rotator.core.lease_clock`), but a
request it sent just before may still be on its way. Another runner takes the lease over only once the lease *and*
this figure have passed since the last renewal (`rotator.rotation.driver.RecordKeeper`), and `[ledger] lease_ttl`
must be at least two of it (`rotator.config.ledger`). So it has to cover every kind of request a runner sends:

- a Bluum call, whole: `[bluum]` `timeout` + `retry_budget` (a create or a revoke is sent only with all of it left
  on the lease, so that its answer surely comes back while the runner still holds it);
- one store request: every attempt that can change something asks the lease guard right before it is sent (Vault's
  KV writes, each of them; every Secrets Manager and DynamoDB request through botocore's before-send hook, its own
  resends included), so a retry after the lease ran out never leaves. What may still be in flight is the one attempt
  sent just before, for as long as its client waits: its connect timeout plus its read timeout. A store's `timeout`
  (Vault's and AWS's, 10 s by default) is both: requests applies one number to each, and the boto3 clients the
  rotator makes are given it for each (`aws_client_bounds`, with `AWS_MAX_ATTEMPTS` attempts in all), since
  botocore's own defaults (60 s + 60 s per attempt) would outlive the take-over wait. Files (the env store) take no
  network time.

With the defaults the figure is the Bluum call's 40 s (one Vault or AWS request: 20 s). Pure: no I/O, and
only the standard library at import (the Lambda's cold start reads the AWS bounds from here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

__all__ = [
    "AWS_DEFAULT_TIMEOUT",
    "AWS_MAX_ATTEMPTS",
    "DOPPLER_DEFAULT_TIMEOUT",
    "VAULT_DEFAULT_TIMEOUT",
    "aws_client_bounds",
    "bluum_call_seconds",
    "longest_in_flight",
    "store_request_seconds",
]

AWS_DEFAULT_TIMEOUT: Final = 10.0
"""An AWS store's `timeout` when rotator.toml gives none (and the Lambda's): seconds a boto3 client waits for a
connection to Secrets Manager or DynamoDB, and again for an answer once connected (botocore's defaults: 60 and 60).
Both answer in milliseconds when well."""
AWS_MAX_ATTEMPTS: Final = 3
"""Attempts per boto3 call, the first included (standard mode: throttling and 5xx only, with jittered backoff)."""
VAULT_DEFAULT_TIMEOUT: Final = 10.0
"""A Vault store's `timeout` when rotator.toml gives none (`backends.vault.store.VaultStore`)."""
DOPPLER_DEFAULT_TIMEOUT: Final = 10.0
"""A Doppler store's `timeout` when rotator.toml gives none (`backends.doppler.store.DopplerStore`)."""


class BluumSettings(Protocol):
    """What the figure reads of `rotator.config.settings.BluumSettings` (a protocol: core imports no config)."""

    @property
    def timeout(self) -> float: ...

    @property
    def retry_budget(self) -> float: ...


class StoreConfig(Protocol):
    """What the figure reads of `rotator.config.stores.StoreConfig` (a protocol: core imports no config)."""

    @property
    def type(self) -> str: ...

    @property
    def options(self) -> Mapping[str, object]: ...


def aws_client_bounds(timeout: float = AWS_DEFAULT_TIMEOUT) -> dict[str, Any]:
    """botocore `Config` keywords that bound every request of a boto3 client the rotator makes (the AWS store's and
    the Lambda's): its connect and read timeouts, and its attempts."""
    return {
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "retries": {"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
    }


def bluum_call_seconds(bluum: BluumSettings) -> float:
    """The longest one Bluum call may take, retries included: a retry starts only within `retry_budget`, and its
    last attempt may then take a whole `timeout`."""
    return bluum.retry_budget + bluum.timeout


def store_request_seconds(store_type: str, options: Mapping[str, object]) -> float:
    """The longest one request to a store of `store_type` may stay in flight after it was sent: its connect plus its
    read timeout. A `timeout` that is not a positive number counts as the default (the store itself refuses it)."""
    if store_type == "vault":
        return 2 * _seconds(options.get("timeout"), VAULT_DEFAULT_TIMEOUT)
    if store_type == "aws":
        return 2 * _seconds(options.get("timeout"), AWS_DEFAULT_TIMEOUT)
    if store_type == "doppler":
        return 2 * _seconds(options.get("timeout"), DOPPLER_DEFAULT_TIMEOUT)
    return 0.0  # files (env), memory; a third-party store's requests are its own to bound


def _seconds(value: object, default: float) -> float:
    """`value` as seconds, as the store reads it (`float(timeout)`), or `default` when it is none or no number."""
    if value is None or isinstance(value, bool):
        return default
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def longest_in_flight(bluum: BluumSettings, stores: Iterable[StoreConfig] = ()) -> float:
    """The longest request a runner may still have in flight once its lease ran out: a whole Bluum call, or one
    request to any configured store, whichever is longer."""
    return max(bluum_call_seconds(bluum), *(store_request_seconds(store.type, store.options) for store in stores), 0.0)
