"""Where the env store writes: the application's dotenv file, pinned for the length of a rotation.

Why: the dotenv file sits in the application's folder, and whoever can write that folder can swap the file for a
symlink (to `/etc/passwd`, to another credential's file) while a rotation waits for Bluum. Following the path again
at write time would write the new key wherever that person pointed it. So:

- **Refuse unsafe places before anything changes** (`check`): a folder (of the file, or of the configured symlink)
  that its group or every user can write, unless the sticky bit protects a file of the rotator's own user; a file
  with more than one name (a hard link: a rename would split it and the other name would keep a revoked key); a
  single-file bind mount (a rename cannot replace it). The last two are fine with `write_mode = "in_place"`.
- **Pin the target when the rotation starts** (`pin`): what the configured path resolves to, whether it is a
  symlink and its text, the folder's device and inode and the file's device, inode and owner. The pin is kept in a
  small file in the rotator's state folder (no secret in it), so a `resume` in another process checks the same pin.
- **Check the pin before every write**, and write relative to the folder opened without following links
  (component by component, `O_NOFOLLOW`): open, read, create the temporary file, rename, fsync all go through that
  descriptor, and the file is opened with `O_NOFOLLOW` and checked by `fstat`. A change is `TargetChanged` (exit 4):
  nothing is written to the new target, the record keeps the new key for `resume` or `rollback`.
- **Remove leftovers of a crashed write** (`sweep`): a crash between fsync and rename leaves `.<name>.XXXXXXXX.tmp`
  (a copy of the new secret) in the folder. A writer holds an `flock` on its temporary file until the rename, so a
  leftover is one of that pattern, a regular file of our own user, whose lock nobody holds.

A deployer's symlink (a release folder's `.env` retargeted by each deploy) stays supported: it is followed when the
rotation starts and pinned; only a change during the rotation is refused. The pure decisions (`unsafe_folder`,
`describe`) take no I/O.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

from backends.env.links import LinkSeen, link_problems, resolve
from rotator.core.atomicfile import ReplacedFile, keep_owner
from rotator.core.errors import StoreCorrupt, StoreError, StoreUnavailable, TargetChanged, UnsafeTarget
from rotator.core.faultpoints import inside
from rotator.core.state_files import read_own_file, write_own_file

__all__ = [
    "IN_PLACE",
    "REPLACE",
    "WRITE_MODES",
    "DotenvTarget",
    "Observed",
    "Pin",
    "describe",
    "temp_name_pattern",
    "unsafe_folder",
]

log = logging.getLogger("rotator.store.env")

REPLACE: Final = "replace"
IN_PLACE: Final = "in_place"
WRITE_MODES: Final = (REPLACE, IN_PLACE)
PIN_VERSION: Final = 1
_TEMP_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789_"
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS: Final = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names our temporary copies of `name` get (the same as `tempfile.mkstemp` gave them before)."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")


# ----------------------------------------------------------------------------------------------- what is there


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


# ----------------------------------------------------------------------------------------------- the target


class DotenvTarget:
    """One env store's dotenv file: checks, the pin, and the writes that go only where the pin says."""

    def __init__(
        self,
        path: Path,
        *,
        store: str,
        pin_path: Path,
        write_mode: str = REPLACE,
        euid: int | None = None,
        state_setting: str = "state_dir",
        pin_in_state_dir: bool = True,
    ) -> None:
        self._path = path
        self._store = store
        self._pin_path = pin_path
        self._state_setting = state_setting
        """The setting that names the pin's folder, for messages (`rotator.core.state_files`)."""
        self._pin_in_state_dir = pin_in_state_dir
        """False for a store without a state folder (the pin beside the file): the folder is not the rotator's."""
        self._write_mode = write_mode
        self._euid = os.geteuid() if euid is None else euid

    @property
    def pin_path(self) -> Path:
        """Where the pin of the rotation under way is kept (no secret in it)."""
        return self._pin_path

    @property
    def in_place(self) -> bool:
        return self._write_mode == IN_PLACE

    # ------------------------------------------------------------------------------------------- observing

    def observe(self) -> Observed:
        """The configured path now, resolved once, the folder opened without following links."""
        path = str(self._path)
        link = None
        link_folder = None
        try:
            own = os.lstat(path)
        except FileNotFoundError:
            own = None
        except OSError as exc:
            raise self._unavailable("inspecting", path, exc) from exc
        if own is not None and stat.S_ISLNK(own.st_mode):
            link = os.readlink(path)
            parent = os.stat(os.path.dirname(os.path.abspath(path)) or "/")
            link_folder = (parent.st_mode, parent.st_uid, own.st_uid)
        resolved, links = resolve(path)
        if os.path.realpath(path) != resolved:  # a link swapped while it was walked: judge nothing half-seen
            raise TargetChanged(
                f"store {self._store!r}: {self._path} is changing while it is read (a link on the way to it was "
                "replaced); nothing was written. Run the command again once nobody changes it"
            )
        folder_path, name = os.path.split(resolved)
        with self._folder(folder_path) as dir_fd:
            info = os.fstat(dir_fd)
            file = self._file_id(dir_fd, name, resolved)
        return Observed(
            path=path,
            link=link,
            resolved=resolved,
            folder=(info.st_dev, info.st_ino),
            folder_mode=info.st_mode,
            folder_uid=info.st_uid,
            link_folder=link_folder,
            file=file,
            links=links,
        )

    def _file_id(self, dir_fd: int, name: str, resolved: str) -> FileId | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):  # a link appeared between realpath and here: the path is moving
            raise TargetChanged(
                f"store {self._store!r}: {self._path} is changing while it is read (a symlink appeared in its "
                "folder); nothing was written. Run the command again once nobody changes it"
            )
        folder = os.fstat(dir_fd)
        return FileId(
            dev=st.st_dev,
            ino=st.st_ino,
            uid=st.st_uid,
            nlink=st.st_nlink,
            mount_point=st.st_dev != folder.st_dev or _is_mount_point(resolved),
            regular=stat.S_ISREG(st.st_mode),
        )

    # ------------------------------------------------------------------------------------------- checks

    def check(self) -> Observed:
        """Refuse (UnsafeTarget, exit 2) a target the rotator must not write; the observation when it may."""
        observed = self.observe()
        problems = self.problems(observed)
        if problems:
            raise UnsafeTarget(
                f"{self._path} is not a safe place to write a key: {'; '.join(problems)}. Nothing was changed",
                store=self._store,
            )
        return observed

    def check_beside(self, path: Path) -> None:
        """Refuse (UnsafeTarget, exit 2) to create `path` (the lock file beside the configured one) through a link
        another user could have aimed: it is made before the target is checked, and would be made wherever the
        link leads."""
        resolved, links = resolve(str(path.parent))
        try:
            owner: int | None = os.stat(resolved).st_uid
        except OSError:
            owner = None
        problems = link_problems(links, resolved, self._euid, owner)
        if problems:
            raise UnsafeTarget(
                f"{self._path} is not a safe place to write a key: {'; '.join(problems)}. Nothing was changed",
                store=self._store,
            )

    def problems(self, observed: Observed) -> list[str]:
        """Why the rotator must not write this target (empty: it may)."""
        problems: list[str] = []
        file_owner = observed.file.uid if observed.file is not None else None
        folder = unsafe_folder(
            os.path.dirname(observed.resolved),
            observed.folder_mode,
            observed.folder_uid,
            file_owner,
            self._euid,
            observed.resolved if observed.file is not None else None,
        )
        if folder:
            problems.append(folder)
        # Every link on the way (the file's, a folder's, one a link leads through): one another user can change may
        # not lead where that user could not write (a link planted before the start; the pin guards only changes).
        problems.extend(link_problems(observed.links, observed.resolved, self._euid, observed.folder_uid))
        file = observed.file
        if file is not None and file.regular and not self.in_place:
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

    # ------------------------------------------------------------------------------------------- the pin

    def load_pin(self) -> Pin | None:
        """The pin of the rotation under way (None when none is kept). It is one of the rotator's own files: one that
        another user could have written is refused (`rotator.core.state_files`), since it says which file may be
        written."""
        data = read_own_file(
            self._pin_path, setting=self._state_setting, store=self._store, check_folder=self._pin_in_state_dir
        )
        if data is None:
            return None
        try:
            raw = json.loads(data)
            if raw.get("version") != PIN_VERSION:
                raise ValueError("unknown version")
            return Pin.from_dict(raw)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise StoreCorrupt(
                f"{self._pin_path} (what the rotation under way found at {self._path} when it started) cannot be "
                f"read ({type(exc).__name__}): remove it and run the command again; the target is then pinned anew",
                store=self._store,
            ) from None

    def kept_pin(self, token: str) -> Pin | None:
        """The pin kept for rotation `token`, if any."""
        kept = self.load_pin()
        return kept if kept is not None and kept.token == token else None

    def pin(self, token: str, observed: Observed | None = None) -> Pin:
        """The pin of rotation `token`: the one kept, or (a new rotation) the target as `observed` (checked) or as
        it is now, checked first.

        Leftovers of a crashed write are removed here too: the start of a rotation is the "next run"."""
        kept = self.kept_pin(token)
        if kept is not None:
            return kept
        observed = observed or self.check()
        pin = Pin(
            token=token,
            path=observed.path,
            link=observed.link,
            resolved=observed.resolved,
            folder=observed.folder,
            file=None if observed.file is None else (observed.file.dev, observed.file.uid),
            inodes=() if observed.file is None else (observed.file.ino,),
        )
        self._save_pin(pin)
        self.sweep(observed.resolved)
        return pin

    def drop_pin(self, token: str) -> None:
        """The rotation `token` writes no more: forget its pin (a pin of another rotation stays)."""
        if self.kept_pin(token) is not None:
            with contextlib.suppress(FileNotFoundError):
                self._pin_path.unlink()

    def _save_pin(self, pin: Pin) -> None:
        write_own_file(
            self._pin_path,
            pin.to_json(),
            setting=self._state_setting,
            store=self._store,
            check_folder=self._pin_in_state_dir,
        )

    def verify(self, pin: Pin) -> Observed:
        """Raise TargetChanged unless the target is still what `pin` says; then the usual checks."""
        observed = self.observe()
        changes = self.changes(pin, observed, trusted_folder=observed.folder_uid in (0, self._euid))
        if changes:
            raise TargetChanged(
                f"store {self._store!r}: {self._path} changed during rotation {pin.token[:8]}: {'; '.join(changes)}. "
                f"Nothing was written to it; the new key is kept in the rotation record. If the change is yours (a "
                f"deploy), remove {self._pin_path} and run `rotator resume` for this credential: the target is then "
                "pinned anew. If it is not, restore the file (or link) as it was and run `rotator resume`, or undo the "
                "rotation with `rotator rollback`; then find out who changed it"
            )
        problems = self.problems(observed)
        if problems:
            raise UnsafeTarget(
                f"{self._path} is not a safe place to write a key any more: {'; '.join(problems)}. Nothing was "
                "written to it",
                store=self._store,
            )
        return observed

    @staticmethod
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

    # ------------------------------------------------------------------------------------------- read, write

    def rewrite(
        self,
        pin: Pin | None,
        render: Callable[[bytes | None], bytes | None],
        *,
        lock: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> ReplacedFile | None:
        """Read the pinned file through the pinned folder, `render` its bytes (None: no file yet) to the new bytes
        (None: nothing to write), and write them there: a rename, or in place (`write_mode = "in_place"`).

        Without a pin (a write outside a rotation's calls), the target is checked as it is now."""
        observed = self.verify(pin) if pin is not None else self.check()
        self.sweep(observed.resolved)  # a resumed write is the "next run" after a crash mid-write
        folder_path, name = os.path.split(observed.resolved)
        with self._folder(folder_path) as dir_fd:
            if (os.fstat(dir_fd).st_dev, os.fstat(dir_fd).st_ino) != observed.folder:
                raise TargetChanged(
                    f"store {self._store!r}: the folder {folder_path} of {self._path} was replaced while it was being "
                    "written; nothing was written. Find out who changed it, then run `rotator resume`"
                )
            flags = (os.O_RDWR if self.in_place else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd: int | None = os.open(name, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                fd = None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise TargetChanged(
                        f"store {self._store!r}: {observed.resolved} became a symlink while it was being written; "
                        "nothing was written to it. Find out who changed it, then run `rotator resume`"
                    ) from None
                raise
            try:
                current = os.fstat(fd) if fd is not None else None
                expected = observed.file
                seen = None if current is None else (current.st_dev, current.st_ino)
                if seen != (None if expected is None else (expected.dev, expected.ino)):
                    raise TargetChanged(
                        f"store {self._store!r}: {observed.resolved} was replaced while it was being written; nothing "
                        "was written to it. Find out who changed it, then run `rotator resume`"
                    )
                old = _read_all(fd) if fd is not None else None
                new = render(old)
                if new is None:
                    return None
                if self.in_place and fd is not None and current is not None:
                    with lock():
                        _write_in_place(fd, new)
                    mode = stat.S_IMODE(current.st_mode)
                    return ReplacedFile(previous_mode=mode, owner_kept=True, mode=mode, written=Path(observed.resolved))
                return self._replace(dir_fd, name, new, current, pin, Path(observed.resolved))
            finally:
                if fd is not None:
                    os.close(fd)

    def _replace(
        self, dir_fd: int, name: str, data: bytes, previous: os.stat_result | None, pin: Pin | None, written: Path
    ) -> ReplacedFile:
        """Temporary file in the pinned folder (locked until renamed), fsync, pin updated, rename, folder fsync."""
        mode = stat.S_IMODE(previous.st_mode) if previous is not None else 0o600
        temp = _create_temp(dir_fd, name)
        temp_name, fd = temp
        try:
            os.fchmod(fd, mode)
            owner_kept = keep_owner(fd, previous)
            _write_all(fd, data)
            os.fsync(fd)
            inside("dotenv.written")  # tests: a crash here leaves the temporary copy for the next run to remove
            if pin is not None:  # the rename gives the file this inode: ours, so the pin accepts it (and, should
                # the rename not happen, still the inode the file has now, which was just verified)
                now = (previous.st_ino,) if previous is not None else ()
                made = os.fstat(fd)  # its owner too: the old one's, unless we were not allowed to keep it
                self._save_pin(replace(pin, file=(made.st_dev, made.st_uid), inodes=(*now, made.st_ino)))
            try:
                os.replace(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    raise StoreError(
                        f"{written} cannot be replaced by a rename (the system says it is busy: a single-file bind "
                        "mount, as a container's volume makes). Nothing was written to it. Fix: set "
                        '`write_mode = "in_place"` on this store, or mount the folder instead of the file',
                        store=self._store,
                    ) from None
                raise
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)  # drops the lock: after the rename, or after the temporary file is gone
        _fsync_dir(dir_fd)
        previous_mode = stat.S_IMODE(previous.st_mode) if previous is not None else None
        return ReplacedFile(previous_mode=previous_mode, owner_kept=owner_kept, mode=mode, written=written)

    # ------------------------------------------------------------------------------------------- leftovers

    def sweep(self, resolved: str | None = None) -> list[str]:
        """Remove the temporary copies a crashed write left beside the file; the names removed (logged)."""
        folder_path, name = os.path.split(resolved or os.path.realpath(self._path))
        pattern = temp_name_pattern(name)
        removed: list[str] = []
        try:
            with self._folder(folder_path) as dir_fd:
                owners = {self._euid, *_file_owner(dir_fd, name)}
                for entry in os.listdir(dir_fd):
                    if pattern.fullmatch(entry) and self._remove_leftover(dir_fd, entry, owners):
                        removed.append(os.path.join(folder_path, entry))
        except OSError as exc:
            log.warning(
                "could not look for leftovers of a crashed write beside %s: %s",
                self._path,
                exc.strerror or type(exc).__name__,
                extra={"fields": {"store": self._store}},
            )
        if removed:
            log.warning(
                "removed %d temporary cop%s of %s that a crashed write left behind (each may have held a secret): %s",
                len(removed),
                "y" if len(removed) == 1 else "ies",
                self._path,
                ", ".join(removed),
                extra={"fields": {"store": self._store, "removed": removed}},
            )
        return removed

    def _remove_leftover(self, dir_fd: int, entry: str, owners: set[int]) -> bool:
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

    # ------------------------------------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def _folder(self, folder: str) -> Iterator[int]:
        """`folder` opened component by component without following any symlink (the path is a resolved one)."""
        try:
            fd = _open_no_follow(folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise TargetChanged(
                    f"store {self._store!r}: a folder on the way to {self._path} ({folder}) became a symlink while it "
                    "was being opened; nothing was written. Find out who changed it, then run the command again"
                ) from None
            raise
        try:
            yield fd
        finally:
            os.close(fd)

    def _unavailable(self, action: str, path: str, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(f"{action} {path} failed: {exc.strerror or type(exc).__name__}", store=self._store)


def _file_owner(dir_fd: int, name: str) -> tuple[int, ...]:
    """The owner of the regular file `name` in the folder, if there is one."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ()
    return (st.st_uid,) if stat.S_ISREG(st.st_mode) else ()


def _same_file(pin: Pin, file: FileId, *, trusted_folder: bool) -> bool:
    """The file the pin saw (or one this rotation wrote there): same device and owner, and (unless the folder is
    trusted) an inode it knows."""
    return pin.file is not None and (file.dev, file.uid) == pin.file and (trusted_folder or file.ino in pin.inodes)


def _open_no_follow(folder: str) -> int:
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


def _is_mount_point(path: str) -> bool:
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


def _create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    """A new temporary file beside `name` (O_EXCL, never through a link), locked until its writer is done."""
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


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_in_place(fd: int, data: bytes) -> None:
    """Same inode: write from the start, cut what is left of the old text, fsync. A reader at that very moment may
    see a mix (that is what in-place costs); the new text is never shorter than needed first."""
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
