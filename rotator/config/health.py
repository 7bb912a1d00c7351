"""The `health` of a reload action: how the rotator learns that the application it just reloaded still works.

Why a check after the reload and not only the reload's exit code: a restart that returned 0 says the unit was told to
restart, not that the application came back up with the new key. With batches (`reload_batch` in
`[credentials.NAME]`, rotator/rules/rollout.py), each batch's checks must pass before the next batch reloads; the first
that does not pass within `health_timeout` stops the rollout and rolls the rotation back while the old key is valid.

    reload = [
      { command = ["systemctl", "reload", "trader-1"],
        health = { url = "http://127.0.0.1:8080/healthz", status = 200 } },
      { url = "http://127.0.0.1:8081/-/reload", health = { command = ["/opt/trader/bin/ready"] } },
    ]

A URL check is a GET (no redirect followed) that must answer `status` (default 200); the one URL rule applies (https,
or plain http to this machine). A command check is an argument list, run like a reload command (no shell, the
configuration file's folder, the action's minimal environment and `pass_env`) that must exit 0. Either is asked
again, with back-off, until it passes or `health_timeout` is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal

from rotator.config.reloads import ReloadAction, _command, _url
from rotator.config.tables import Table

HEALTH_KEY: Final = "health"
HEALTH_KEYS: Final = ("url", "status", "command")
URL_TRY_TIMEOUT: Final = timedelta(seconds=5)
"""How long one GET of a URL check may take; the check is asked again until `health_timeout` is spent."""
_EXAMPLE: Final = 'health = { url = "http://127.0.0.1:8080/healthz", status = 200 }'


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One reload action's health check, validated: exactly one of `url` and `command` is set."""

    kind: Literal["url", "command"]
    cwd: Path
    url: str = ""
    status: int = 200
    command: tuple[str, ...] = ()

    def probe(self, timeout: timedelta, pass_env: tuple[str, ...] = ()) -> ReloadAction:
        """The check as an action the reload runner knows how to run (a command) or to name (a URL), bounded by
        `timeout`."""
        return ReloadAction(
            kind=self.kind,
            timeout=timeout,
            cwd=self.cwd,
            command=self.command,
            url=self.url,
            method="GET",
            pass_env=pass_env if self.kind == "command" else (),
        )

    def describe(self) -> str:
        """How messages name the check, with what may be a token left out (ReloadAction.describe)."""
        shown = self.probe(URL_TRY_TIMEOUT).describe()
        return f"{shown} answers {self.status}" if self.kind == "url" else f"{shown} exits 0"


def parse_health(action: Table, base_dir: Path) -> HealthCheck | bool | None:
    """The action's `health`: the check; None when absent; False when wrong (each problem is recorded)."""
    value = action.data.get(HEALTH_KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        action.problem(HEALTH_KEY, "expected an inline table", f"write {_EXAMPLE}")
        return False
    table = Table(value, action.key(HEALTH_KEY), action.problems)
    before = len(action.problems.items)
    table.check_keys(HEALTH_KEYS)
    if len(action.problems.items) > before:
        return False
    has_command, has_url = "command" in value, "url" in value
    if has_command == has_url:
        what = "has both command and url" if has_command else "has neither command nor url"
        action.problem(HEALTH_KEY, what, f'give one: {_EXAMPLE}, or health = {{ command = ["/path/to/check"] }}')
        return False
    if "status" in value and not has_url:
        table.problem("status", "applies to a url check only", "remove it: a command check passes when it exits 0")
        return False
    if has_command:
        command = _command(table, value["command"])
        return False if command is None else HealthCheck(kind="command", cwd=base_dir, command=command)
    url = _url(table, value["url"])
    status = value.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        table.problem("status", "expected an HTTP status code, 100 to 599", "write status = 200")
        return False
    return False if url is None else HealthCheck(kind="url", cwd=base_dir, url=url, status=status)
