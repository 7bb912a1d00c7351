"""One question to one consumer: GET its URL, or run its command, within its timeout; the answer's bytes or why there
are none.

Why so guarded: a consumer is someone else's program. It may hang, redirect, print a megabyte or never exit. So an
HTTP call follows no redirect and takes no proxy from the environment (a loopback URL must stay on this machine), and
reads at most a few KiB of body; a command runs without a shell, in a session of its own whose whole process group is
killed past the timeout, with a minimal environment (the rotator's own may hold a Vault token or AWS keys), and only
its stdout's first few KiB are read. Nothing a consumer says is logged: only the fingerprint parsed from it, later.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotator.attest import MAX_ANSWER_BYTES
from rotator.config.consumers import Consumer
from rotator.core.commands import run_in_own_session
from rotator.core.durations import format_duration

if TYPE_CHECKING:
    import httpx

__all__ = ["PASSED_ENV", "Answer", "ask", "command_env", "http_client"]

PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
"""As for reload commands: enough to find programs and their own settings, nothing of the rotator's secrets."""
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer's bytes (None when there was no answer), or why there was none ("timed out after 5s")."""

    body: bytes | None
    detail: str = ""


def command_env(consumer: Consumer, credential: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The whole environment of a command consumer: a few variables, the ones it names, and two facts (no secret)."""
    env = {name: environ[name] for name in (*PASSED_ENV, *consumer.pass_env) if name in environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update({"ROTATOR_CREDENTIAL": credential, "ROTATOR_STORE": consumer.store})
    return env


def http_client() -> httpx.Client:
    """One client for a poll's URL consumers (thread-safe; building one per consumer costs more than asking): no
    redirect followed, no proxy or certificate path taken from the environment; each request sets its own timeout."""
    import httpx

    return httpx.Client(
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": "bluum-rotator attest"},
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),  # every consumer at once, none kept
    )


def ask(consumer: Consumer, credential: str, client: httpx.Client | None = None) -> Answer:
    """Ask `consumer` once (a URL consumer through `client`, else a client of its own); never raises for what the
    consumer does."""
    if consumer.kind == "command":
        return _run(consumer, command_env(consumer, credential))
    if client is None:
        with http_client() as own:
            return _get(consumer, own)
    return _get(consumer, client)


def _timed_out(consumer: Consumer) -> str:
    return f"timed out after {format_duration(consumer.timeout)}"


def _get(consumer: Consumer, client: httpx.Client) -> Answer:
    import httpx

    try:
        with client.stream("GET", consumer.url, timeout=consumer.timeout.total_seconds()) as response:
            if response.status_code != 200:
                return Answer(None, f"HTTP {response.status_code} (expected 200)")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    break
            return Answer(body)
    except httpx.TimeoutException:
        return Answer(None, _timed_out(consumer))
    except httpx.HTTPError as exc:
        return Answer(None, f"no answer ({type(exc).__name__})")


def _run(consumer: Consumer, env: Mapping[str, str]) -> Answer:
    with tempfile.TemporaryFile() as out:
        done = run_in_own_session(
            consumer.command,
            cwd=consumer.cwd,
            env=env,
            timeout=consumer.timeout.total_seconds(),
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        if done.start_error is not None:
            return Answer(None, f"could not start {consumer.command[0]!r}: {done.start_error}")
        if done.timed_out:
            return Answer(None, _timed_out(consumer))
        if done.code != 0:
            return Answer(None, done.describe())
        out.seek(0)
        return Answer(out.read(MAX_ANSWER_BYTES + 1))
