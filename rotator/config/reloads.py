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

from rotator.config.tables import Table
from rotator.core.durations import format_duration
from rotator.core.urls import LOOPBACK_HINT, url_problem

RELOAD_KEY: Final = "reload"
"""The key in `[stores.NAME]`; kept out of the options a store factory receives."""
RELOAD_KEYS: Final = ("command", "url", "method", "timeout", "pass_env")
METHODS: Final = ("POST", "PUT", "GET")
DEFAULT_COMMAND_TIMEOUT: Final = timedelta(seconds=60)
DEFAULT_URL_TIMEOUT: Final = timedelta(seconds=10)
MAX_RELOAD_TIMEOUT: Final = timedelta(minutes=10)
"""The driver renews the rotation's lease (15 minutes) before each action, so one action must end well inside it."""
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMAND_EXAMPLE: Final = 'command = ["systemctl", "reload", "trading"]'
_URL_EXAMPLE: Final = 'url = "http://127.0.0.1:8080/-/reload"'


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
    command = _command(action, item["command"]) if has_command else ()
    url = _url(action, item["url"]) if has_url else ""
    method = _method(action, item.get("method", "POST"), has_url)
    timeout = _timeout(action, DEFAULT_COMMAND_TIMEOUT if has_command else DEFAULT_URL_TIMEOUT)
    pass_env = _pass_env(action, item.get("pass_env", []), has_command)
    if command is None or url is None or method is None or timeout is None or pass_env is None:
        return None
    return ReloadAction(
        kind="command" if has_command else "url",
        timeout=timeout,
        cwd=base_dir,
        command=command,
        url=url,
        method=method,
        pass_env=pass_env,
    )


def _command(action: Table, value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        action.problem(
            "command",
            "is a string: a reload command is an argument list, never run through a shell",
            'write it as a list, command = ["program", "argument", ...]; for shell syntax, say so: '
            '["/bin/sh", "-c", "..."] (the string is not repeated here: it may hold a token)',
        )
        return None
    if not isinstance(value, list) or not value or not all(isinstance(arg, str) for arg in value):
        action.problem(
            "command",
            "expected a non-empty array of strings (the program, then its arguments)",
            f"write {_COMMAND_EXAMPLE}",
        )
        return None
    if not value[0].strip():
        action.problem("command", "the program (its first item) is empty", f"write {_COMMAND_EXAMPLE}")
        return None
    return tuple(value)


def _url(action: Table, value: object) -> str | None:
    """The one URL rule of rotator/core/urls.py: a reload call can carry a token in its path, so it goes over https
    unless it stays on this machine."""
    text = value.strip() if isinstance(value, str) else value
    problem = url_problem(text)
    if problem is not None:
        action.problem("url", problem, f"write {_URL_EXAMPLE}, or https://HOST/PATH ({LOOPBACK_HINT})")
        return None
    assert isinstance(text, str)  # url_problem refuses anything else
    return urlsplit(text).geturl()


def _method(action: Table, value: object, has_url: bool) -> str | None:
    if "method" in action.data and not has_url:
        action.problem("method", "applies to a url action only", "remove it, or use url = ... instead of command")
        return None
    if not isinstance(value, str) or value.upper() not in METHODS:
        action.problem("method", f"must be one of {', '.join(METHODS)}", 'write method = "POST"')
        return None
    return value.upper()


def _timeout(action: Table, default: timedelta, most: timedelta = MAX_RELOAD_TIMEOUT) -> timedelta | None:
    """`timeout`, longer than 0s and at most `most` (a consumer's is shorter: rotator/config/consumers.py)."""
    timeout = action.duration("timeout", default)
    if timeout is not None and not timedelta(0) < timeout <= most:
        limit = format_duration(most)
        action.problem(
            "timeout", f"must be longer than 0s and at most {limit}", f'write timeout = "{format_duration(default)}"'
        )
        return None
    return timeout


def _pass_env(action: Table, value: object, has_command: bool) -> tuple[str, ...] | None:
    if "pass_env" in action.data and not has_command:
        action.problem("pass_env", "applies to a command action only", "remove it")
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and _ENV_NAME.fullmatch(name) for name in value):
        action.problem(
            "pass_env",
            "expected an array of environment variable names",
            'write pass_env = ["KUBECONFIG", "AWS_PROFILE"] (names only: values come from the environment)',
        )
        return None
    return tuple(value)
