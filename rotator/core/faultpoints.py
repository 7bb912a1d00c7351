"""Named points between rotation steps, where crash tests kill the process.

The engine calls `reached(name)` right after every change it makes (a record write, a key created or
revoked at Bluum, a store written). In production both variables are unset and this is a dictionary
lookup. Tests set ROTATOR_TEST_TRACE_FILE to learn every point a run passes, then run again with
ROTATOR_TEST_CRASH_AT=<point> to SIGKILL the process there, and prove `rotator resume` repairs it.
ROTATOR_TEST_HOLD_AT=<point> with ROTATOR_TEST_RELEASE_FILE parks the process there until that file
exists (at most a minute), which lets a concurrency test hold the lock for as long as it needs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CRASH_ENV = "ROTATOR_TEST_CRASH_AT"
TRACE_ENV = "ROTATOR_TEST_TRACE_FILE"
HOLD_ENV = "ROTATOR_TEST_HOLD_AT"
RELEASE_ENV = "ROTATOR_TEST_RELEASE_FILE"
HOLD_LIMIT_SECONDS = 60.0


_hooks: list[Callable[[str], None]] = []


@contextmanager
def hooked(hook: Callable[[str], None]) -> Iterator[None]:
    """In-process tests: call `hook(point)` at every point for the block (it may raise to play a crash there)."""
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)


def reached(point: str) -> None:
    """Mark `point`; when a test asked to crash here, die as abruptly as a power cut allows."""
    for hook in list(_hooks):
        hook(point)
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(point + "\n")
    if os.environ.get(CRASH_ENV) == point:
        _die()
    if os.environ.get(HOLD_ENV) == point:
        _hold_until_released(os.environ.get(RELEASE_ENV, ""))


def inside(point: str) -> None:
    """A point inside one store write (not a step boundary: not traced, no hooks), where a crash test kills the
    process as `reached` does; production pays one dictionary lookup."""
    if os.environ.get(CRASH_ENV) == point:
        _die()


def _die() -> None:
    """SIGKILL this process: no handler, no cleanup, no flush. signal is imported here, as only a crash test gets
    this far (every store imports this module, `rotator status` included)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _hold_until_released(release_file: str) -> None:
    """Park here (lock held) until the test creates `release_file`, so races are set up, not hoped for."""
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while release_file and not os.path.exists(release_file) and time.monotonic() < deadline:
        time.sleep(0.02)
