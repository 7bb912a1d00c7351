"""Running a program the deployer named (a reload action, a health check, a consumer's attestation) to its end or its
timeout, in a session of its own.

One way for all of them, because the subtle part is the same: the program may fork (a script that starts a service,
`kubectl` that starts a plugin), so a timeout must kill the whole process group it started, not only its first
process, and then reap it, or the rotator leaves processes behind and waits on pipes they still hold. Output goes to
the files the caller hands over (temporary files, never pipes: a chatty program cannot block on a full pipe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True, slots=True)
class Finished:
    """How a program ended: `code` (negative: killed by that signal), or `timed_out`, or it never `started`."""

    code: int | None = None
    timed_out: bool = False
    start_error: str | None = None
    """Why it could not be started (the OS's words), when it was not."""

    def describe(self) -> str:
        """ "exit 3" or "killed by signal 9", for a program that ran to its end."""
        code = self.code or 0
        return f"killed by signal {-code}" if code < 0 else f"exit {code}"


def run_in_own_session(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
) -> Finished:
    """Run `argv` without a shell, stdin closed, in its own session; past `timeout` seconds SIGKILL its whole process
    group and reap it."""
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: a timeout kills what it started too
            close_fds=True,
        )
    except OSError as exc:
        return Finished(start_error=exc.strerror or type(exc).__name__)
    try:
        return Finished(code=process.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return Finished(timed_out=True)
