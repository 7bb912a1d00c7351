"""The optional `[leak_reports]` table of rotator.toml: the daemon's signed leak-report route (docs/leak-reports.md).

Off unless the table is present: a route that starts emergency rotations is opened only by whoever deploys the file.
The signing key is never written here: `secret_env` names the environment variable that holds it, as the webhook
tables do (rotator/config/notifications.py), so rotator.toml can be shown, reviewed and committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rotator.config.notifications import ENV_NAME
from rotator.config.tables import Problems, Table

__all__ = [
    "DEFAULT_LEAK_PATH",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOLERANCE",
    "LEAK_REPORT_KEYS",
    "LeakReportSettings",
    "parse_leak_reports",
]

LEAK_REPORT_KEYS: Final = ("secret_env", "path", "tolerance", "max_body")
DEFAULT_LEAK_PATH: Final = "/leak-report"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)
"""How far a report's timestamp may be from the daemon's clock, either way (Stripe's and Slack's default)."""
MAX_TOLERANCE: Final = timedelta(hours=1)
DEFAULT_MAX_BODY: Final = 4096
"""Bytes: a report is a small JSON object; anything larger is refused unread."""
MAX_MAX_BODY: Final = 65536


@dataclass(frozen=True, slots=True)
class LeakReportSettings:
    """The `[leak_reports]` table: where reports are accepted and how they are checked."""

    secret_env: str
    """The environment variable holding the HMAC-SHA256 key reports are signed with."""
    path: str = DEFAULT_LEAK_PATH
    tolerance: float = DEFAULT_TOLERANCE.total_seconds()
    """Seconds a report's timestamp may differ from now; a signature is remembered this long (replays refused)."""
    max_body: int = DEFAULT_MAX_BODY


def parse_leak_reports(value: object, problems: Problems) -> LeakReportSettings | None:
    """None when the table is absent (the route is off) or has problems (recorded in `problems`)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add("leak_reports", "expected a table", "write a [leak_reports] table, or remove it")
        return None
    table = Table(value, "leak_reports", problems)
    table.check_keys(LEAK_REPORT_KEYS)
    secret_env = table.text(
        "secret_env", example='"ROTATOR_LEAK_SECRET"', required=True, why=" (the variable holding the HMAC key)"
    )
    if secret_env is not None and not ENV_NAME.fullmatch(secret_env):
        table.problem(
            "secret_env",
            "is not an environment variable name (letters, digits and _, not starting with a digit); it names the "
            "variable that holds the key, never the key itself",
            'write secret_env = "ROTATOR_LEAK_SECRET" and put the key in that variable',
        )
        secret_env = None
    given = table.text("path", example=f'"{DEFAULT_LEAK_PATH}"') or DEFAULT_LEAK_PATH
    path: str | None = given
    if not given.startswith("/") or given in ("/healthz", "/metrics") or any(c in given for c in "?# "):
        table.problem(
            "path",
            "must start with / and be neither /healthz nor /metrics (no ?, # or spaces)",
            f'write path = "{DEFAULT_LEAK_PATH}"',
        )
        path = None
    tolerance = table.duration("tolerance", DEFAULT_TOLERANCE)
    if tolerance is not None and not timedelta(seconds=1) <= tolerance <= MAX_TOLERANCE:
        table.problem("tolerance", "must be from 1s to 1h", 'write tolerance = "5m"')
        tolerance = None
    max_body = table.count("max_body", DEFAULT_MAX_BODY, limit=MAX_MAX_BODY, example=str(DEFAULT_MAX_BODY))
    if secret_env is None or path is None or tolerance is None or max_body is None:
        return None
    return LeakReportSettings(secret_env, path, tolerance.total_seconds(), max_body)
