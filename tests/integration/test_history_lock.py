"""A runner frozen (SIGSTOP, a paused VM) while it holds a credential's history lock must not stop the runner that
takes over: its entries are appended after a bounded wait, and nothing is lost. A real stopped process holds the
lock, since that is the state a take-over meets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.core.events import EventKind, RotationEvent
from rotator.notify import history as history_module
from rotator.notify.history import HistoryLog

HOLD = """
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
"""


def event(kind: EventKind, at: float, message: str) -> RotationEvent:
    return RotationEvent(kind=kind, credential="trading", step="start", message=message, token="t" * 32, at=at)


def test_a_stopped_holder_of_the_history_lock_delays_an_append_but_never_blocks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(history_module, "LOCK_WAIT", 0.5, raising=False)
    history = HistoryLog(tmp_path / "history", keep=timedelta(days=30))
    history(event(EventKind.STARTED, 1.0, "before the freeze"))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "history" / "trading.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()

        def take_over() -> None:
            history(event(EventKind.RESUMED, 2.0, "the take-over"))  # a prune would run here: skipped, no lock
            history(event(EventKind.COMPLETED, 3.0, "done"))

        appending = threading.Thread(target=take_over, daemon=True)
        appending.start()
        appending.join(timeout=10)
        waited = time.monotonic() - started
        blocked = appending.is_alive()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert not blocked, f"the appends still wait for a stopped process after {waited:.1f}s"
    assert [e["message"] for e in history.read("trading")] == ["before the freeze", "the take-over", "done"]
    assert "appended without it" in caplog.text
    history(event(EventKind.STARTED, 4.0, "after the thaw"))  # the lock is free again: taken, no warning needed
    assert [e["message"] for e in history.read("trading")][-1] == "after the thaw"
