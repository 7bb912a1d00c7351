"""The rotator's own files (the env stores' stage documents, lock files, the history): who may own them, and how
they are read and written.

Why a module of its own: the application's dotenv file belongs to the application, and writing it keeps its owner,
group and mode (rotator/core/atomicfile.py). The rotator's own files are different. A stage document holds the PENDING
and PREVIOUS secrets, so whoever owns it, or can write the folder it sits in, holds those secrets: a state file
that kept the owner of whatever file was there before handed the live secret to the user who planted that file.
So here:

- A state folder must be a folder (not a file), owned by the running user or root, and writable by nobody else;
  each folder above it must be owned by the running user or root and writable by nobody else unless it is sticky
  (/tmp): otherwise another user could swap the folder itself. Anything else is refused before anything is read or
  written, with the fix.
- An own file must be a regular file (never a link, symbolic or hard: the lock file sits in the application's folder,
  where another user may plant a name) owned by the running user. A file left by another user (a `sudo rotator ...`
  run leaves root's files behind) is refused with the file, its owner and the `chown` that fixes it, instead of
  failing half-way with a bare PermissionError.
- A write creates a new file, owned by the running user, mode 0600, and renames it over the name (a link there is
  replaced, never followed); the folder, when missing, is created 0700.

The decisions (`folder_refusal`, `file_refusal`) are pure: they judge what `lstat` saw, so they are tested without
touching the disk. The I/O around them is `check_folder`, `read_own_file`, `write_own_file` and `explain_denied`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from rotator.core.errors import StoreDenied, StoreNotFound, StoreUnavailable
from rotator.core.path_walk import places_on_the_way

__all__ = [
    "OWN_DIR_MODE",
    "OWN_FILE_MODE",
    "Seen",
    "check_state_folder",
    "explain_denied",
    "file_refusal",
    "folder_refusal",
    "read_own_file",
    "refuse_own_file",
    "write_own_file",
]

OWN_FILE_MODE: Final = 0o600
OWN_DIR_MODE: Final = 0o700
ROOT: Final = 0


@dataclass(frozen=True, slots=True)
class Seen:
    """What `lstat` showed of one path: enough to judge who can change it."""

    path: str
    uid: int
    mode: int
    """The whole st_mode: file type and permission bits."""
    nlink: int = 1
    """Names the file has: more than one is a hard link, and a write through it lands in a file elsewhere."""

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def bits(self) -> str:
        """The permission bits as `ls` and chmod write them: 0700."""
        return f"{stat.S_IMODE(self.mode):04o}"


UserName = Callable[[int], str]
"""uid → a name for messages (`root`, `svc (uid 998)`)."""


def user_name(uid: int) -> str:
    """The account name of `uid`, or the number when it has none (both work in a `chown` command)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# --------------------------------------------------------------------------------------------------- decisions


def folder_refusal(
    chain: Sequence[Seen], folder: str, *, exists: bool, euid: int, user: UserName, setting: str
) -> str | None:
    """Why the rotator must not keep its state in `folder`, or None when it may.

    `chain` is what lstat saw from the root down: every existing path above the folder, then the folder itself when
    `exists` (a symlink in the way is listed as itself, and the resolved path's folders follow it). `setting` names
    what points there (``state_dir of [stores.app]``), for the fix.
    """
    me = user(euid)
    for seen in chain:
        is_folder = exists and seen is chain[-1]
        if is_folder and not seen.is_dir:
            return (
                f"{folder} is a file, not a folder: the rotator keeps its state in a folder. Move that file out of "
                f"the way, or point {setting} at a folder"
            )
        if not is_folder and not seen.is_dir and not seen.is_link:
            return (
                f"{seen.path} (in the path of {folder}) is a file, not a folder: point {setting} at a folder, or move "
                "that file out of the way"
            )
        if seen.uid not in (euid, ROOT):
            owner = user(seen.uid)
            if is_folder:
                return (
                    f"{seen.path} belongs to {owner}, and this rotator runs as {me}: {owner} could read or swap the "
                    f"secrets the rotator keeps there. Run the rotator as {owner} (e.g. `sudo -u {owner} rotator "
                    f"...`), make the folder {me}'s (`chown -R {me} {seen.path}`), or point {setting} at a folder "
                    f"of {me}'s"
                )
            return (
                f"{seen.path} (above {folder}) belongs to {owner}, and this rotator runs as {me}: {owner} could swap "
                f"the folder where the rotator keeps its secrets. Run the rotator as {owner} (e.g. `sudo -u {owner} "
                f"rotator ...`), or point {setting} at a folder whose parents only {_only(me)} can write (e.g. "
                "/var/lib/bluum-rotator)"
            )
        if seen.is_link:
            continue
        writable = stat.S_IMODE(seen.mode) & 0o022
        sticky = seen.mode & stat.S_ISVTX and not is_folder
        if writable and not sticky:
            who = "every user" if writable & 0o002 else "its group"
            return (
                f"{seen.path} can be written by {who} (mode {seen.bits}), so they could swap the files where the "
                f"rotator keeps its secrets. `chmod go-w {seen.path}`, or point {setting} at a folder only {_only(me)} "
                "can write"
            )
    return _access_refusal(chain, folder, exists=exists, euid=euid, user=user)


def _only(me: str) -> str:
    """Who may write the rotator's folders: root, and the running user when that is not root."""
    return "root" if me == "root" else f"root or {me}"


def _access_refusal(chain: Sequence[Seen], folder: str, *, exists: bool, euid: int, user: UserName) -> str | None:
    """Safe, but can this user work there? Root can; another user needs the owner's bits on a folder it owns."""
    if euid == ROOT or not chain:
        return None
    me = user(euid)
    target = chain[-1]  # the folder, or the folder it will be created in
    if target.is_link:
        return None  # the resolved folder follows in the chain when it exists
    if not exists and target.mode & stat.S_ISVTX and target.mode & 0o002:
        return None  # a sticky folder every user may create in (/tmp): the new folder will be this user's
    if target.uid != euid:  # root's (any other owner was refused): group/other bits cannot write, as checked above
        if exists:
            return (
                f"{target.path} belongs to root (mode {target.bits}), and this rotator runs as {me}, which cannot "
                f"write there (a `sudo rotator ...` run leaves root's files behind): `sudo chown -R {me} "
                f"{target.path}`, and run the rotator as {me} from then on"
            )
        return (
            f"{folder} does not exist, and this rotator runs as {me}, which cannot create it in {target.path} "
            f"(owned by root, mode {target.bits}): `sudo install -d -o {me} -m 700 {folder}`"
        )
    if stat.S_IMODE(target.mode) & 0o700 != 0o700:
        return (
            f"{target.path} (mode {target.bits}) does not let its owner {me} in and write: `chmod u+rwx {target.path}`"
        )
    return None


def file_refusal(seen: Seen, *, euid: int, user: UserName) -> str | None:
    """Why the rotator must not trust (read or replace) its own file `seen`, or None when it may."""
    me = user(euid)
    if seen.is_link:
        return (
            f"{seen.path} is a symbolic link; the rotator's own files are never links (another file could be read "
            f"or overwritten through it): replace the link with the file it points to, owned by {me}"
        )
    if not stat.S_ISREG(seen.mode):
        return f"{seen.path} is not a regular file: move it out of the way"
    if seen.nlink > 1:
        return (
            f"{seen.path} is a hard link ({seen.nlink} names): a write there would change a file elsewhere. Give it "
            f"a name of its own, keeping what it holds: `cp -p {seen.path} {seen.path}.new && mv {seen.path}.new "
            f"{seen.path}` (and find out who linked it)"
        )
    if seen.uid == euid:
        return None
    owner = user(seen.uid)
    if seen.uid == ROOT:
        return (
            f"{seen.path} belongs to root, and this rotator runs as {me} (a `sudo rotator ...` run leaves root's files "
            f"behind): `sudo chown {me} {seen.path}`, and run the rotator as {me} from then on"
        )
    if euid == ROOT:
        return (
            f"{seen.path} belongs to {owner}, who could read or change it while root uses it. Run the rotator as "
            f"{owner} (e.g. `sudo -u {owner} rotator ...`), or make it root's: `chown root {seen.path}`"
        )
    return f"{seen.path} belongs to {owner}, not to {me} who runs the rotator: `sudo chown {me} {seen.path}`"


# --------------------------------------------------------------------------------------------------- checks (I/O)


def check_state_folder(folder: Path, *, setting: str, store: str = "") -> None:
    """Refuse (StoreDenied, exit 2) a state folder others could use to read or swap the rotator's secrets, one that is
    a plain file, or one this user cannot write (with the owner and the fix)."""
    chain, exists = _chain(folder, store=store)
    refusal = folder_refusal(chain, str(folder), exists=exists, euid=os.geteuid(), user=user_name, setting=setting)
    if refusal is not None:
        raise StoreDenied(refusal, store=store)


def read_own_file(path: Path, *, setting: str, store: str = "", check_folder: bool = True) -> bytes | None:
    """The content of one of the rotator's own files, or None when there is none yet.

    `check_folder=False` for a file kept in a folder that is not the rotator's (an old sidecar beside the
    application's file): the file itself is still checked."""
    if check_folder:
        check_state_folder(path.parent, setting=setting, store=store)
    seen = _lstat(path, store=store)
    if seen is None:
        return None
    _refuse_file(seen, store=store)
    try:  # without waiting: a named pipe swapped in after the lstat opens at once, and fstat refuses it below
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise StoreDenied(explain_denied(path, "reading", ours=path.parent), store=store) from exc
    except OSError as exc:
        raise _failed("reading", path, exc, store) from exc
    try:
        opened = os.fstat(fd)
        _refuse_file(Seen(str(path), opened.st_uid, opened.st_mode, opened.st_nlink), store=store)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def write_own_file(path: Path, text: str, *, setting: str, store: str = "", check_folder: bool = True) -> None:
    """Write one of the rotator's own files: a new file owned by this user, 0600, renamed over `path` (a link there is
    replaced, not followed), after the folder (created 0700 when missing) and any file there were checked."""
    from rotator.core.atomicfile import fsync_folder  # here: a command that only reads (`rotator status`) needs none

    folder = path.parent
    if check_folder:  # the rotator's own folder: made when missing (a folder that is not ours, never)
        check_state_folder(folder, setting=setting, store=store)
        try:
            os.makedirs(folder, mode=OWN_DIR_MODE, exist_ok=True)
        except PermissionError as exc:
            raise StoreDenied(explain_denied(folder, "creating", ours=folder), store=store) from exc
        except OSError as exc:
            raise _failed("creating", folder, exc, store) from exc
    seen = _lstat(path, store=store)
    if seen is not None and not seen.is_link:  # a link (symbolic or hard) is replaced by the rename below
        _refuse_file(replace(seen, nlink=1), store=store)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise StoreNotFound(
            f"writing {path} failed: folder {folder} does not exist; create it or fix the path in rotator.toml",
            store=store,
        ) from exc
    except PermissionError as exc:
        raise StoreDenied(explain_denied(folder, "writing in", ours=folder), store=store) from exc
    except OSError as exc:
        raise _failed("writing", path, exc, store) from exc
    try:
        os.fchmod(fd, OWN_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        fsync_folder(folder)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(exc, PermissionError):
            raise StoreDenied(explain_denied(path, "writing", ours=folder), store=store) from exc
        if isinstance(exc, OSError):
            raise _failed("writing", path, exc, store) from exc
        raise


def explain_denied(path: Path, action: str, *, ours: Path | None = None) -> str:
    """`permission denied <action> <path>`, plus who owns what stands in the way and the command that fixes it.

    `ours`: the folder the rotator owns (its state folder), which a `chown -R` may fix; a folder above it is not the
    rotator's to take over, so the advice there is to let the user through or to move the setting.
    """
    head = f"permission denied {action} {path}"
    me = user_name(os.geteuid())
    blocker = _blocker(path)
    if blocker is None:
        return f"{head}: let the rotator's user ({me}) read and write it and its folder"
    where = Path(blocker.path)
    mine = where == path or (ours is not None and (where == ours or ours in where.parents))
    if not mine:
        return (
            f"{head}: {where} (owner {user_name(blocker.uid)}, mode {blocker.bits}) does not let {me} through: "
            f"let {me} in (e.g. `chmod o+x {where}`), or keep the rotator's files in a folder {me} can reach"
        )
    if blocker.uid == os.geteuid():
        rights = "rwx" if blocker.is_dir else "rw"
        return f"{head}: {where} is {me}'s, but its mode is {blocker.bits}: `chmod u+{rights} {where}`"
    recursive = "-R " if blocker.is_dir else ""
    left = " (a `sudo rotator ...` run leaves root's files behind)" if blocker.uid == ROOT else ""
    return (
        f"{head}: {where} belongs to {user_name(blocker.uid)} (mode {blocker.bits}) and this rotator runs as {me}"
        f"{left}: `sudo chown {recursive}{me} {where}`, and run the rotator as {me} from then on"
    )


# --------------------------------------------------------------------------------------------------- helpers


def _blocker(path: Path) -> Seen | None:
    """What a denied access ran into: the path itself when lstat can see it, else the deepest folder above it that
    lstat can see (the one that does not let this user through)."""
    for candidate in (path, *path.parents):
        try:
            st = os.lstat(candidate)
        except OSError:
            continue
        return Seen(str(candidate), st.st_uid, st.st_mode)
    return None


def _chain(folder: Path, *, store: str) -> tuple[list[Seen], bool]:
    """What lstat shows of every place on the way to `folder` (rotator/core/path_walk.py: each folder from / down, each
    link met and the folders on the way to its target, hop after hop, the folder itself last), and whether the folder
    exists (when it does not, the last is the deepest folder that does)."""
    absolute = Path(os.path.abspath(folder))
    try:  # the path as written: `link/..` is the link's target's parent to the system, not the link's folder
        places, exists = places_on_the_way(folder)
    except PermissionError as exc:
        raise StoreDenied(
            explain_denied(Path(exc.filename or absolute), "reaching", ours=absolute), store=store
        ) from exc
    except OSError as exc:
        raise _failed("reading", absolute, exc, store) from exc
    chain = [seen for place in places if (seen := _lstat(Path(place), store=store, ours=absolute)) is not None]
    return chain, exists


def _lstat(path: Path, *, store: str, ours: Path | None = None) -> Seen | None:
    """What lstat shows of `path`, or None when it does not exist."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as exc:
        raise StoreDenied(explain_denied(path, "reaching", ours=ours), store=store) from exc
    except OSError as exc:
        raise _failed("reading", path, exc, store) from exc
    return Seen(str(path), st.st_uid, st.st_mode, st.st_nlink)


def _refuse_file(seen: Seen, *, store: str) -> None:
    refusal = file_refusal(seen, euid=os.geteuid(), user=user_name)
    if refusal is not None:
        raise StoreDenied(refusal, store=store)


def refuse_own_file(path: Path, *, store: str = "", opened: os.stat_result | None = None) -> None:
    """Refuse (StoreDenied, exit 2) one of the rotator's own files that is a link, not a regular file, or another
    user's. `opened`: what fstat showed of the file as opened (else lstat looks at the name)."""
    if opened is not None:
        _refuse_file(Seen(str(path), opened.st_uid, opened.st_mode, opened.st_nlink), store=store)
        return
    seen = _lstat(path, store=store)
    if seen is not None:
        _refuse_file(seen, store=store)


def _failed(action: str, path: Path, exc: OSError, store: str) -> StoreDenied | StoreUnavailable:
    """A path that is a file where a folder belongs, a symbolic link that loops or leads nowhere: configuration
    problems (exit 2), which no retry fixes; anything else may pass."""
    if exc.errno == errno.ELOOP:
        return StoreDenied(
            f"{action} {path} failed: a symbolic link on its way leads back to itself (a loop). Fix the link, or point "
            "the setting in rotator.toml at a folder",
            store=store,
        )
    dangling = _dangling_link(path)
    if exc.errno == errno.EEXIST and dangling is not None:
        return StoreDenied(
            f"{action} {path} failed: {dangling} is a symbolic link to {os.readlink(dangling)}, which does not exist. "
            "Create that folder (owned by the rotator's user, mode 700), or fix the link",
            store=store,
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return StoreDenied(
            f"{action} {path} failed: something in its path is a file, not a folder: fix the path or move the file",
            store=store,
        )
    return StoreUnavailable(f"{action} {path} failed: {exc.strerror or type(exc).__name__}", store=store)


def _dangling_link(path: Path) -> Path | None:
    """The deepest symbolic link at or above `path` that leads nowhere, or None."""
    for candidate in (path, *path.parents):
        if os.path.islink(candidate) and not os.path.exists(candidate):
            return candidate
    return None
