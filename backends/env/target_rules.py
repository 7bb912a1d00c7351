"""What the env store decides about its dotenv file's place, without touching it: the pure rules of the target.

Why apart: `backends.env.target` observes the path (lstat, readlink, open without following links) and writes
through it; whether what it saw is a safe place for a secret, and whether it is still the place a rotation pinned,
are decisions over plain data (`Observed`, `Pin`), walked in tests over every case with no file system at all.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from typing import Any, Final

from backends.env.links import LinkSeen, link_problems

__all__ = ["PIN_VERSION", "FileId", "Observed", "Pin", "changes", "describe", "problems", "unsafe_folder"]

PIN_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class FileId:
    """A file's identity: device, inode, owner (and its link count and whether it is a mount point, for checks)."""

    dev: int
    ino: int
    uid: int
    nlink: int = 1
    mount_point: bool = False
    regular: bool = True
    """False for a directory or a device where the file should be: the store's read names that problem."""


@dataclass(frozen=True, slots=True)
class Observed:
    """The configured path as found now: the link (if it is one), what it resolves to, the folder, the file."""

    path: str
    link: str | None
    """The symlink's text when the configured path itself is a symlink."""
    resolved: str
    folder: tuple[int, int]
    """Device and inode of the folder holding the resolved file."""
    folder_mode: int
    folder_uid: int
    link_folder: tuple[int, int, int] | None
    """Mode, owner and sticky-relevant owner of the folder holding the symlink (when the path is one): (mode, uid,
    link owner)."""
    file: FileId | None
    """None when there is no file yet (a first key)."""
    links: tuple[LinkSeen, ...] = ()
    """Every symlink met on the way to the file, for `link_problems`."""


@dataclass(frozen=True, slots=True)
class Pin:
    """What a rotation saw when it started, and the inodes it wrote since (its own renames make new ones)."""

    token: str
    path: str
    link: str | None
    resolved: str
    folder: tuple[int, int]
    file: tuple[int, int] | None
    """Device and owner of the file (None: no file yet)."""
    inodes: tuple[int, ...] = ()
    """The file's inode at the start and the inodes this rotation's writes gave it."""

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = PIN_VERSION
        return json.dumps(data, indent=2) + "\n"

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> Pin:
        file = raw.get("file")
        return Pin(
            token=str(raw["token"]),
            path=str(raw["path"]),
            link=None if raw.get("link") is None else str(raw["link"]),
            resolved=str(raw["resolved"]),
            folder=(int(raw["folder"][0]), int(raw["folder"][1])),
            file=None if file is None else (int(file[0]), int(file[1])),
            inodes=tuple(int(i) for i in raw.get("inodes", ())),
        )


def describe(observed: Observed | Pin) -> str:
    """The target as a person reads it: what the path is, where it leads, which file (never its content)."""
    if observed.link is not None:
        where = f"a symlink to {observed.link!r} (resolving to {observed.resolved})"
    elif observed.resolved != observed.path:
        where = f"a path resolving to {observed.resolved}"
    else:
        where = "a file"
    if isinstance(observed, Observed):
        if observed.file is None:
            return f"{where}, no file there"
        return f"{where}, inode {observed.file.ino} on device {observed.file.dev}, owner uid {observed.file.uid}"
    if observed.file is None:
        return f"{where}, no file there"
    inodes = "/".join(str(i) for i in observed.inodes)
    return f"{where}, inode {inodes} on device {observed.file[0]}, owner uid {observed.file[1]}"


def unsafe_folder(
    folder: str, mode: int, owner: int, protected_owner: int | None, euid: int, protected_path: str | None = None
) -> str | None:
    """Why a folder is unsafe to write a secret's file in, or None. Pure.

    Unsafe: its group or every user may write it (add, remove, rename names), unless the sticky bit keeps others from
    replacing a name that our own user owns (`protected_owner`: the owner of the file or link that sits there).
    """
    writable = mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not writable:
        return None
    if mode & stat.S_ISVTX and protected_owner == euid:
        return None
    who = "every user" if mode & stat.S_IWOTH else "its group"
    sticky = (
        " (its sticky bit protects only files of their owner, and this one is not the rotator's)"
        if (mode & stat.S_ISVTX)
        else ""
    )
    also = ""
    if mode & stat.S_ISVTX and protected_path is not None:
        also = f", or give the file to the rotator's user (then the sticky bit protects it): `chown {euid} "
        also += f"{protected_path}`"
    return (
        f"folder {folder} (mode {oct(stat.S_IMODE(mode))}, owner uid {owner}) can be written by {who}{sticky}, so "
        f"another user could swap the file for a link to any file the rotator may write. Fix: "
        f"`chmod go-w {folder}`{also}, or move the file to a folder only its owner can write"
    )


def problems(observed: Observed, *, euid: int, in_place: bool) -> list[str]:
    """Why the rotator must not write this target (empty: it may). Pure: `euid` is the rotator's user, `in_place`
    whether the store rewrites the file itself (then a hard link or a bind mount is fine)."""
    problems: list[str] = []
    file_owner = observed.file.uid if observed.file is not None else None
    folder = unsafe_folder(
        os.path.dirname(observed.resolved),
        observed.folder_mode,
        observed.folder_uid,
        file_owner,
        euid,
        observed.resolved if observed.file is not None else None,
    )
    if folder:
        problems.append(folder)
    # Every link on the way (the file's, a folder's, one a link leads through): one another user can change may
    # not lead where that user could not write (a link planted before the start; the pin guards only changes).
    problems.extend(link_problems(observed.links, observed.resolved, euid, observed.folder_uid))
    file = observed.file
    if file is not None and file.regular and not in_place:
        if file.nlink > 1:
            problems.append(
                f"{observed.resolved} has {file.nlink} names (hard links): replacing it would give this name a new "
                "file while the other names keep the old key, which the rotation then revokes. Fix: give each "
                'application its own file (a copy, or a symlink), or set `write_mode = "in_place"` on this '
                "store to rewrite the one file every name shows"
            )
        if file.mount_point:
            problems.append(
                f"{observed.resolved} is a mount point (a single-file bind mount, as a container's volume makes): "
                'a rename cannot replace it. Fix: set `write_mode = "in_place"` on this store, or mount the folder '
                "instead of the file"
            )
    return problems


def changes(pin: Pin, now: Observed, *, trusted_folder: bool) -> list[str]:
    """What differs between the pin and the target now (empty: the same target). Pure.

    A link retargeted, a path resolving elsewhere, a folder replaced: always a change. Another file under the
    same name counts when its owner differs, or when the folder belongs to another user (who can rename any
    file there over it, or plant one where there was none); in a folder only the rotator's user or root can
    write (`trusted_folder`), a new inode is an editor's save, not an attack."""
    found: list[str] = []
    if pin.link != now.link:
        before = f"a symlink to {pin.link!r}" if pin.link is not None else "not a symlink"
        after = f"a symlink to {now.link!r}" if now.link is not None else "not a symlink"
        found.append(f"the path was {before}, now it is {after}")
    if pin.resolved != now.resolved:
        found.append(f"it resolved to {pin.resolved}, now it resolves to {now.resolved}")
    elif pin.folder != now.folder:
        found.append(
            f"its folder was inode {pin.folder[1]} on device {pin.folder[0]}, now it is inode {now.folder[1]} "
            f"on device {now.folder[0]} (the folder was replaced)"
        )
    file = now.file
    if pin.file is None and file is not None and not trusted_folder:
        found.append(f"there was no file, now there is one (inode {file.ino}, owner uid {file.uid})")
    # A file removed is no redirection: the store's own rule (readers saw a key there: do not recreate it) applies.
    elif pin.file is not None and file is not None and not _same_file(pin, file, trusted_folder=trusted_folder):
        was = "/".join(str(i) for i in pin.inodes)
        found.append(
            f"the file was inode {was} on device {pin.file[0]} owned by uid {pin.file[1]}, now it is inode "
            f"{file.ino} on device {file.dev} owned by uid {file.uid} (another file was put in its place)"
        )
    return found


def _same_file(pin: Pin, file: FileId, *, trusted_folder: bool) -> bool:
    """The file the pin saw (or one this rotation wrote there): same device and owner, and (unless the folder is
    trusted) an inode it knows."""
    return pin.file is not None and (file.dev, file.uid) == pin.file and (trusted_folder or file.ino in pin.inodes)
