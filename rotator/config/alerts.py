"""`[alerts]`: when a tick raises an alert event. Apart from rotator/config/notifications.py (which re-exports it)
because every configuration has these settings (their defaults when the table is absent), while the webhooks and SNS
topics of `[notifications.NAME]` are parsed only when the file declares some: `rotator status` over a file without
them does not import that module (issue 18: status <= 2x `--help`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rotator.config.tables import Problems, Table, optional_table

__all__ = ["ALERTS_KEYS", "MIN_SWEEP_EVERY", "AlertSettings", "parse_alerts", "parse_alerts_table"]

ALERTS_KEYS: Final = (
    "stuck_after",
    "server_errors",
    "server_error_ratio",
    "rate_limited",
    "remind_every",
    "sweep_every",
)
MIN_SWEEP_EVERY: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The optional `[alerts]` table: when a tick raises an alert event (and the `bluum_rotator_alert` gauge).

    Defaults: Bluum 5xx alert at 3 answers in a tick, or at 2 or more when they are at least a quarter of the tick's
    requests; any 429 (the throttle keeps under Bluum's limits, so a 429 means another process shares the key); a
    rotation is stuck when unfinished, not waiting out its grace window, and its record unchanged for an hour. An
    active condition is announced again after `remind_every`; the tick runs a read-only sweep for orphan keys every
    `sweep_every` (off unless set: it costs one key-list call per investor).
    """

    stuck_after: timedelta = timedelta(hours=1)
    server_errors: int = 3
    server_error_ratio: float = 0.25
    rate_limited: int = 1
    remind_every: timedelta = timedelta(hours=24)
    sweep_every: timedelta | None = None


def parse_alerts_table(value: object, problems: Problems) -> AlertSettings:
    """The `[alerts]` table (`parse_alerts`); its defaults when absent or wrong (a wrong one is a problem)."""
    table = optional_table(value, "alerts", problems)
    return (parse_alerts(table) if table is not None else None) or AlertSettings()


def parse_alerts(table: Table) -> AlertSettings | None:
    """The `[alerts]` table; None when it has problems (each recorded on `table`)."""
    table.check_keys(ALERTS_KEYS)
    defaults = AlertSettings()
    stuck_after = table.duration("stuck_after", defaults.stuck_after)
    remind_every = table.duration("remind_every", defaults.remind_every)
    server_errors = table.count("server_errors", defaults.server_errors, limit=10_000, example="3")
    rate_limited = table.count("rate_limited", defaults.rate_limited, limit=10_000, example="1")
    ratio = table.positive_number("server_error_ratio", defaults.server_error_ratio, example="0.25")
    if ratio is not None and ratio > 1:
        table.problem("server_error_ratio", f"is a share of the requests, at most 1, got {ratio!r}", "write 0.25")
        ratio = None
    sweep_every = table.duration("sweep_every", MIN_SWEEP_EVERY) if table.has("sweep_every") else None
    if sweep_every is not None and sweep_every < MIN_SWEEP_EVERY:
        table.problem(
            "sweep_every",
            "must be at least 1h (each sweep lists every investor's keys at Bluum)",
            'write sweep_every = "24h", or remove it to leave sweeping to `rotator sweep`',
        )
        return None
    if stuck_after is not None and stuck_after <= timedelta(0):
        table.problem("stuck_after", "must be longer than 0s", 'write stuck_after = "1h"')
        stuck_after = None
    if stuck_after is None or remind_every is None or server_errors is None or rate_limited is None or ratio is None:
        return None
    if table.has("sweep_every") and sweep_every is None:
        return None
    return AlertSettings(stuck_after, server_errors, ratio, rate_limited, remind_every, sweep_every)
