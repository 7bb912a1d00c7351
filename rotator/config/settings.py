"""The small optional tables of rotator.toml: `[bluum]` (the HTTP client), `[history]` (where rotation history is kept,
and how long) and `[fleet]` (how many rotations one process keeps in flight).

Each has a default for every key, so a file without the table gets the defaults; a table that is present is checked
key by key like the rest of the file (rotator/config/tables.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Final

from rotator.config.lanes import LANE_KEYS, parse_lanes
from rotator.config.tables import Problems, absolute_path, optional_table, show
from rotator.core.model import Environment

__all__ = [
    "BLUUM_KEYS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_HISTORY_DIR",
    "DEFAULT_HISTORY_KEEP",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PER_PAYER",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_TIMEOUT",
    "FLEET_KEYS",
    "HISTORY_KEYS",
    "MAX_CONCURRENCY",
    "MIN_HISTORY_KEEP",
    "BluumSettings",
    "FleetSettings",
    "HistorySettings",
    "parse_bluum",
    "parse_fleet",
    "parse_history",
]

BLUUM_KEYS: Final = (
    "timeout",
    "max_attempts",
    "retry_budget",
    "rate_limit_sandbox",
    "rate_limit_production",
    "shared_budget_dir",
)
DEFAULT_TIMEOUT: Final = timedelta(seconds=10)
DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_RETRY_BUDGET: Final = timedelta(seconds=30)
HISTORY_KEYS: Final = ("dir", "keep")
FLEET_KEYS: Final = ("concurrency", "per_payer")
DEFAULT_CONCURRENCY: Final = 16
"""Rotations in flight in one process, over every paying key."""
DEFAULT_PER_PAYER: Final = 12
"""Rotations in flight per paying key: enough to keep Bluum's 25 requests/s busy while each waits for propagation."""
MAX_CONCURRENCY: Final = 256
DEFAULT_HISTORY_DIR: Final = "rotator-history"
DEFAULT_HISTORY_KEEP: Final = timedelta(days=400)
MIN_HISTORY_KEEP: Final = timedelta(days=30)
"""Bluum asks for at least 30 days of records (bluum-api.md §4)."""


@dataclass(frozen=True, slots=True)
class BluumSettings:
    """The optional `[bluum]` table: HTTP client behaviour shared by every credential."""

    timeout: float = DEFAULT_TIMEOUT.total_seconds()
    """Seconds per HTTP request."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Tries per call, the first one included, for retryable failures (429, 5xx, network)."""
    retry_budget: float = DEFAULT_RETRY_BUDGET.total_seconds()
    """Seconds all retries of one call may take together, waits included."""
    rate_limits: Mapping[Environment, float] = field(
        default_factory=lambda: MappingProxyType({env: env.default_rate_limit for env in Environment})
    )
    """Requests per second per key pair that we allow ourselves (Bluum: 10 sandbox, 25 production)."""
    shared_budget_dir: Path | None = None
    """Where every rotator process on this host counts its sends per key pair (`rotator.bluum.shared_window`), so a
    daemon and a cron job or an operator's command share one key's budget; None: each process paces on its own."""


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """The optional `[history]` table: where each credential's append-only rotation history is kept, and how long."""

    dir: Path
    keep: timedelta = DEFAULT_HISTORY_KEEP


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """The optional `[fleet]` table: how many rotations one process keeps in flight (`rotate --all`, `run-due`,
    `resume`, the daemon), over all, and per key that pays for them (a manager key's rate budget is shared)."""

    concurrency: int = DEFAULT_CONCURRENCY
    per_payer: int = DEFAULT_PER_PAYER
    lanes: bool = False
    """A scheduler tick takes each paying key's lane before running its credentials (rotator/config/lanes.py)."""


def parse_bluum(value: object, problems: Problems, base_dir: Path | None = None) -> BluumSettings | None:
    """`base_dir`: what a relative `shared_budget_dir` is relative to (rotator.toml's folder)."""
    table = optional_table(value, "bluum", problems)
    if table is None:
        return None
    table.check_keys(BLUUM_KEYS)
    timeout = table.duration("timeout", DEFAULT_TIMEOUT)
    if timeout is not None and timeout <= timedelta(0):
        table.problem("timeout", "must be longer than 0s", 'write timeout = "10s"')
        timeout = None
    retry_budget = table.duration("retry_budget", DEFAULT_RETRY_BUDGET)
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    raw_attempts = table.data.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(raw_attempts, bool) or not isinstance(raw_attempts, int):
        table.problem(
            "max_attempts",
            f"expected an integer, got {show(raw_attempts)}",
            "write max_attempts = 5",
        )
        max_attempts = None
    elif raw_attempts < 1:
        table.problem(
            "max_attempts",
            f"must be at least 1 (the first try counts), got {raw_attempts}",
            "write max_attempts = 5 (or 1 for no retries)",
        )
        max_attempts = None
    else:
        max_attempts = raw_attempts
    sandbox = table.positive_number("rate_limit_sandbox", Environment.SANDBOX.default_rate_limit, example="10")
    production = table.positive_number("rate_limit_production", Environment.PRODUCTION.default_rate_limit, example="25")
    shared = table.text("shared_budget_dir", example='"/run/bluum-rotator"')
    if table.has("shared_budget_dir") and shared is None:
        return None
    if timeout is None or retry_budget is None or max_attempts is None or sandbox is None or production is None:
        return None
    return BluumSettings(
        timeout=timeout.total_seconds(),
        max_attempts=max_attempts,
        retry_budget=retry_budget.total_seconds(),
        rate_limits=MappingProxyType({Environment.SANDBOX: sandbox, Environment.PRODUCTION: production}),
        shared_budget_dir=absolute_path(shared, base_dir or Path.cwd()) if shared else None,
    )


def parse_history(value: object, base_dir: Path, problems: Problems) -> HistorySettings | None:
    table = optional_table(value, "history", problems)
    if table is None:
        return None
    table.check_keys(HISTORY_KEYS)
    folder = table.text("dir", example='"/var/lib/bluum-rotator/history"')
    keep = table.duration("keep", DEFAULT_HISTORY_KEEP)
    if keep is not None and keep < MIN_HISTORY_KEEP:
        table.problem(
            "keep", f"must be at least {MIN_HISTORY_KEEP.days}d (Bluum asks for 30 days)", 'write keep = "400d"'
        )
        keep = None
    if keep is None or (table.has("dir") and folder is None):
        return None
    return HistorySettings(dir=absolute_path(folder, base_dir) if folder else base_dir / DEFAULT_HISTORY_DIR, keep=keep)


def parse_fleet(value: object, problems: Problems) -> FleetSettings | None:
    table = optional_table(value, "fleet", problems)
    if table is None:
        return None
    table.check_keys((*FLEET_KEYS, *LANE_KEYS))
    concurrency = table.count("concurrency", DEFAULT_CONCURRENCY, limit=MAX_CONCURRENCY, example="16")
    per_payer = table.count("per_payer", DEFAULT_PER_PAYER, limit=MAX_CONCURRENCY, example="12")
    lanes = parse_lanes(table)
    if concurrency is None or per_payer is None or lanes is None:
        return None
    return FleetSettings(concurrency=concurrency, per_payer=per_payer, lanes=lanes)
