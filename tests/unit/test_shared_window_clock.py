"""The host's shared rate window reads the time of a send once its file is locked: a process that waited for the lock
(another process held it, or the scheduler kept this one off the CPU) must count the sends made meanwhile, which a
time read before the wait would place "in the future" and drop."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from rotator.bluum.shared_window import SharedWindow
from rotator.bluum.throttle import Slot, Throttle


def test_a_send_that_waited_for_the_window_file_counts_the_sends_made_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "k.window"
    throttle = Throttle(10.0)
    throttle.shared = SharedWindow(path, throttle.guard)
    assert throttle.shared.admit(time.time() - 60, limit=10) == 0.0  # the file exists, with one long-gone send
    found: list[Slot | None] = []
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process holds the window
        sender = threading.Thread(target=lambda: found.append(throttle.acquire(time.monotonic, time.sleep)))
        sender.start()
        time.sleep(0.2)  # the sender is waiting for the lock now
        now = time.time()
        sends = "\n".join(f"{now - 0.01 + n * 0.001:.6f}" for n in range(10))  # ten sends made meanwhile
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, sends.encode())
    finally:
        os.close(fd)  # releases the lock
    sender.join(10)
    (slot,) = found
    assert slot is not None
    assert slot.waited > 0.5, f"sent into a full window after {slot.waited:.3f} s"
    assert slot.wall is not None
    assert slot.wall >= now - 0.01 + 1.0
