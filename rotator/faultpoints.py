"""Named points between rotation steps, where crash tests kill the process.

The engine calls `reached(name)` right after every change it makes (a record write, a key created or
revoked at Bluum, a store written). In production both variables are unset and this is a dictionary
lookup. Tests set ROTATOR_TEST_TRACE_FILE to learn every point a run passes, then run again with
ROTATOR_TEST_CRASH_AT=<point> to SIGKILL the process there, and prove `rotator resume` repairs it.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "ROTATOR_TEST_CRASH_AT"
TRACE_ENV = "ROTATOR_TEST_TRACE_FILE"


def reached(point: str) -> None:
    """Mark `point`; when a test asked to crash here, die as abruptly as a power cut allows."""
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(point + "\n")
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
