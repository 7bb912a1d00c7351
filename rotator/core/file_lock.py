"""Taking an exclusive `flock` within a bounded time.

Why: a lock that another process may hold for long (a rotation's lease on the env store's lock file, a runner frozen
inside the history lock) must not make a short write wait for ever. The history's append and the env store's
in-place write each wait a few seconds, then do what their caller decides (append without the lock; refuse, nothing
written). Core: no rotator import, so `backends/` may use it.
"""

from __future__ import annotations

import fcntl
import time
from typing import Final

__all__ = ["POLL_SECONDS", "lock_within"]

POLL_SECONDS: Final = 0.05
"""How often the lock is tried again while another holder keeps it."""


def lock_within(fd: int, seconds: float) -> bool:
    """Take an exclusive flock on `fd` within `seconds`; False when another holder kept it all that time."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
