"""Opening a small file in a folder several local users share, without being turned against any other file.

Why: `[bluum] shared_budget_dir` is written by every rotator process on a host (the daemon's user, a cron job, an
operator's `sudo rotator rotate --emergency`), so whoever may write in that folder can put a name there. A process
running as root that followed a symbolic link planted there, or wrote through a hard link, would truncate the file it
points to (a review made root empty a 0600 root file this way). So:

- the folder is opened once without following a link (`O_DIRECTORY | O_NOFOLLOW`) and the file relative to that
  descriptor with `O_NOFOLLOW` (a symbolic link is refused, not followed) and `O_NONBLOCK` (a FIFO cannot hang us);
- what was opened must be a regular file with exactly one link (a hard link to a file elsewhere shows two), owned by
  someone who could have made it there: this user, root, the folder's owner, or (in a folder only its group may
  write) a member of the folder's group;
- a folder anyone may write is refused unless it is sticky (then only a file's owner can replace it);
- a file this process creates is made with `O_EXCL` and then given `FILE_MODE` whatever the umask, and the folder's
  group, so that every user of that group can open it: a file made 0600 or 0640 by one user would leave the others
  pacing alone.

The decisions (`folder_problem`, `file_problem`) are pure functions of `stat` results; `open_shared` does the I/O.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

__all__ = ["FILE_MODE", "FOLDER_MODE", "SharedFileRefused", "file_problem", "folder_problem", "open_shared"]

FOLDER_MODE: Final = 0o2770
"""A shared folder made by the rotator: its owner and group may use it, and (setgid) every file made in it gets the
folder's group, whoever makes it."""
FILE_MODE: Final = 0o660
"""A shared file: its owner and the folder's group read and write it; others nothing."""


class SharedFileRefused(Exception):
    """The file (or its folder) is not one this process may write: the message says why and what to do."""


def folder_problem(folder: os.stat_result) -> str | None:
    """Why a folder cannot hold shared files safely, or None. Pure."""
    if not stat.S_ISDIR(folder.st_mode):
        return "it is not a folder"
    if folder.st_mode & stat.S_IWOTH and not folder.st_mode & stat.S_ISVTX:
        return (
            f"every user of this host may write in it (mode {stat.S_IMODE(folder.st_mode):04o}, not sticky), so "
            "anyone could put a link there for this process to write through. Fix: give it the group of the users "
            "that run the rotator and mode 2770 (`chgrp GROUP`, `chmod 2770`), or make it sticky (`chmod +t`)"
        )
    return None


def file_problem(found: os.stat_result, folder: os.stat_result, euid: int) -> str | None:
    """Why the opened file must not be written, or None. Pure: `found` is the file's fstat, `folder` its folder's,
    `euid` this process's effective user."""
    if not stat.S_ISREG(found.st_mode):
        return "it is not a regular file"
    if found.st_nlink != 1:
        return f"it has {found.st_nlink} names (a hard link to a file elsewhere?)"
    group_only = not folder.st_mode & stat.S_IWOTH
    if found.st_uid in (euid, 0, folder.st_uid) or (group_only and found.st_gid == folder.st_gid):
        return None
    return (
        f"it belongs to user {found.st_uid} and group {found.st_gid}, neither this user, root, the folder's owner "
        "nor the folder's group"
    )


def open_shared(path: Path) -> int:
    """Open `path` read-write for this process (made if missing), refusing anything `folder_problem` or
    `file_problem` names (SharedFileRefused). The caller closes the descriptor. OSError as the system raised it."""
    folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        folder = os.fstat(folder_fd)
        problem = folder_problem(folder)
        if problem is not None:
            raise SharedFileRefused(f"its folder {path.parent}: {problem}")
        fd = _open_in(folder_fd, path)
        try:
            found = os.fstat(fd)
            problem = file_problem(found, folder, os.geteuid())
            if problem is not None:
                raise SharedFileRefused(f"{path}: {problem}. Fix: remove it; the rotator makes it again")
            _share(fd, found, folder)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(folder_fd)


def _open_in(folder_fd: int, path: Path) -> int:
    """The file's descriptor, made if missing (O_EXCL: never someone else's file by accident). A name that is a
    symbolic link is refused (ELOOP)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _ in range(3):  # another process may create or remove it between our two tries
        try:
            return os.open(path.name, flags, dir_fd=folder_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SharedFileRefused(
                    f"{path} is a symbolic link. Fix: remove it; the rotator makes it again"
                ) from None
            raise
        try:
            return os.open(path.name, flags | os.O_CREAT | os.O_EXCL, FILE_MODE, dir_fd=folder_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path} kept appearing and disappearing")


def _share(fd: int, found: os.stat_result, folder: os.stat_result) -> None:
    """Give a file this user owns the folder's group and FILE_MODE, so the other users that share the folder can
    open it (best effort: a user outside the group cannot give it away, and then the others pace alone)."""
    if found.st_uid != os.geteuid():
        return
    try:
        if found.st_gid != folder.st_gid:
            os.fchown(fd, -1, folder.st_gid)
        if stat.S_IMODE(found.st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except PermissionError:
        pass
