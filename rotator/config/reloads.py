"""The `reload` array of a `[stores.NAME]` table: what tells the applications that read a store to load the new key.

Why the rotator runs these at all: an application that read its key once at start keeps the old key in memory until
something restarts it, and the old key dies when the grace window ends. So after the new key is CURRENT in every
target and before the grace window starts, each target's actions run (rotator/rotation/reload.py); a failed one
stops the rotation before anything is revoked.

Why here and not in the store's own options: the actions belong to the rotator, not to the store. A store factory
(built in or third party) is never handed `reload`, and the same validation holds for every store type.

An action is a command, as an argument list, or an HTTP call:

    reload = [
      { command = ["systemctl", "reload", "trading"], timeout = "60s" },
      { url = "http://127.0.0.1:8080/-/reload", method = "POST", timeout = "10s" },
    ]

An action may carry a `health` check (a URL that must answer a status, or a command that must exit 0): with
`reload_batch` in `[credentials.NAME]`, the actions run in batches, and each batch's checks must pass before the next
batch reloads (rotator/rotation/rollout.py); the first batch that fails them rolls the rotation back.

    reload = [
      { command = ["systemctl", "reload", "trader-1"],
        health = { url = "http://127.0.0.1:8080/healthz", status = 200 } },
      { url = "http://127.0.0.1:8081/-/reload", health = { command = ["/opt/trader/bin/ready"] } },
    ]

A command is never a shell string: a string would have to go through a shell, whose quoting turns a path with a
space or a `$` into another command. Whoever needs a shell writes it out (`["/bin/sh", "-c", "..."]`) and owns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from rotator.config import action_fields as fields
from rotator.config.tables import Table

RELOAD_KEY: Final = "reload"
"""The key in `[stores.NAME]`; kept out of the options a store factory receives."""
RELOAD_KEYS: Final = ("command", "url", "method", "timeout", "pass_env", "health")
METHODS: Final = ("POST", "PUT", "GET")
DEFAULT_COMMAND_TIMEOUT: Final = timedelta(seconds=60)
DEFAULT_URL_TIMEOUT: Final = timedelta(seconds=10)
MAX_RELOAD_TIMEOUT: Final = timedelta(minutes=10)
"""The driver renews the rotation's lease (15 minutes) before each action, so one action must end well inside it."""
_COMMAND_EXAMPLE: Final = 'command = ["systemctl", "reload", "trading"]'
_URL_EXAMPLE: Final = 'url = "http://127.0.0.1:8080/-/reload"'


HEALTH_KEY: Final = "health"
HEALTH_KEYS: Final = ("url", "status", "command", "consumer")
HEALTH_TRY_TIMEOUT: Final = timedelta(seconds=5)
"""How long one GET of a URL health check may take; the check is asked again until `health_timeout` is spent."""
_HEALTH_EXAMPLE: Final = 'health = { url = "http://127.0.0.1:8080/healthz", status = 200 }'
_SUBJECT: Final = "reload command"
_HEALTH_COMMAND_EXAMPLE: Final = 'command = ["/path/to/check"]'


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One reload action's health check, validated: exactly one of `url`, `command` and `consumer` is set."""

    kind: Literal["url", "command", "consumer"]
    cwd: Path
    url: str = ""
    status: int = 200
    command: tuple[str, ...] = ()
    consumer: str = ""
    """The name of one of the credential's consumers (rotator/config/consumers.py): it must report the new key."""

    def probe(self, timeout: timedelta, pass_env: tuple[str, ...] = ()) -> ReloadAction:
        """The check as an action the reload runner knows how to run (a command) or to name (a URL), bounded by
        `timeout`."""
        return ReloadAction(
            kind="command" if self.kind == "command" else "url",
            timeout=timeout,
            cwd=self.cwd,
            command=self.command,
            url=self.url,
            method="GET",
            pass_env=pass_env if self.kind == "command" else (),
        )

    def describe(self) -> str:
        """How messages name the check, with what may be a token left out (ReloadAction.describe)."""
        if self.kind == "consumer":
            return f"consumer {self.consumer} reports the new key"
        shown = self.probe(HEALTH_TRY_TIMEOUT).describe()
        return f"{shown} answers {self.status}" if self.kind == "url" else f"{shown} exits 0"


@dataclass(frozen=True, slots=True)
class ReloadAction:
    """One reload action of one store, validated. Exactly one of `command` and `url` is set."""

    kind: Literal["command", "url"]
    timeout: timedelta
    cwd: Path
    """Where a command runs: the configuration file's folder, so relative paths in it mean what they say there."""
    command: tuple[str, ...] = ()
    url: str = ""
    method: str = "POST"
    pass_env: tuple[str, ...] = ()
    """Variables passed through from the rotator's environment, by name (a command gets a minimal environment)."""
    health: HealthCheck | None = None
    """What must pass after this action's batch reloaded (`HealthCheck`); None: nothing to check."""

    def describe(self) -> str:
        """How messages, the history and notifications name the action, with what may be a token left out: a URL
        shows its host and first path segment only (deploy hooks carry their token in the path or the query), and a
        command's token-shaped arguments (20+ letters, digits, `+=_-`) are shown as `…`."""
        if self.kind == "command":
            import shlex  # here: only a message shows a command

            text = shlex.join(TOKEN_SHAPED.sub("…", arg) for arg in self.command)
            return text if len(text) <= 80 else text[:77] + "..."
        parts = urlsplit(self.url)
        first, _, rest = parts.path.lstrip("/").partition("/")
        path = f"/{first}" + ("/…" if rest else "") if first else ""
        return f"{self.method} {parts.scheme}://{parts.netloc}{path}"


TOKEN_SHAPED = re.compile(r"[A-Za-z0-9+=_-]{20,}")
"""A run of 20 or more letters, digits or base64 signs: a key, a secret, an Authorization header or an encoding of
one. Prose has no word that long; a long name that is not a secret is left out too, which costs only a hint.
`describe` leaves such arguments out, and `reload_runner` withholds an output line that holds one."""


def parse_reload(table: Table, base_dir: Path) -> tuple[ReloadAction, ...] | None:
    """The store table's `reload` actions; () when absent; None when any is wrong (each problem is recorded)."""
    value = table.data.get(RELOAD_KEY)
    if value is None:
        return ()
    if not isinstance(value, list):
        table.problem(
            RELOAD_KEY,
            "expected an array of inline tables",
            f"write reload = [{{ {_COMMAND_EXAMPLE} }}] (or [] for none)",
        )
        return None
    actions = [_parse_action(table, index, item, base_dir) for index, item in enumerate(value)]
    return None if None in actions else tuple(action for action in actions if action is not None)


def _parse_action(table: Table, index: int, item: object, base_dir: Path) -> ReloadAction | None:
    where = f"{RELOAD_KEY}[{index}]"
    if not isinstance(item, dict):
        table.problem(where, "expected an inline table", f"write {{ {_COMMAND_EXAMPLE} }} or {{ {_URL_EXAMPLE} }}")
        return None
    action = Table(item, table.key(where), table.problems)
    before = len(table.problems.items)
    action.check_keys(RELOAD_KEYS)
    if len(table.problems.items) > before:
        return None  # a misspelt key: "neither command nor url" would only repeat it
    has_command, has_url = "command" in item, "url" in item
    if has_command == has_url:
        what = "has both command and url" if has_command else "has neither command nor url"
        table.problem(where, what, f"give one per action: {{ {_COMMAND_EXAMPLE} }} or {{ {_URL_EXAMPLE} }}")
        return None
    command = fields.argv(action, item["command"], subject=_SUBJECT, example=_COMMAND_EXAMPLE) if has_command else ()
    url = fields.url(action, item["url"], example=_URL_EXAMPLE) if has_url else ""
    method = _method(action, item.get("method", "POST"), has_url)
    default = DEFAULT_COMMAND_TIMEOUT if has_command else DEFAULT_URL_TIMEOUT
    timeout = fields.timeout(action, default, MAX_RELOAD_TIMEOUT)
    pass_env = fields.pass_env(action, item.get("pass_env", []), has_command)
    health = parse_health(action, base_dir)
    if command is None or url is None or method is None or timeout is None or pass_env is None or health is False:
        return None
    return ReloadAction(
        kind="command" if has_command else "url",
        timeout=timeout,
        cwd=base_dir,
        command=command,
        url=url,
        method=method,
        pass_env=pass_env,
        health=health if isinstance(health, HealthCheck) else None,
    )


def _method(action: Table, value: object, has_url: bool) -> str | None:
    if "method" in action.data and not has_url:
        action.problem("method", "applies to a url action only", "remove it, or use url = ... instead of command")
        return None
    if not isinstance(value, str) or value.upper() not in METHODS:
        action.problem("method", f"must be one of {', '.join(METHODS)}", 'write method = "POST"')
        return None
    return value.upper()


def parse_health(action: Table, base_dir: Path) -> HealthCheck | bool | None:
    """The action's `health`: the check; None when absent; False when wrong (each problem is recorded)."""
    value = action.data.get(HEALTH_KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        action.problem(HEALTH_KEY, "expected an inline table", f"write {_HEALTH_EXAMPLE}")
        return False
    table = Table(value, action.key(HEALTH_KEY), action.problems)
    before = len(action.problems.items)
    table.check_keys(HEALTH_KEYS)
    if len(action.problems.items) > before:
        return False
    given = [key for key in ("url", "command", "consumer") if key in value]
    if len(given) != 1:
        what = f"has {' and '.join(given)}" if given else "has none of url, command and consumer"
        action.problem(
            HEALTH_KEY,
            what,
            f'give one: {_HEALTH_EXAMPLE}, health = {{ command = ["/path/to/check"] }} or '
            'health = { consumer = "trader-1" }',
        )
        return False
    if "status" in value and "url" not in value:
        table.problem("status", "applies to a url check only", "remove it: a command check passes when it exits 0")
        return False
    if "consumer" in value:
        return _consumer_check(table, value["consumer"], base_dir)
    if "command" in value:
        command = fields.argv(table, value["command"], subject="health command", example=_HEALTH_COMMAND_EXAMPLE)
        return False if command is None else HealthCheck(kind="command", cwd=base_dir, command=command)
    url = fields.url(table, value["url"], example=_URL_EXAMPLE)
    status = value.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        table.problem("status", "expected an HTTP status code, 100 to 599", "write status = 200")
        return False
    return False if url is None else HealthCheck(kind="url", cwd=base_dir, url=url, status=status)


def _consumer_check(table: Table, name: object, base_dir: Path) -> HealthCheck | bool:
    """A check that a consumer of the credential reports the new key (whether the name is one is checked once every
    store is parsed: rotator/config/rollout.py)."""
    if not isinstance(name, str) or not name.strip():
        table.problem(
            "consumer", "expected the name of one of the credential's consumers", 'write consumer = "trader-1"'
        )
        return False
    return HealthCheck(kind="consumer", cwd=base_dir, consumer=name.strip())
