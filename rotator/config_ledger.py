"""The optional `[ledger]` table of rotator.toml: how long a runner's lease on a credential lasts.

Why configurable: the lease is what lets another runner take over from one that stopped (a laptop that slept, a paused
VM, a stalled container). Production wants it long, so a slow step never loses it (15 minutes); tests want it short, so
a take-over happens in seconds. Whatever its length, a runner never sends a Bluum request whose whole budget (one
request's `timeout` plus the `retry_budget` of its retries) would outlive the lease, and a contender waits for the lease
plus that budget before it takes over (`rotator.rotation.driver.LeaseTimes`): so the lease must be comfortably longer
than one Bluum call, and is refused otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rotator.config_settings import BluumSettings
from rotator.config_tables import Problems, optional_table

__all__ = ["DEFAULT_LEASE_TTL", "LEDGER_KEYS", "LedgerSettings", "call_seconds", "parse_ledger"]

LEDGER_KEYS: Final = ("lease_ttl",)
DEFAULT_LEASE_TTL: Final = timedelta(minutes=15)
CALLS_PER_LEASE: Final = 2
"""A lease is at least this many whole Bluum calls long: one may be in flight while the next one is checked for."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The optional `[ledger]` table."""

    lease_ttl: float = DEFAULT_LEASE_TTL.total_seconds()
    """Seconds a runner's lease lasts after its last renewal (renewed every third of it while the runner works)."""


def call_seconds(bluum: BluumSettings) -> float:
    """The longest one Bluum call may take, retries included: a retry starts only within `retry_budget`, and its
    last attempt may then take a whole `timeout`. What a runner may still have in flight when its lease ends."""
    return bluum.retry_budget + bluum.timeout


def parse_ledger(value: object, problems: Problems, bluum: BluumSettings | None) -> LedgerSettings | None:
    """`bluum`: the `[bluum]` table as parsed (None when it had problems: then the lease is checked alone)."""
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
    if bluum is not None and seconds < CALLS_PER_LEASE * call_seconds(bluum):
        needed = CALLS_PER_LEASE * call_seconds(bluum)
        table.problem(
            "lease_ttl",
            f"{seconds:g}s is shorter than {CALLS_PER_LEASE} whole Bluum calls ({needed:g}s: [bluum] timeout "
            f"{bluum.timeout:g}s + retry_budget {bluum.retry_budget:g}s, twice), so a runner could not send a "
            "create or a revoke whose answer surely comes back before its lease ends",
            f'write lease_ttl = "{int(needed) + 1}s" or longer (production: "15m"), or shorten [bluum] timeout and '
            "retry_budget",
        )
        return None
    return LedgerSettings(lease_ttl=seconds)
