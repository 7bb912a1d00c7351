"""A rate window shared by every rotator process on one host that pays with the same Bluum key.

Why: the throttle (`rotator.bluum.throttle`) paces each key pair for the threads of one process. A daemon rotating a
fleet and an operator's emergency `rotator rotate` (or a cron `run-due`) on the same host spend the same tenant key's 25
requests a second without knowing of each other, and Bluum answers the overflow with 429 (Retry-After of a second or
more, and an alert). With `[bluum] shared_budget_dir`, each key pair's window check counts the sends of every process
that names the same folder: a small file per key pair, named by the SHA-256 of its API key, holding the wall-clock
times of the last second's sends, read and rewritten under an exclusive `flock`. A send not yet answered is a line
`+TIME` (when it was cleared to go) and counts as sent *now* until it is answered; then it is a line `TIME`, its
answer's time (`SharedWindow.answered`; why both: `rotator.bluum.throttle`). An older rotator reads `+TIME` as TIME,
what it always did, and the lines it writes count as answered here: a host in mid-upgrade paces as before, no worse.

Wall-clock time, since monotonic clocks are per process. A clock stepped back leaves times "in the future": they are
dropped (not waited for) and a wait is never longer than the window itself, so a clock jump costs at most one
window's worth of pacing, never a stall. A file that cannot be parsed (truncated by a full disk) counts as empty: the
next send rewrites it. Processes on other hosts are not seen: give each host its share (`rate_limit_production`).

The folder is shared by users (a daemon's, root for an operator's emergency rotation), so a file in it is opened as
`rotator.core.shared_files` says: never through a link, never a file someone else could have put there for us to
truncate, and made group-writable (0660, the folder's group) so that every user of the group counts in the same window.
A folder it makes is 2770 (setgid); a folder anyone may write is refused unless it is sticky.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rotator.core.errors import ConfigError
from rotator.core.shared_files import FOLDER_MODE, SharedFileRefused, folder_problem, open_shared

__all__ = ["IN_FLIGHT_LIMIT", "SharedWindow", "check_budget_dir", "window_wait"]

log = logging.getLogger("rotator.throttle")

IN_FLIGHT_LIMIT = 60.0
"""Seconds a send not yet answered counts as sent now; then it ages out like an answered one. Longer than any request
(each phase of one is bounded by `[bluum] timeout`, 10 s by default), short enough that what a crashed process left in
flight stops costing the host's budget within a minute."""

Entry = tuple[float, bool]
"""A send in the window: (when it counts from, whether it is still in flight: then it was cleared to go then)."""


def counted(entries: Sequence[Entry], now: float, span: float) -> tuple[list[float], list[float]]:
    """The window ending at `now`: (the answered sends inside it, sorted; the sends still in flight). Times "in the
    future" (a clock stepped back) are dropped, and a send in flight since more than `IN_FLIGHT_LIMIT` seconds too."""
    answered = sorted(t for t, flying in entries if not flying and now - span < t <= now + 0.001)
    flying = [t for t, fly in entries if fly and now - IN_FLIGHT_LIMIT < t <= now + 0.001]
    return answered, flying


def in_flight_wait(answered: Sequence[float], flying: int, now: float, limit: int, span: float) -> float:
    """`window_wait` with the `flying` sends not yet answered counted at `now`: one may arrive at any moment, however
    long ago it was cleared (`rotator.bluum.throttle`)."""
    return window_wait([*answered, *[now] * flying], now, limit, span)


def window_wait(sent: Sequence[float], now: float, limit: int, span: float) -> float:
    """The sliding-window rule, for one process (`Throttle.admit`) and for a host (`SharedWindow.admit`): 0.0 when a
    send at `now` keeps at most `limit` sends in any `span` seconds, else how long until it would. `sent`: the times
    of the sends still inside the window ending at `now`, oldest first. Never longer than the window itself."""
    if len(sent) < limit:
        return 0.0
    return min(span, max(0.001, sent[-limit] + span - now))


class SharedWindow:
    """At most `limit` sends in any `1 + guard` seconds, counted over every process that uses `path`."""

    def __init__(self, path: Path, guard: float) -> None:
        self.path = path
        self.guard = guard
        self._warned = False

    def admit(self, now: float | None, limit: int) -> float | None:
        """Count a send at `now` (wall clock) and return 0.0, or return how long to wait first (nothing counted).

        None when the file cannot be used (its folder was removed, the disk is full, the name is a link or a file
        someone else put there: `rotator.core.shared_files`): the caller paces this process on its own then, rather than
        fail a rotation over its pacing; the problem is logged once. `now` None: the wall clock once the file is
        locked (`admit_now`)."""
        found = self._admit(now, limit)
        return None if found is None else found[0]

    def admit_now(self, limit: int) -> tuple[float, float] | None:
        """`admit` at the wall clock read once the file is locked: (0.0 or the wait, the time it counted the send at).

        Why read it under the lock: a time read before waiting for the lock (or before the scheduler let this process
        run again) is older than the sends another process counted meanwhile, which would then look "in the future"
        and not count, and this send would go out into a full window."""
        return self._admit(None, limit)

    def _admit(self, now: float | None, limit: int) -> tuple[float, float] | None:
        span = 1.0 + self.guard

        def count(entries: list[Entry], now: float) -> tuple[float, list[Entry] | None]:
            answered, flying = counted(entries, now, span)
            wait = in_flight_wait(answered, len(flying), now, limit, span)
            if wait:
                return wait, None
            return 0.0, [*((t, False) for t in answered), *((t, True) for t in [*flying, now])]

        return self._update(count, now)

    def answered(self, sent: float, now: float | None = None) -> None:
        """The send counted at `sent` got its answer at `now` (wall clock; None: read once the file is locked): count
        it then from here on, the latest it can have arrived (`rotator.bluum.throttle`). A file that cannot be used
        is left alone, as in `admit`."""

        def move(entries: list[Entry], now: float) -> tuple[float, list[Entry] | None]:
            mark = f"{sent:.6f}"
            ours = [i for i, (t, flying) in enumerate(entries) if f"{t:.6f}" == mark]
            ours.sort(key=lambda i: not entries[i][1])  # its line in flight; a twin of the same microsecond stays
            left = [entry for i, entry in enumerate(entries) if not ours or i != ours[0]]
            return 0.0, sorted([*left, (max(now, sent), False)])

        self._update(move, now)

    def _update(
        self, change: Callable[[list[Entry], float], tuple[float, list[Entry] | None]], now: float | None
    ) -> tuple[float, float] | None:
        """Read the times under the file's lock, and write what `change` makes of them (None: leave the file); `now`
        None is the wall clock once locked. Returns what `change` returned first, and the time it was given."""
        try:
            fd = open_shared(self.path)
        except (OSError, SharedFileRefused) as exc:
            self._unusable(exc)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            at = time.time() if now is None else now
            result, entries = change(self._read(fd), at)
            if entries is not None:
                data = "\n".join(f"+{t:.6f}" if flying else f"{t:.6f}" for t, flying in entries).encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data)
            return result, at
        except OSError as exc:
            self._unusable(exc)
            return None
        finally:
            os.close(fd)  # closing releases the lock

    def _unusable(self, exc: OSError | SharedFileRefused) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "the shared rate window %s cannot be used (%s); this process paces itself alone until it can",
                self.path,
                (exc.strerror if isinstance(exc, OSError) else None) or exc,
            )

    def _read(self, fd: int) -> list[Entry]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 64 * 1024)
        try:
            return [(float(line), line.startswith("+")) for line in raw.decode().split()]
        except (UnicodeDecodeError, ValueError):
            log.warning("the shared rate window %s could not be read; starting it afresh", self.path)
            return []


def check_budget_dir(folder: Path) -> Path:
    """The folder `[bluum] shared_budget_dir` names, made if missing (mode 2770: its owner and group share it);
    ConfigError when it cannot be used, or could be used against this process (a link, a folder anyone may write)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
        _set_folder_mode(folder)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(_unusable(folder, exc.strerror or str(exc))) from None
    try:
        found = folder.lstat()
    except OSError as exc:
        raise ConfigError(_unusable(folder, exc.strerror or str(exc))) from None
    if stat.S_ISLNK(found.st_mode):
        raise ConfigError(
            _unusable(folder, f"it is a symbolic link (to {folder.resolve()}); name the folder itself, not a link")
        )
    if not stat.S_ISDIR(found.st_mode):
        raise ConfigError(_unusable(folder, "it is not a folder"))
    problem = folder_problem(found)
    if problem is not None:
        raise ConfigError(f"[bluum] shared_budget_dir {folder}: {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(_unusable(folder, "this user cannot write in it"))
    return folder


def _set_folder_mode(folder: Path) -> None:
    """FOLDER_MODE on the folder just made (mkdir's mode is cut by the umask and cannot set setgid), through a
    descriptor opened without following a link: whoever can write its parent could have swapped it for a link since,
    and a chmod by name would give the link's target (any file) that mode. A link found there is refused below."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return
        raise
    try:
        os.fchmod(fd, FOLDER_MODE)
    finally:
        os.close(fd)


def _unusable(folder: Path, why: str) -> str:
    return (
        f"[bluum] shared_budget_dir {folder}: {why}. Fix: name a folder every rotator process on this host can write "
        "(e.g. /run/bluum-rotator, owned by the group of the users that run it, mode 2770), or remove the key to pace "
        "each process on its own"
    )
