"""The optional `[ledger]` table of rotator.toml: how long a runner's lease on a credential lasts.

Why configurable: the lease is what lets another runner take over from one that stopped (a laptop that slept, a paused
VM, a stalled container). Production wants it long, so a slow step never loses it (15 minutes); tests want it short, so
a take-over happens in seconds. Whatever its length, a runner never sends a Bluum request whose whole budget (one
request's `timeout` plus the `retry_budget` of its retries) would outlive the lease, and a contender waits for the lease
plus the longest request the runner may still have in flight (that Bluum call, or one store request with its timeouts:
`rotator.core.in_flight`) before it takes over (`rotator.rotation.driver.RecordKeeper`): so the lease must be
comfortably longer than that, and is refused otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rotator.config.settings import BluumSettings
from rotator.config.stores import StoreConfig
from rotator.config.tables import Problems, optional_table
from rotator.core.durations import format_duration
from rotator.core.in_flight import bluum_call_seconds, longest_in_flight, store_request_seconds

__all__ = ["DEFAULT_LEASE_TTL", "LEDGER_KEYS", "LedgerSettings", "parse_ledger"]

LEDGER_KEYS: Final = ("lease_ttl",)
DEFAULT_LEASE_TTL: Final = timedelta(minutes=15)
CALLS_PER_LEASE: Final = 2
"""A lease is at least this many of the longest request in flight (a whole Bluum call, or one store request): one may
be in flight while the next one is checked for."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The optional `[ledger]` table."""

    lease_ttl: float = DEFAULT_LEASE_TTL.total_seconds()
    """Seconds a runner's lease lasts after its last renewal (renewed every third of it while the runner works)."""


def parse_ledger(
    value: object, problems: Problems, bluum: BluumSettings | None, stores: Iterable[StoreConfig] = ()
) -> LedgerSettings | None:
    """`bluum`: the `[bluum]` table as parsed (None when it had problems: then the lease is checked alone);
    `stores`: the `[stores.NAME]` tables, whose requests count too."""
    table = optional_table(value, "ledger", problems)
    if table is None:
        return None
    table.check_keys(LEDGER_KEYS)
    ttl = table.duration("lease_ttl", DEFAULT_LEASE_TTL)
    if ttl is None:
        return None
    seconds = ttl.total_seconds()
    if seconds <= 0:
        table.problem("lease_ttl", "must be longer than 0s", 'write lease_ttl = "15m"')
        return None
    stores = tuple(stores)
    if bluum is not None and seconds < CALLS_PER_LEASE * longest_in_flight(bluum, stores):
        needed = CALLS_PER_LEASE * longest_in_flight(bluum, stores)
        what, detail, shorten = _longest(bluum, stores)
        table.problem(
            "lease_ttl",
            f"{format_duration(seconds)} is shorter than {CALLS_PER_LEASE} {what} ({format_duration(needed)}: "
            f"{detail}, twice), so a runner could not be sure that a request it sent, a create or a revoke above all, "
            "has its answer before its lease ends",
            f'write lease_ttl = "{format_duration(int(needed) + 1)}" or longer (production: "15m"), '
            f"or shorten {shorten}",
        )
        return None
    return LedgerSettings(lease_ttl=seconds)


def _longest(bluum: BluumSettings, stores: Iterable[StoreConfig]) -> tuple[str, str, str]:
    """What the longest request in flight is, how long, and what would shorten it: for the message."""
    call = bluum_call_seconds(bluum)
    slowest = max(stores, key=lambda store: store_request_seconds(store.type, store.options), default=None)
    if slowest is not None and store_request_seconds(slowest.type, slowest.options) > call:
        each = store_request_seconds(slowest.type, slowest.options) / 2
        return (
            f"requests to store {slowest.name!r}",
            f"its timeout {format_duration(each)} to connect + {format_duration(each)} to answer",
            f"[stores.{slowest.name}] timeout",
        )
    return (
        "whole Bluum calls",
        f"[bluum] timeout {format_duration(bluum.timeout)} + retry_budget {format_duration(bluum.retry_budget)}",
        "[bluum] timeout and retry_budget",
    )
