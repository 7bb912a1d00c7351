"""Running one reload action: a command in a subprocess, or an HTTP call, each within its timeout.

Kept at the edge, apart from the step that decides when to run them (rotator/rotation/reload.py), because this is
where the rotator hands control to someone else's program, and three things must hold whatever that program does:

- It ends. A command runs in a session of its own and, past its timeout, the whole session is killed (a script's
  children too); its output goes to unlinked temporary files, not pipes, so a child that keeps a pipe open cannot
  hang the rotation after the kill, and a chatty program cannot fill memory.
- It learns no secret from us. Its environment is minimal (`PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, the names the
  action lists in `pass_env`, and `ROTATOR_*` facts that are ids, never values): the rotator's own environment may
  hold a Vault token, AWS keys or a webhook's signing key.
- Nothing it prints reaches a log, a message or the history unless it is safe. A reload command may well print the
  secret it just read. What is kept of a failed action is its exit status and, at most, the last line it wrote,
  and only when that line holds no piece of a key this rotation handles and nothing shaped like a token; otherwise
  nothing of it. Of an HTTP answer only the status code is kept; the body is never read.

httpx is imported only when an HTTP action runs.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import IO

from rotator.config.reloads import TOKEN_SHAPED, ReloadAction
from rotator.core.commands import run_in_own_session
from rotator.core.durations import format_duration

PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
"""Variables a command always gets from the rotator's environment: enough to find programs and their own settings."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH when the rotator has none (a bare cron or systemd environment)."""
TAIL_BYTES = 4096
MAX_LINE = 160
WINDOW = 8
"""A line holding WINDOW characters in a row of any key value is withheld: a secret printed in part still leaks."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """How one action ended, in words safe to log and keep."""

    ok: bool
    outcome: str
    """"exit 0", "exit 1", "killed after the 60s timeout", "HTTP 204", "no answer (ConnectError)"..."""
    said: str | None = None
    """The last line the program wrote (stderr first), when it is safe to show; None otherwise."""
    withheld: bool = False
    """It wrote a last line that was not shown because it might hold a secret."""
    seconds: float = 0.0

    def describe(self) -> str:
        text = self.outcome
        if self.said:
            text += f'; it said "{self.said}"'
        elif self.withheld:
            text += " (its last line is not shown: it might hold a secret)"
        return text


def action_env(
    action: ReloadAction, facts: Mapping[str, str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The whole environment of a reload command: a few of the rotator's variables, the ones it names, and `facts`
    (ROTATOR_CREDENTIAL, ROTATOR_STORE, ROTATOR_KEY_ID...: ids, never a secret)."""
    env = {name: environ[name] for name in (*PASSED_ENV, *action.pass_env) if name in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(facts)
    return env


def run_action(action: ReloadAction, env: Mapping[str, str], secrets: Collection[str]) -> ReloadResult:
    """Run `action` to its end or its timeout. `secrets`: every key value the output must not carry into a message."""
    started = time.monotonic()
    result = _run_command(action, env, secrets) if action.kind == "command" else _call_url(action, secrets)
    return ReloadResult(result.ok, result.outcome, result.said, result.withheld, time.monotonic() - started)


def _run_command(action: ReloadAction, env: Mapping[str, str], secrets: Collection[str]) -> ReloadResult:
    timeout = action.timeout.total_seconds()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = run_in_own_session(action.command, cwd=action.cwd, env=env, timeout=timeout, stdout=out, stderr=err)
        if done.start_error is not None:
            return ReloadResult(False, f"could not start {action.command[0]!r}: {done.start_error}")
        if done.timed_out:
            outcome = f"killed after its {format_duration(action.timeout)} timeout"
            return _with_last_line(ReloadResult(False, outcome), err, out, secrets)
        if done.code == 0:
            return ReloadResult(True, "exit 0")
        return _with_last_line(ReloadResult(False, done.describe()), err, out, secrets)


def _with_last_line(result: ReloadResult, err: IO[bytes], out: IO[bytes], secrets: Collection[str]) -> ReloadResult:
    line = last_line(_tail(err)) or last_line(_tail(out))
    if line is None:
        return result
    said = screened(line, secrets)
    return ReloadResult(result.ok, result.outcome, said, withheld=said is None)


def _tail(handle: IO[bytes]) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace")


def last_line(text: str) -> str | None:
    """The last line with something on it, stripped; None for none."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return None


def screened(line: str, secrets: Collection[str]) -> str | None:
    """`line` as it may be shown, or None when it might hold a secret.

    Withheld: any WINDOW characters in a row of a key value (a secret printed whole or in part), and anything shaped
    like a token (an encoding of a secret, an Authorization header, a key of another system). What is shown is
    stripped of control characters (a terminal escape is not a message) and shortened.
    """
    printable = "".join(char if char.isprintable() else " " for char in line).strip()
    for secret in secrets:
        if len(secret) < WINDOW:
            if secret and secret in printable:
                return None
            continue
        if any(secret[i : i + WINDOW] in printable for i in range(len(secret) - WINDOW + 1)):
            return None
    if TOKEN_SHAPED.search(printable):
        return None
    return printable if len(printable) <= MAX_LINE else printable[: MAX_LINE - 3] + "..."


def _call_url(action: ReloadAction, secrets: Collection[str]) -> ReloadResult:
    """One request, no redirect followed, no proxy from the environment; 2xx is success. The body is never read:
    only the status line and headers are waited for."""
    import httpx

    try:
        with (
            httpx.Client(timeout=action.timeout.total_seconds(), trust_env=False, follow_redirects=False) as client,
            client.stream(action.method, action.url, headers={"User-Agent": "bluum-rotator reload"}) as response,
        ):
            status = response.status_code
    except httpx.TimeoutException:
        return ReloadResult(False, f"no answer within its {format_duration(action.timeout)} timeout")
    except httpx.HTTPError as exc:
        said = screened(str(exc), secrets)
        return ReloadResult(False, f"no answer ({type(exc).__name__})", said, withheld=said is None and bool(str(exc)))
    if 200 <= status < 300:
        return ReloadResult(True, f"HTTP {status}")
    return ReloadResult(False, f"HTTP {status} (expected 2xx)")
