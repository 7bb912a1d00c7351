"""Reading a file that someone else may have replaced with something that is not a file.

Why: whoever can write an application's folder can put a named pipe where its dotenv file was. A plain read of it
waits for a writer for ever, so the survey every rotation makes before a revoke (which reads every configured store)
hung: one application's "file" stopped the emergency rotation of an unrelated leaked key. A device could be read
without end. So the file is opened without waiting (O_NONBLOCK: a pipe opens at once) and read only if fstat says it
is a regular file.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["NotARegularFile", "read_regular_file"]


class NotARegularFile(Exception):
    """The path is a named pipe, socket or device: `kind` says which, for the caller's message."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path` (links followed). IsADirectoryError for a folder, NotARegularFile
    for anything else that is not a regular file; OSError as `open` raises it otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise NotARegularFile(_kind(mode))
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "something else"
