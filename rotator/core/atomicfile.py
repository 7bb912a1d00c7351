"""Replace a file so that readers see either the old content or the new one, never a torn mix.

Applications read the dotenv file at any moment, and a crash can happen at any moment: the new content goes to a
temporary file in the same folder (so the rename stays on one filesystem), is flushed and fsynced, then renamed over
the target with `os.replace` (atomic on POSIX), and finally the folder itself is fsynced so the rename survives a
power cut.

What applications rely on besides the content is kept: a symlink is written through (the file it points to is
replaced, in that file's folder, and the link stays a link), and the replaced file's mode, owner and group carry
over (`mode=None`), so an application reading a `root:daemon 0640` file through its group still can. A new file,
and every file of the rotator's own (`mode=0o600`), gets 0600: they hold secrets.

Nothing here logs: callers know what the file is and say so (the env store warns when it tightened a mode).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReplacedFile", "atomic_write_text", "keep_owner"]


@dataclass(frozen=True, slots=True)
class ReplacedFile:
    """What `atomic_write_text` changed besides the content, so the caller can tell a person."""

    previous_mode: int | None
    """Permission bits of the file that was replaced, or None when there was no file."""

    owner_kept: bool
    """False when the old file belonged to another user/group and we were not allowed to keep that."""

    mode: int
    """Permission bits of the file now."""

    written: Path
    """The file that was replaced: the target of a symlink, not the link."""

    @property
    def mode_tightened(self) -> bool:
        """True when the old file granted group or other users access that the new one does not."""
        return self.previous_mode is not None and bool(self.previous_mode & 0o077 & ~self.mode)

    @property
    def readable_by_everyone(self) -> bool:
        """True when any user of the machine can read the file (and the secret in it)."""
        return bool(self.mode & 0o004)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    mode: int | None = 0o600,
    *,
    encoding: str = "utf-8",
) -> ReplacedFile:
    """Write `text` to `path` atomically: temp file, write, flush, fsync, `os.replace`, fsync of the folder.

    `mode=None` keeps the replaced file's mode (0600 for a new file). A symlink is followed to its final target,
    which is what gets replaced. Line endings are written exactly as given (no newline translation), so a CRLF file
    stays CRLF. On any failure before the rename the target is untouched and the temporary file is removed; OSError
    propagates unchanged for the caller to translate.
    """
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    folder = target.parent
    previous = _stat_or_none(target)
    if mode is None:
        mode = stat.S_IMODE(previous.st_mode) if previous is not None else 0o600
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        owner_kept = keep_owner(fd, previous)
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_folder(folder)
    previous_mode = stat.S_IMODE(previous.st_mode) if previous is not None else None
    return ReplacedFile(previous_mode=previous_mode, owner_kept=owner_kept, mode=mode, written=target)


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a file creation in `folder` durable. Filesystems that cannot fsync a folder are skipped."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(dir_fd)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def keep_owner(fd: int, previous: os.stat_result | None) -> bool:
    """Give the new file the old one's owner and group when they differ from ours (root may; others may not:
    False). The env store's own writes (backends/env/target.py) keep the owner through this too."""
    if previous is None:
        return True
    created = os.fstat(fd)
    if (previous.st_uid, previous.st_gid) == (created.st_uid, created.st_gid):
        return True
    try:
        os.fchown(fd, previous.st_uid, previous.st_gid)
    except PermissionError:
        return False
    return True
