"""rotator.core.file_lock: the bounded wait the history's append and the env store's in-place write share."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from rotator.core.file_lock import lock_within


def test_a_free_lock_is_taken_at_once(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert lock_within(fd, 0.0)
    finally:
        os.close(fd)


def test_a_lock_held_elsewhere_is_given_up_after_the_wait_and_taken_once_released(tmp_path: Path) -> None:
    holder = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    waiter = os.open(tmp_path / "lock", os.O_RDWR)  # another open file description: flock conflicts with it
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        assert not lock_within(waiter, 0.2)
        assert 0.2 <= time.monotonic() - started < 2.0
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert lock_within(waiter, 0.2)
    finally:
        os.close(holder)
        os.close(waiter)
