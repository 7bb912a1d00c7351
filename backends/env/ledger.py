"""The env store's ledger (`backends.ledger`): a lease that is an `flock`, and the record kept in the sidecar.

Why flock: the lease is `fcntl.flock` on `<file>.rotator.lock`, which the kernel drops when the holding process
dies, so a crashed rotation never blocks the next one. The lock file also keeps the fencing number (one more at
every acquisition) and who holds the lease; a record write checks, under that flock, that the lock file still names
this lease and that the sidecar's record is still at the version read. The lock file is refused when it is another
user's (who could hold or rewrite the lock).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from backends.env.reports import FILE_MODE, os_errors, unavailable, warn_tightened
from backends.env.sidecar import Sidecar
from backends.ledger import Lease, VersionedRecord, lease_refusal
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict, StoreDenied, StoreError
from rotator.core.file_lock import lock_within
from rotator.core.state_files import explain_denied, refuse_own_file
from rotator.core.timestamps import format_timestamp

__all__ = ["LOCK_SUFFIX", "FlockLedger"]

log = logging.getLogger("rotator.store.env")

LOCK_SUFFIX: Final = ".rotator.lock"


class FlockLedger:
    """The lease (a kernel lock on the lock file, with its fencing number) and the record (in `sidecar`) of one
    env store.

    `where` names the store in messages; `check_beside` refuses to create the lock file through a link another user
    could have aimed (`DotenvTarget.check_beside`), since it is made before the target is checked."""

    def __init__(
        self,
        name: str,
        *,
        lock_path: Path,
        sidecar: Sidecar,
        where: str,
        check_beside: Callable[[Path], None],
    ) -> None:
        self.name = name
        self._lock_path = lock_path
        self._sidecar = sidecar
        self._where = where
        self._check_beside = check_beside
        self._held: dict[int, int] = {}
        """Fencing number → descriptor holding the flock, for the leases this handle holds."""
        self._described: dict[int, float] = {}
        """Fencing number → when the lock file last said who holds that lease."""
        self._mutex = threading.Lock()

    @property
    def lock_path(self) -> Path:
        """The file a lease holds a kernel lock on; it also keeps the fencing number."""
        return self._lock_path

    # ----------------------------------------------------------------------------------------------- the record

    def read_record(self) -> VersionedRecord:
        """The rotation record kept in the sidecar and its version (None and 0 before the first rotation)."""
        sidecar = self._sidecar.load()
        return VersionedRecord(sidecar.record, sidecar.record_version)

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record in the sidecar if `lease` still holds and the record is still at `version`."""
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=self.name) from exc
        with self._mutex:
            fd = self._held.get(lease.fence)
            latest = _read_holder(fd).get("fence") if fd is not None else self._latest_fence()
            latest = latest if isinstance(latest, int) else 0
            held = latest if fd is not None else None
            refusal = lease_refusal(held_fence=held, latest_fence=latest, lease=lease, now=time.time())
        if refusal:
            raise LeaseLost(
                f"{self._where}: the rotation record was not written: {refusal}; this runner changes nothing more. "
                "The lease holder (or `rotator resume`, once no lease is held) finishes"
            )
        sidecar = self._sidecar.load()
        if sidecar.record_version != version:
            raise StoreConflict(
                f"the rotation record in {self._sidecar.path} changed since it was read (version "
                f"{sidecar.record_version}, not {version}); nothing was written",
                store=self.name,
            )
        self._sidecar.save(replace(sidecar, record=record, record_version=version + 1))
        return version + 1

    # ----------------------------------------------------------------------------------------------- the lease

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """Take `flock` on `<file>.rotator.lock` (RotationInProgress at once if it is held) and a fencing number.

        The kernel lock is what excludes; the lease's expiry is bookkeeping for writes (renew before writing) and
        for the message the next contender prints.
        """
        fd = self._open_lock_file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            found = _read_holder(fd)
            os.close(fd)
            busy = RotationInProgress(
                f"another rotation of this credential is running ({_describe_holder(found)}; lock {self._lock_path}); "
                "nothing was changed. Wait for it, or if that process is gone, run `rotator resume`"
            )
            holder, until = found.get("owner"), found.get("expires_at")
            busy.held_by = holder if isinstance(holder, str) else None
            busy.held_until = float(until) if isinstance(until, int | float) else None
            raise busy from exc
        except OSError as exc:
            os.close(fd)
            raise unavailable(self.name, "locking", self._lock_path, exc) from exc
        fence, expires_at = self._take(fd, owner, ttl_seconds)
        with self._mutex:
            self._held[fence] = fd
            self._described[fence] = time.time()
        log.debug("took the rotation lock %s for %s (fence %d)", self._lock_path, owner, fence)
        return Lease(owner=owner, fence=fence, expires_at=expires_at, ttl_seconds=ttl_seconds)

    def _take(self, fd: int, owner: str, ttl_seconds: float) -> tuple[int, float]:
        """Under the fresh flock on `fd`: the next fencing number, written with its holder; the flock is dropped
        and `fd` closed if that fails (never keep a kernel lock nobody will release)."""
        try:
            if os.fstat(fd).st_ino != os.stat(self._lock_path).st_ino:
                raise RotationInProgress(
                    f"the lock file {self._lock_path} was replaced or removed while this runner took it, so another "
                    "runner may hold the lease; nothing was changed. Run the command again"
                )
            previous = _read_holder(fd).get("fence", 0)
            fence = (previous if isinstance(previous, int) and previous >= 0 else 0) + 1
            expires_at = time.time() + ttl_seconds
            _write_holder(fd, fence=fence, owner=owner, expires_at=expires_at, ttl_seconds=ttl_seconds)
        except BaseException as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if isinstance(exc, OSError):
                raise unavailable(self.name, "writing", self._lock_path, exc) from exc
            raise
        return fence, expires_at

    def _latest_fence(self) -> int:
        """The fencing number in the lock file, read without taking the lock (0 when there is none yet)."""
        try:
            holder = json.loads(self._lock_path.read_bytes() or b"null")
        except (OSError, ValueError):
            return 0
        fence = holder.get("fence", 0) if isinstance(holder, dict) else 0
        return fence if isinstance(fence, int) else 0

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        """Extend `lease`; LeaseLost unless this handle still holds the flock under that fencing number."""
        with self._mutex:
            fd = self._held.get(lease.fence)
            if fd is None or _read_holder(fd).get("fence") != lease.fence:
                raise LeaseLost(
                    f"{self._where}: the rotation lease of {lease.owner} (fence {lease.fence}) is no longer held "
                    "by this runner; it changes nothing more"
                )
            now = time.time()
            expires_at = now + ttl_seconds
            # The flock is what excludes; the holder line is for the next contender's message: refreshed now and
            # then, not at every step (each write is a syscall and an fsync).
            if now - self._described.get(lease.fence, 0.0) >= ttl_seconds / 3:
                _write_holder(fd, fence=lease.fence, owner=lease.owner, expires_at=expires_at, ttl_seconds=ttl_seconds)
                self._described[lease.fence] = now
        return replace(lease, expires_at=expires_at, ttl_seconds=ttl_seconds)

    def release(self, lease: Lease) -> None:
        """Drop the flock; the lock file keeps the fencing number for the next holder."""
        with self._mutex:
            fd = self._held.pop(lease.fence, None)
            self._described.pop(lease.fence, None)
        if fd is None:
            return
        try:
            if _read_holder(fd).get("fence") == lease.fence:
                _write_holder(fd, fence=lease.fence, owner=None, expires_at=None, ttl_seconds=None)
                log.debug("released the rotation lock %s", self._lock_path)
            else:  # the lock was lost and taken: the lock file is the new holder's now
                log.warning(
                    "the rotation lock %s of %s (fence %d) had been lost and taken over before it was released",
                    self._lock_path,
                    lease.owner,
                    lease.fence,
                    extra={"fields": {"store": self.name, "owner": lease.owner}},
                )
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release any lease this handle still holds (a runner that stops without releasing)."""
        with self._mutex:
            held = list(self._held)
        for fence in held:
            self.release(Lease(owner="", fence=fence, expires_at=0.0, ttl_seconds=0.0))

    @contextmanager
    def write_lock(self, path: Path) -> Iterator[None]:
        """The store's lock around an in-place write of `path`: held already when this handle holds the lease;
        otherwise taken for the write (waiting a little for another rotation's short write, never for its whole
        lease)."""
        with self._mutex:
            held = bool(self._held)
        if held:
            yield
            return
        fd = self._open_lock_file()
        try:
            if not lock_within(fd, 10.0):
                raise RotationInProgress(
                    f"{self._lock_path} is held by another rotation, so {path} was not rewritten in "
                    "place; nothing was written. Run the command again when it is done"
                )
            yield
        finally:
            os.close(fd)

    def _open_lock_file(self) -> int:
        """The lock file, opened without following a link; one of another user's (who could hold or rewrite the
        lock), or one this user may not open, is refused with its owner and the fix (`rotator.core.state_files`); so is
        a link on the way to it that another user could have aimed (`DotenvTarget.check_beside`)."""
        self._check_beside(self._lock_path)
        action = "opening the lock file"
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        except PermissionError as exc:
            raise StoreDenied(explain_denied(self._lock_path, action), store=self.name) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse_own_file(self._lock_path, store=self.name)
            with os_errors(self.name, action, self._lock_path):
                raise
        try:
            refuse_own_file(self._lock_path, store=self.name, opened=os.fstat(fd))
            with os_errors(self.name, action, self._lock_path):
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                if mode & 0o077:
                    os.fchmod(fd, FILE_MODE)
                    warn_tightened(self.name, self._lock_path, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd


# --------------------------------------------------------------------------------------------------- lock file


def _write_holder(
    fd: int, *, fence: int, owner: str | None, expires_at: float | None, ttl_seconds: float | None
) -> None:
    """The lock file: the fencing number (which must survive) and who holds the lease, for the next contender."""
    holder: dict[str, Any] = {"fence": fence}
    if owner is not None:
        import socket  # here: a lease is written by a rotation only, and `rotator status` reads this module too

        holder.update(
            owner=owner,
            pid=os.getpid(),
            host=socket.gethostname(),
            since=format_timestamp(),
            expires_at=expires_at,
            ttl_seconds=ttl_seconds,
        )
    data = json.dumps(holder).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """The lock file's content, or {} when it is empty or unreadable (an old or fresh lock file)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe_holder(holder: dict[str, Any]) -> str:
    """`owner, pid N on host H since T`, or a plain phrase when the holder has not written it yet."""
    if "owner" not in holder:
        return "holder unknown"
    return (
        f"{holder.get('owner', '?')}, pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('since', '?')}"
    )
