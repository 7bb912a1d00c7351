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
`problems`, `changes`, `describe`) take no I/O and live in `backends.env.target_rules`; the calls on a folder
descriptor (open without following links, the locked temporary copy, a leftover's removal) in
`backends.env.folder_io`. This module observes, pins and writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from backends.env import target_rules
from backends.env.folder_io import (
    create_temp,
    file_owner,
    fsync_dir,
    is_mount_point,
    open_no_follow,
    read_all,
    remove_leftover,
    temp_name_pattern,
    write_all,
    write_in_place,
)
from backends.env.links import link_problems, resolve
from backends.env.target_rules import PIN_VERSION, FileId, Observed, Pin, describe, unsafe_folder
from backends.env.write_modes import IN_PLACE, REPLACE, WRITE_MODES
from rotator.core.atomicfile import ReplacedFile, keep_owner
from rotator.core.errors import StoreCorrupt, StoreError, StoreUnavailable, TargetChanged, UnsafeTarget
from rotator.core.faultpoints import inside
from rotator.core.state_files import read_own_file, write_own_file

__all__ = [
    "IN_PLACE",
    "REPLACE",
    "WRITE_MODES",
    "DotenvTarget",
    "FileId",
    "Observed",
    "Pin",
    "describe",
    "temp_name_pattern",
    "unsafe_folder",
]

log = logging.getLogger("rotator.store.env")


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
            mount_point=st.st_dev != folder.st_dev or is_mount_point(resolved),
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
        return target_rules.problems(observed, euid=self._euid, in_place=self.in_place)

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
        """What differs between the pin and the target now (`backends.env.target_rules.changes`). Pure."""
        return target_rules.changes(pin, now, trusted_folder=trusted_folder)

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
                old = read_all(fd) if fd is not None else None
                new = render(old)
                if new is None:
                    return None
                if self.in_place and fd is not None and current is not None:
                    with lock():
                        write_in_place(fd, new)
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
        temp = create_temp(dir_fd, name)
        temp_name, fd = temp
        try:
            os.fchmod(fd, mode)
            owner_kept = keep_owner(fd, previous)
            write_all(fd, data)
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
        fsync_dir(dir_fd)
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
                owners = {self._euid, *file_owner(dir_fd, name)}
                for entry in os.listdir(dir_fd):
                    if pattern.fullmatch(entry) and remove_leftover(dir_fd, entry, owners):
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

    # ------------------------------------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def _folder(self, folder: str) -> Iterator[int]:
        """`folder` opened component by component without following any symlink (the path is a resolved one)."""
        try:
            fd = open_no_follow(folder)
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
