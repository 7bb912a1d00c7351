"""File operations relative to a folder descriptor, never through a path that could be swapped under them.

Why: the env store writes an application's file in a folder that someone else may be able to change. Every call here
works on a descriptor of a folder opened component by component with `O_NOFOLLOW` (`open_no_follow`), so a link
planted mid-write leads nowhere. The temporary copy a write makes is locked (`flock`) until it is renamed, which
tells a crashed write's leftover (`remove_leftover`) from a write under way. Which file is the right one is decided
by `backends.env.target`; this module only does the I/O, faithfully.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from typing import Final

__all__ = [
    "create_temp",
    "file_owner",
    "fsync_dir",
    "is_mount_point",
    "open_no_follow",
    "read_all",
    "remove_leftover",
    "temp_name_pattern",
    "write_all",
    "write_in_place",
]

_TEMP_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789_"
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS: Final = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names our temporary copies of `name` get (the same as `tempfile.mkstemp` gave them before)."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def remove_leftover(dir_fd: int, entry: str, owners: set[int]) -> bool:
    """Remove `entry` if it is a leftover of ours: a regular file that no writer holds locked, of our user or of
    the dotenv file's owner (a write gives its copy the file's owner before the rename, so a crash leaves one of
    theirs; removing a name of theirs in their folder takes nothing from them, and nobody else could put one
    in a folder that is not theirs)."""
    try:
        st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in owners:
            return False
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a writer is working on it right now
        again = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
        if (again.st_dev, again.st_ino) != (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
            return False
        os.unlink(entry, dir_fd=dir_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def file_owner(dir_fd: int, name: str) -> tuple[int, ...]:
    """The owner of the regular file `name` in the folder, if there is one."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ()
    return (st.st_uid,) if stat.S_ISREG(st.st_mode) else ()


def open_no_follow(folder: str) -> int:
    """An fd of the absolute `folder`, every component opened with O_NOFOLLOW relative to the one before."""
    parts = [part for part in folder.split("/") if part]
    fd = os.open("/", _PATH_FLAGS if parts else _DIR_FLAGS)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            child = os.open(part, _DIR_FLAGS if last else _PATH_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_mount_point(path: str) -> bool:
    """True when `path` is a mount point (/proc/self/mountinfo): a single-file bind mount shows there."""
    if not path:
        return False
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == path:
                    return True
    except OSError:
        return False
    return False


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    """A new temporary file beside `name` (O_EXCL, never through a link), locked until its writer is done."""
    import secrets  # here: only a write needs a temporary name, and `rotator status` only reads

    for _ in range(100):
        temp_name = f".{name}.{''.join(secrets.choice(_TEMP_ALPHABET) for _ in range(8))}.tmp"
        try:
            fd = os.open(
                temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
            )
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        return temp_name, fd
    raise FileExistsError(errno.EEXIST, "no free temporary file name")


def read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_in_place(fd: int, data: bytes) -> None:
    """Same inode: write from the start, cut what is left of the old text, fsync. A reader at that very moment may
    see a mix (that is what in-place costs); the new text is never shorter than needed first."""
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
