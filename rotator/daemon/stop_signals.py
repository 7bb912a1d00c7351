"""SIGTERM and SIGINT for a long-running command (the daemon): the first asks it to stop after the step in hand, the
second ends the process at once by that signal's default action (a shell then sees 143 or 130).

Why a pipe and a watcher thread: a Python signal handler runs in the main thread between any two bytecodes of
whatever it was doing, so printing, logging or taking a lock there can deadlock or corrupt a half-written line. The
handler only counts and writes one byte (or, the second time, re-raises the signal with its default action); the
watcher thread reads the byte and calls `on_first`, where the real work is safe.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "StopSignals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """`with StopSignals(on_first):` handles SIGTERM and SIGINT for the block; the previous handlers come back after.

    `on_first(name)` runs once, in a thread of its own, at the first signal ("SIGTERM" or "SIGINT"). Enter the block
    from the main thread (Python delivers signals there only).
    """

    def __init__(self, on_first: Callable[[str], None], *, who: str = "rotator") -> None:
        self._on_first = on_first
        self._who = who
        self._count = 0
        self._read, self._write = -1, -1
        self._watcher: threading.Thread | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._read, self._write = os.pipe()
        self._watcher = threading.Thread(target=self._watch, name="rotator-signals", daemon=True)
        self._watcher.start()
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]  # what signal.signal returned before
        os.close(self._write)  # the watcher, if still waiting, reads end-of-file and returns
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        os.close(self._read)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self._count >= 2:
            name = signal.Signals(signum).name
            line = f"{self._who}: second {name}: stopping at once; `rotator resume` finishes what was in hand\n"
            os.write(2, line.encode())
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        data = os.read(self._read, 1)
        if data:  # empty: the pipe was closed, the block ended without a signal
            self._on_first(signal.Signals(data[0]).name)
