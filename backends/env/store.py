"""The env store: a dotenv file that applications read, plus a sidecar file that keeps the stages.

Applications read `{PREFIX}API_KEY`, `{PREFIX}API_SECRET`, `{PREFIX}KEY_ID`, `{PREFIX}ENVIRONMENT` and
`{PREFIX}BASE_URL` from the dotenv file, so that file only ever shows CURRENT. A dotenv file has no room for
stages, so PENDING, PREVIOUS, the rotation token of each stage and the rotation record live in a sidecar JSON file
next to it (`<file>.rotator.json`, format below). The sidecar is the source of truth for stages; the dotenv file is
a projection of the sidecar's CURRENT. Every write goes through `rotator.core.atomicfile` (temp file, fsync, rename,
mode 0600), and every mutating call writes the sidecar first and the dotenv file second, so a crash between the two
leaves a state that calling the same method again repairs.

What each call does to the stages is decided by `backends.stages` (shared with every store), and the write order
and crash repair of "stage document plus the copy readers see" by `backends.projected` (which the Vault store will
share); this module keeps the storage: the sidecar (the document), the dotenv file (the copy), the ledger.

Only our own lines of the dotenv file are touched: comments, blank lines, other variables, `export` prefixes and
the quoting of other lines stay byte for byte. Lines are located with python-dotenv's own parser so that what we
rewrite is exactly what python-dotenv (what most applications use) reads. An inline comment after one of *our*
values is dropped when that line is rewritten; a comment on its own line is kept.

Values are written in single quotes with `\\` and `'` escaped, which python-dotenv reads back unchanged. One thing
cannot be escaped: python-dotenv expands `${NAME}` even inside single quotes, so a value containing `${` is refused
before anything is written, and one of our lines that uses `${...}` is reported (StoreCorrupt) rather than read
differently from what applications see.

The sidecar lives in the rotator's own state folder (`state_dir`, by default `rotator-state/` beside rotator.toml;
the configuration passes it in) as `<store name>.json`, never beside the application's file, where a `git add -A`
or an image build would pick its secrets up. A sidecar an older version left beside the file is read until the
next write moves it. A store built without `state_dir` keeps it beside the file (`<file>.rotator.json`).

The sidecar is a stage document (`backends.stage_document`: the stages with their tokens, the record and its
version), as a JSON file of mode 0600. It is the rotator's own secret file, so it is read and written through
`rotator.core.state_files`, not like the application's file: the state folder must be the running user's (or root's) and
writable by nobody else, a sidecar of another user is refused, and each write is a new file of the running user
(never keeping the owner of a file found there). The lock file is refused likewise when it is another user's.

The store is its credential's ledger (`backends.ledger`): the lease is `fcntl.flock` on `<file>.rotator.lock`, which
the kernel drops when the holding process dies, so a crashed rotation never blocks the next one. The lock file also
keeps the fencing number (one more at every acquisition) and who holds the lease; a record write checks, under that
flock, that the lock file still names this lease and that the sidecar's record is still at the version read.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from dotenv.parser import Binding, parse_stream

from backends import dotenv_lines, stages
from backends.dotenv_lines import Reader
from backends.env.regular_file import NotARegularFile, read_regular_file
from backends.env.target import WRITE_MODES, DotenvTarget, Pin
from backends.ledger import Lease, VersionedRecord, lease_refusal
from backends.projected import Projected
from backends.stage_document import DOCUMENT_VERSION, DocumentReader, StageDocument
from backends.stages import StageLog
from rotator.core.atomicfile import ReplacedFile
from rotator.core.errors import (
    ConfigError,
    LeaseLost,
    RotationInProgress,
    StoreConflict,
    StoreCorrupt,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnavailable,
)
from rotator.core.file_lock import lock_within
from rotator.core.model import Environment, Stage, StoredKey
from rotator.core.secret import Secret
from rotator.core.state_files import explain_denied, read_own_file, refuse_own_file, write_own_file
from rotator.core.timestamps import format_timestamp

__all__ = ["LOCK_SUFFIX", "SIDECAR_SUFFIX", "SIDECAR_VERSION", "EnvStore"]

log = logging.getLogger("rotator.store.env")

SIDECAR_SUFFIX: Final = ".rotator.json"
LOCK_SUFFIX: Final = ".rotator.lock"
SIDECAR_VERSION: Final = DOCUMENT_VERSION
FILE_MODE: Final = 0o600

# Our variables, without the prefix, in the order they are appended to a file that lacks them.
_FIELDS: Final = ("API_KEY", "API_SECRET", "KEY_ID", "ENVIRONMENT", "BASE_URL")
_REQUIRED: Final = ("API_KEY", "API_SECRET")
OPTIONAL_FIELDS: Final = ("key_id", "environment", "base_url")
"""Lines the store adds to a file that lacks them only when its `fields` option names them (it always keeps the
lines a file already has in step with the key)."""
_VALUE_TEXT_RE: Final = re.compile(r"[^\S\r\n]*=[^\S\r\n]*(.*?)(?:\r\n|\n|\r)?\Z", re.DOTALL)
_PREFIX_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The name at the start of a line python-dotenv could not parse, to tell "your BLUUM_API_SECRET line is broken"
# apart from "some other line is broken" (which is not ours to judge).
_BROKEN_LINE_NAME_RE: Final = re.compile(r"\s*(?:export\s+)?'?([^='\"\s#]+)")
_LEADING_WS_RE: Final = re.compile(r"\s*")
_WHOLE_BLANK_LINES_RE: Final = re.compile(r"(?:[^\S\r\n]*(?:\r\n|\n|\r))*")
_EXPORT_RE: Final = re.compile(r"export[^\S\r\n]+")
_EOL_RE: Final = re.compile(r"(?:\r\n|\n|\r)\Z")
_BOM: Final = "\ufeff"

_SIDECAR_FIX: Final = (
    "restore it from a backup, or, if no rotation is under way, delete it (CURRENT in the dotenv file is kept; "
    "then run `rotator sweep` so keys only the sidecar knew get revoked)"
)


def _binding_line(binding: Binding) -> int:
    """The 1-based line where the binding's variable starts (python-dotenv counts from its leading blank lines)."""
    original = binding.original.string
    lead = _LEADING_WS_RE.match(original)
    skipped = lead.group() if lead else ""
    return binding.original.line + len(re.findall(r"\r\n|\n|\r", skipped))


RACY_SECONDS = 2.0
"""A file whose times are this recent may still change without its times moving (see `EnvStore.fingerprint`)."""


class EnvStore:
    """One credential in a dotenv file (what applications read) plus its sidecar (stages, tokens, record).

    `environment` and `base_url` are the credential's own; they fill in for a hand-seeded file that lacks those
    lines. A relative `path` is used as given: the config layer resolves it against the config file's folder.
    """

    def __init__(
        self,
        name: str,
        *,
        path: str | os.PathLike[str],
        prefix: str = "BLUUM_",
        environment: Environment | None = None,
        base_url: str | None = None,
        reader: str = Reader.DOTENV.value,
        fields: Sequence[str] = (),
        state_dir: str | os.PathLike[str] | None = None,
        write_mode: str = "replace",
    ) -> None:
        if prefix and not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(
                f"store {name!r}: prefix {prefix!r} is not a valid variable-name prefix: use letters, digits and _"
            )
        file_path = Path(path)
        if not file_path.name:
            raise ConfigError(f"store {name!r}: path {str(path)!r} names no file: point it at the dotenv file")
        try:
            self._reader = Reader(reader)
        except ValueError:
            known = ", ".join(r.value for r in Reader)
            raise ConfigError(f"store {name!r}: reader is not one of {known}") from None  # never echoed: item 7
        if isinstance(fields, str) or any(f not in OPTIONAL_FIELDS for f in fields):
            raise ConfigError(
                f"store {name!r}: fields may name only {', '.join(OPTIONAL_FIELDS)} (API key and secret are always "
                "written), as an array"
            )
        if write_mode not in WRITE_MODES:
            raise ConfigError(
                f"store {name!r}: write_mode {write_mode!r} is not one of {', '.join(WRITE_MODES)}: `replace` (a new "
                "file renamed over the old one: readers never see half a file) or `in_place` (the same file rewritten, "
                "for a hard-linked file or a single-file bind mount)"
            )
        self._extra_fields = {field.upper() for field in fields}
        self.name = name
        self._path = file_path
        self._prefix = prefix
        self._environment = Environment(environment) if environment is not None else None
        self._base_url = base_url
        beside = file_path.with_name(file_path.name + SIDECAR_SUFFIX)
        self._sidecar_path = Path(state_dir) / f"{name}.json" if state_dir is not None else beside
        self._legacy_sidecar = beside if state_dir is not None else None
        """Where an older version kept the sidecar (beside the file): read until the first write moves it."""
        self._lock_path = file_path.with_name(file_path.name + LOCK_SUFFIX)
        self._state_setting = f"state_dir of [stores.{name}]"
        pin_path = self._sidecar_path.with_name(self._sidecar_path.name.removesuffix(".json") + ".pin.json")
        self._target = DotenvTarget(
            file_path,
            store=name,
            pin_path=pin_path,
            write_mode=write_mode,
            state_setting=self._state_setting,
            pin_in_state_dir=state_dir is not None,
        )
        self._pin: Pin | None = None
        """The pin of the rotation whose promote or restore is writing now (see `backends.env.target`)."""
        self._names = {prefix + field: field for field in _FIELDS}
        self._projected = Projected(self, StageLog(log, name, self.describe()))
        self._held: dict[int, int] = {}
        self._described: dict[int, float] = {}
        """Fencing number → when the lock file last said who holds that lease."""
        """Fencing number → descriptor holding the flock, for the leases this handle holds."""
        self._lease_mutex = threading.Lock()

    # ----------------------------------------------------------------------------------------------- where

    @property
    def path(self) -> Path:
        """The dotenv file applications read."""
        return self._path

    @property
    def sidecar_path(self) -> Path:
        """The JSON file holding stages, tokens and the rotation record."""
        return self._sidecar_path

    @property
    def lock_path(self) -> Path:
        """The file a lease holds a kernel lock on; it also keeps the fencing number."""
        return self._lock_path

    def describe(self) -> str:
        """Where the secret lives, for messages."""
        reader = "" if self._reader is Reader.DOTENV else f", read as {self._reader.value}"
        return f"env file {self._path} (prefix {self._prefix}{reader})"

    def __repr__(self) -> str:
        return f"EnvStore(name={self.name!r}, path={str(self._path)!r}, prefix={self._prefix!r})"

    # ----------------------------------------------------------------------------------------------- reads

    def read(self, stage: Stage) -> StoredKey | None:
        """CURRENT from the dotenv file (plus the sidecar's token when it holds that key); the rest from the sidecar."""
        return self._projected.read(stage)

    def fingerprint(self) -> object:
        """Identity, size and times of the dotenv file (through a symlink) and of the sidecar: every write we make is
        a rename (a new inode), and a person's edit moves the size or the times.

        Unless a file was modified in the last RACY_SECONDS: a filesystem with coarse timestamps (one or two seconds;
        NFS caches attributes too) can show the same times and size before and after an in-place edit. Such a file
        gets a mark equal to nothing (git's "racily clean" rule), so it is read again until its time has settled."""
        marks: list[tuple[int, int, int, int, int] | None] = []
        settled = time.time_ns() - int(RACY_SECONDS * 1e9)
        for path in (self._path, self._sidecar_path):
            try:
                st = os.stat(path)
            except OSError:
                marks.append(None)
                continue
            if st.st_mtime_ns >= settled:
                return object()
            marks.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(marks)

    def read_record(self) -> VersionedRecord:
        """The rotation record kept in the sidecar and its version (None and 0 before the first rotation)."""
        sidecar = self._load_sidecar()
        return VersionedRecord(sidecar.record, sidecar.record_version)

    # ----------------------------------------------------------------------------------------------- writes

    def put_pending(self, key: StoredKey) -> stages.Staged:
        """Stage `key` as PENDING under its token. Only the sidecar changes: applications see nothing yet.

        Like Secrets Manager's ClientRequestToken, a token already held by any stage with the same key is a no-op
        (a resumed rotation may call this after promote), and with another key a StoreConflict.
        """
        stages.require_token(key)
        self._check_storable(key)
        assert key.token is not None
        # The rotation starts here for this store: what its file is now is checked, and pinned once staged.
        with self._os_errors("inspecting", self._path):
            observed = None if self._target.kept_pin(key.token) else self._target.check()
        staged = self._projected.put_pending(key, where=str(self._sidecar_path), store=self.name)
        with self._os_errors("inspecting", self._path):
            self._target.pin(key.token, observed)
        return staged

    def promote(self, token: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT and the dotenv file's key becomes PREVIOUS; sidecar first, then the file.

        Called again after a crash between the two writes (the sidecar's CURRENT already carries `token`), it only
        re-projects CURRENT into the dotenv file, and only if the file differs.
        """
        with self._os_errors("inspecting", self._path):
            pin = self._target.kept_pin(token)  # none: a rotation staged by an older version; checked as it is now
            # Before anything is read through the path: a swapped file is refused, not read.
            self._target.verify(pin) if pin is not None else self._target.check()
        self._pin = pin
        try:
            return self._projected.promote(token, where=str(self._sidecar_path), store=self.name)
        finally:
            self._pin = None

    def check_unchanged(self, token: str) -> None:
        """The pin of rotation `token`, if it has one, still holds (`TargetChanged`, exit 4, when it does not)."""
        with self._os_errors("inspecting", self._path):
            pin = self._target.kept_pin(token)
            if pin is not None:
                self._target.verify(pin)

    def restore_previous(self, token: str) -> stages.Rollback:
        """Rollback: when CURRENT carries `token`, PREVIOUS becomes CURRENT again (sidecar first, then the file)."""
        self._pin = self._target.kept_pin(token)
        try:
            rollback = self._projected.restore_previous(token, where=str(self._sidecar_path), store=self.name)
        finally:
            self._pin = None
        self._target.drop_pin(token)
        return rollback

    def clear_previous(self, token: str) -> stages.Cleared:
        """Forget PREVIOUS once its key is revoked at Bluum (when CURRENT carries `token`); the dotenv file never
        showed it, so only the sidecar changes."""
        cleared = self._projected.clear_previous(token)
        self._target.drop_pin(token)
        return cleared

    def check_writable(self) -> None:
        """Refuse (UnsafeTarget, exit 2), before a rotation changes anything, a dotenv file the rotator must not
        write: in a folder others can write, hard-linked, or a bind mount (the last two fine in `in_place` mode)."""
        with self._os_errors("inspecting", self._path):
            self._target.check()

    # -------------------------------------------------------------------------------- the two places (for Projected)

    def load_document(self) -> StageDocument:
        return self._load_sidecar()

    def save_document(self, document: StageDocument) -> None:
        self._save_sidecar(document)

    def shown(self) -> StoredKey:
        """The key the dotenv file shows, as its reader reads it. StoreNotFound when the file is missing or holds
        neither our key nor our secret line (nothing shown yet: a credential before its first key)."""
        text = self._read_dotenv()
        if not self._holds_any_line(text):
            raise StoreNotFound(
                f"{self._path} holds no {self._prefix}API_KEY or {self._prefix}API_SECRET line yet: put the key "
                f"applications use there, or give the credential its first key with `rotator enroll`",
                store=self.name,
            )
        return self._key_from_dotenv(text)

    def check_show(self, key: StoredKey) -> None:
        """Refuse now (StoreError), before the sidecar moves, a key the dotenv file could not show faithfully."""
        self._render(self._text_or_empty(), key)

    def show(self, key: StoredKey) -> bool:
        """Rewrite our lines of the dotenv file to `key` (creating the file, 0600, for a first key); False when the
        file already shows it exactly."""
        changed = False

        def render(old: bytes | None) -> bytes | None:
            nonlocal changed
            text = self._decode(old) if old is not None else ""
            new_text = self._render(text, key)
            changed = new_text != text
            return new_text.encode("utf-8") if changed else None

        with self._os_errors("writing", self._path):
            result = self._target.rewrite(self._pin, render, lock=self._write_lock)
        if result is not None:
            self._report_replaced(self._path, result)
        return changed

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """The store's lock around an in-place write: held already when this handle holds the lease; otherwise
        taken for the write (waiting a little for another rotation's short write, never for its whole lease)."""
        with self._lease_mutex:
            held = bool(self._held)
        if held:
            yield
            return
        fd = self._open_lock_file()
        try:
            if not lock_within(fd, 10.0):
                raise RotationInProgress(
                    f"{self._lock_path} is held by another rotation, so {self._path} was not rewritten in "
                    "place; nothing was written. Run the command again when it is done"
                )
            yield
        finally:
            os.close(fd)

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record in the sidecar if `lease` still holds and the record is still at `version`."""
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=self.name) from exc
        with self._lease_mutex:
            fd = self._held.get(lease.fence)
            latest = _read_holder(fd).get("fence") if fd is not None else self._latest_fence()
            latest = latest if isinstance(latest, int) else 0
            held = latest if fd is not None else None
            refusal = lease_refusal(held_fence=held, latest_fence=latest, lease=lease, now=time.time())
        if refusal:
            raise LeaseLost(
                f"{self.describe()}: the rotation record was not written: {refusal}; this runner changes nothing more. "
                "The lease holder (or `rotator resume`, once no lease is held) finishes"
            )
        sidecar = self._load_sidecar()
        if sidecar.record_version != version:
            raise StoreConflict(
                f"the rotation record in {self._sidecar_path} changed since it was read (version "
                f"{sidecar.record_version}, not {version}); nothing was written",
                store=self.name,
            )
        self._save_sidecar(replace(sidecar, record=record, record_version=version + 1))
        return version + 1

    # ----------------------------------------------------------------------------------------------- lease

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """Take `flock` on `<file>.rotator.lock` (RotationInProgress at once if it is held) and a fencing number.

        The kernel lock is what excludes; the lease's expiry is bookkeeping for writes (renew before writing) and
        for the message the next contender prints.
        """
        fd = self._open_lock_file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _describe_holder(_read_holder(fd))
            os.close(fd)
            raise RotationInProgress(
                f"another rotation of this credential is running ({holder}; lock {self._lock_path}); "
                "nothing was changed. Wait for it, or if that process is gone, run `rotator resume`"
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise self._unavailable("locking", self._lock_path, exc) from exc
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
        except BaseException as exc:  # never keep a kernel lock nobody will release
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if isinstance(exc, OSError):
                raise self._unavailable("writing", self._lock_path, exc) from exc
            raise
        with self._lease_mutex:
            self._held[fence] = fd
            self._described[fence] = time.time()
        log.debug("took the rotation lock %s for %s (fence %d)", self._lock_path, owner, fence)
        return Lease(owner=owner, fence=fence, expires_at=expires_at, ttl_seconds=ttl_seconds)

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
        with self._lease_mutex:
            fd = self._held.get(lease.fence)
            if fd is None or _read_holder(fd).get("fence") != lease.fence:
                raise LeaseLost(
                    f"{self.describe()}: the rotation lease of {lease.owner} (fence {lease.fence}) is no longer held "
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
        with self._lease_mutex:
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
        with self._lease_mutex:
            held = list(self._held)
        for fence in held:
            self.release(Lease(owner="", fence=fence, expires_at=0.0, ttl_seconds=0.0))

    def _open_lock_file(self) -> int:
        """The lock file, opened without following a link; one of another user's (who could hold or rewrite the
        lock), or one this user may not open, is refused with its owner and the fix (`rotator.core.state_files`); so is
        a link on the way to it that another user could have aimed (`DotenvTarget.check_beside`)."""
        self._target.check_beside(self._lock_path)
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        except PermissionError as exc:
            raise StoreDenied(explain_denied(self._lock_path, "opening the lock file"), store=self.name) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse_own_file(self._lock_path, store=self.name)
            with self._os_errors("opening the lock file", self._lock_path):
                raise
        try:
            refuse_own_file(self._lock_path, store=self.name, opened=os.fstat(fd))
            with self._os_errors("opening the lock file", self._lock_path):
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                if mode & 0o077:
                    os.fchmod(fd, FILE_MODE)
                    self._warn_tightened(self._lock_path, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # ----------------------------------------------------------------------------------------------- dotenv

    def _read_dotenv(self) -> str:
        """The dotenv file's text, exactly (no newline translation), or the Store* error a person can act on."""
        try:
            data = read_regular_file(self._path)
        except IsADirectoryError as exc:
            raise StoreCorrupt(
                f"{self._path} is a directory, not a dotenv file: point `path` in rotator.toml at the file "
                "applications read (for example .env inside that folder)",
                store=self.name,
            ) from exc
        except NotARegularFile as exc:
            raise StoreCorrupt(
                f"{self._path} is not a regular file but {exc.kind}: reading it could wait for ever or never end. Put "
                "the dotenv file back there, or point `path` in rotator.toml at it",
                store=self.name,
            ) from None
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise StoreNotFound(
                f"{self._path} does not exist: create it with {self._prefix}API_KEY and {self._prefix}API_SECRET "
                "lines, give the credential its first key with `rotator enroll NAME`, or fix `path` in rotator.toml",
                store=self.name,
            ) from exc
        except PermissionError as exc:
            raise self._denied("reading", self._path) from exc
        except OSError as exc:
            raise self._unavailable("reading", self._path, exc) from exc
        return self._decode(data)

    def _decode(self, data: bytes) -> str:
        """The file's bytes as text, exactly; StoreCorrupt when they are not UTF-8."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreCorrupt(
                f"{self._path} is not UTF-8 text (bad byte at offset {exc.start}): save it as UTF-8",
                store=self.name,
            ) from None

    def _text_or_empty(self) -> str:
        """The file's text, or nothing when the file does not exist yet (its folder must)."""
        try:
            return self._read_dotenv()
        except StoreNotFound:
            if not self._path.parent.is_dir():
                raise
            return ""

    def _holds_any_line(self, text: str) -> bool:
        names = {self._prefix + field for field in _REQUIRED}
        return any(not b.error and b.key in names for b in parse_stream(io.StringIO(text)))

    def _parse_dotenv(self, text: str) -> dict[str, tuple[int, str]]:
        """Our variables (by field name, e.g. "API_KEY") with their line numbers; StoreCorrupt when ambiguous."""
        found: dict[str, list[tuple[int, str | None]]] = {}
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                self._reject_if_ours_is_broken(binding)
                continue
            if binding.key in self._names:
                line = _binding_line(binding)
                value = binding.value if self._reader is Reader.DOTENV else self._read_as(binding, line)
                found.setdefault(self._names[binding.key], []).append((line, value))
        values: dict[str, tuple[int, str]] = {}
        for field, hits in found.items():
            variable = self._prefix + field
            if len(hits) > 1:
                lines = ", ".join(str(line) for line, _ in hits)
                raise self._corrupt(f"{variable} is defined {len(hits)} times (lines {lines}): keep exactly one")
            line, value = hits[0]
            if not value:
                raise self._corrupt(f"line {line}: {variable} has an empty value: give it one or delete the line")
            if "${" in value:
                raise self._corrupt(
                    f"line {line}: {variable} uses ${{...}} interpolation, so what applications read depends on other "
                    "variables and cannot be checked or rotated: write the value itself"
                )
            values[field] = (line, value)
        for field in _REQUIRED:
            if field not in values:
                raise self._corrupt(
                    f"{self._prefix}{field} is missing: add a {self._prefix}{field}=... line "
                    "(or fix `prefix` in rotator.toml if the file uses another one)"
                )
        return values

    def _read_as(self, binding: Binding, line: int) -> str:
        """Our line's value as the configured reader (env-file, shell) reads it."""
        assert binding.key is not None
        text = _value_text(binding.original.string, binding.key)
        if text is None:
            raise self._corrupt(
                f"line {line}: {binding.key} must be written NAME=value (no space around '=') for a "
                f"{self._reader.value} reader: fix the line"
            )
        if self._reader is Reader.ENV_FILE and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            raise self._corrupt(
                f"line {line}: {binding.key} is quoted, and env-file readers (docker --env-file, kubectl "
                "--from-env-file) keep the quotes as part of the value: applications read it with its quotes. "
                "Remove the quotes"
            )
        try:
            return dotenv_lines.parse(text, self._reader)
        except dotenv_lines.Unrepresentable as exc:
            raise self._corrupt(f"line {line}: {binding.key}: {exc}. Fix the line") from None

    def _reject_if_ours_is_broken(self, binding: Binding) -> None:
        match = _BROKEN_LINE_NAME_RE.match(binding.original.string)
        if match and match.group(1) in self._names:
            raise self._corrupt(
                f"line {_binding_line(binding)}: {match.group(1)} cannot be parsed (unclosed quote?): fix its quoting"
            )

    def _key_from_dotenv(self, text: str) -> StoredKey:
        values = self._parse_dotenv(text)
        environment = self._environment
        if "ENVIRONMENT" in values:
            environment = self._parse_environment(*values["ENVIRONMENT"])
        key_id = values.get("KEY_ID")
        base_url = values.get("BASE_URL")
        return StoredKey(
            api_key=values["API_KEY"][1],
            api_secret=Secret(values["API_SECRET"][1]),
            key_id=key_id[1] if key_id else None,
            environment=environment,
            base_url=base_url[1] if base_url else self._base_url,
        )

    def _parse_environment(self, line: int, value: str) -> Environment:
        try:
            return Environment.from_bluum(value)
        except ValueError:
            raise self._corrupt(
                f"line {line}: {self._prefix}ENVIRONMENT must be sandbox or production: fix the value"
            ) from None

    def _wanted(self, key: StoredKey) -> dict[str, str | None]:
        """Our variables as `key` projects them; None means "no such line" (e.g. a hand-seeded key has no id)."""
        environment = key.environment or self._environment
        fields = {
            "API_KEY": key.api_key,
            "API_SECRET": key.api_secret.reveal(),
            "KEY_ID": key.key_id,
            "ENVIRONMENT": environment.value if environment is not None else None,
            "BASE_URL": key.base_url or self._base_url,
        }
        return {self._prefix + field: value for field, value in fields.items()}

    def _render(self, text: str, key: StoredKey) -> str:
        """`text` with our lines set to `key`: updated in place, missing ones appended, all others untouched.

        The result is parsed back before anything is written, so a file where another line's unclosed quote would
        swallow ours is refused instead of being written wrong.
        """
        self._check_storable(key)
        wanted = self._wanted(key)
        bom = _BOM if text.startswith(_BOM) else ""
        body = text[len(bom) :]
        bindings = list(parse_stream(io.StringIO(body)))
        if "".join(b.original.string for b in bindings) != body:
            raise self._corrupt("python-dotenv cannot split it into lines losslessly: simplify its quoting")
        parts: list[str] = []
        written: set[str] = set()
        for binding in bindings:
            if not binding.error and binding.key in wanted:
                value = wanted.pop(binding.key)
                parts.append(self._rewrite_binding(binding.original.string, binding.key, value))
                if value is not None:
                    written.add(binding.key)
            else:
                parts.append(binding.original.string)
        added = {
            name: value
            for name, value in wanted.items()
            if value is not None and (self._names[name] in _REQUIRED or self._names[name] in self._extra_fields)
        }
        new_text = bom + self._append_missing("".join(parts), added)
        self._check_reads_back(new_text, key, written | set(added))
        return new_text

    def _check_reads_back(self, new_text: str, key: StoredKey, written: set[str]) -> None:
        """Every line written must read back, with the reader's own rules, as exactly the value meant."""
        expected = {name: value for name, value in self._wanted(key).items() if name in written}
        values = self._parse_dotenv(new_text)
        got = {self._prefix + field: value for field, (_, value) in values.items()}
        if got != expected:
            wrong = sorted(name for name in {*got, *expected} if got.get(name) != expected.get(name))
            raise self._corrupt(
                f"after rewriting, {', '.join(wrong)} would not read back as written; another line probably has an "
                "unclosed quote that swallows ours: fix that line. Nothing was changed"
            )

    # ----------------------------------------------------------------------------------------------- sidecar

    def _load_sidecar(self) -> StageDocument:
        """The sidecar's stages and record; an absent sidecar means no stages yet (a hand-seeded file).

        The state folder and the sidecar are checked first (`rotator.core.state_files`): one another user could read or
        swap, or one this user cannot use, is refused (exit 2) with the owner and the fix, before anything changes.
        """
        path = self._sidecar_path
        in_state_dir = self._legacy_sidecar is not None
        data = read_own_file(path, setting=self._state_setting, store=self.name, check_folder=in_state_dir)
        if data is None and self._legacy_sidecar is not None:
            path = self._legacy_sidecar  # state of an older version, beside the file: moved at the next write
            data = read_own_file(path, setting=self._state_setting, store=self.name, check_folder=False)
        if data is None:
            return StageDocument()
        return DocumentReader(str(path), self.name, _SIDECAR_FIX).parse_bytes(data)

    def _save_sidecar(self, sidecar: StageDocument) -> None:
        """A new file owned by this user, 0600, renamed over the sidecar: never the owner of a file found there."""
        in_state_dir = self._legacy_sidecar is not None  # the rotator's own state folder; never the application's
        write_own_file(
            self._sidecar_path,
            sidecar.to_json(),
            setting=self._state_setting,
            store=self.name,
            check_folder=in_state_dir,
        )
        legacy = self._legacy_sidecar
        if legacy is not None and legacy.exists():  # the new sidecar is durable: the old one (secrets) goes
            with self._os_errors("removing", legacy):
                legacy.unlink()
            log.info(
                "moved the rotation state of %s from %s to %s, out of the application's folder",
                self.describe(),
                legacy,
                self._sidecar_path,
                extra={"fields": {"store": self.name}},
            )

    # ----------------------------------------------------------------------------------------------- checks, errors

    def _check_storable(self, key: StoredKey) -> None:
        """Refuse, before any write, a key this store cannot hold so that readers get back exactly what was written."""
        for name, value in self._wanted(key).items():
            if value is None:
                continue
            if name in (self._prefix + "API_KEY", self._prefix + "API_SECRET") and not value:
                raise StoreError(f"{name} of {key.label} is empty; nothing was written", store=self.name)
            try:
                dotenv_lines.render(value, self._reader, None)
            except dotenv_lines.Unrepresentable as exc:
                raise StoreError(
                    f"{name} of {key.label} cannot be written for a {self._reader.value} reader: {exc}, so "
                    "applications would read another value; nothing was written. Use another store type for this "
                    "credential, or issue a new key",
                    store=self.name,
                ) from None

    def _report_replaced(self, path: Path, result: ReplacedFile) -> None:
        if result.mode_tightened and result.previous_mode is not None:
            self._warn_tightened(path, result.previous_mode)
        if result.readable_by_everyone:
            log.warning(
                "%s is readable by every user of this machine (mode %s), and it holds an API secret: the mode was "
                "kept so that no application loses access, but restrict it (chmod o-rwx %s)",
                result.written,
                oct(result.mode),
                result.written,
                extra={"fields": {"store": self.name, "path": str(result.written), "mode": oct(result.mode)}},
            )
        if not result.owner_kept:
            log.warning(
                "%s now belongs to the rotator's user: the old owner could not be kept; make sure applications can "
                "still read it",
                path,
                extra={"fields": {"store": self.name, "path": str(path)}},
            )

    def _warn_tightened(self, path: Path, old_mode: int) -> None:
        log.warning(
            "%s had mode %s; tightened it to %s because it holds an API secret",
            path,
            oct(old_mode),
            oct(FILE_MODE),
            extra={"fields": {"store": self.name, "path": str(path), "old_mode": oct(old_mode)}},
        )

    def _rewrite_binding(self, original: str, name: str, value: str | None) -> str:
        """Our line with a new value, keeping what surrounds it (blank lines before it, `export`, the line ending)
        and its quoting style where the reader allows it."""
        lead_match = _LEADING_WS_RE.match(original)
        lead = lead_match.group() if lead_match else ""
        eol_match = _EOL_RE.search(original)
        eol = eol_match.group() if eol_match else ""
        if value is None:
            blank_lines = _WHOLE_BLANK_LINES_RE.match(lead)
            return blank_lines.group() if blank_lines else ""
        export = _EXPORT_RE.match(original, len(lead))
        old = _value_text(original, name)
        style = dotenv_lines.style_of(old.strip()) if old is not None else None
        return f"{lead}{export.group() if export else ''}{name}={self._rendered(value, style)}{eol}"

    def _append_missing(self, body: str, missing: dict[str, str]) -> str:
        """Append lines for our variables the file lacked, in the file's own line-ending style."""
        lines = [f"{name}={self._rendered(value, None)}" for name, value in missing.items()]
        if not lines:
            return body
        newline = "\r\n" if "\r\n" in body else "\n"
        if body and not body.endswith(("\n", "\r")):
            body += newline
        return body + "".join(line + newline for line in lines)

    def _rendered(self, value: str, style: dotenv_lines.Style | None) -> str:
        try:
            return dotenv_lines.render(value, self._reader, style)
        except dotenv_lines.Unrepresentable as exc:  # _check_storable refuses these before anything is written
            reader = self._reader.value
            raise StoreError(f"a value cannot be written for a {reader} reader: {exc}", store=self.name) from None

    def _corrupt(self, problem: str) -> StoreCorrupt:
        return StoreCorrupt(f"{self._path}: {problem}", store=self.name)

    def _denied(self, action: str, path: Path) -> StoreDenied:
        return StoreDenied(
            f"permission denied {action} {path}: let the rotator's user read and write it and its folder",
            store=self.name,
        )

    def _unavailable(self, action: str, path: Path, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(f"{action} {path} failed: {exc.strerror or type(exc).__name__}", store=self.name)

    @contextmanager
    def _os_errors(self, action: str, path: Path) -> Iterator[None]:
        """Translate OSError of a write into the Store* error that says what to do."""
        try:
            yield
        except PermissionError as exc:
            raise self._denied(action, path) from exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise StoreNotFound(
                f"{action} {path} failed: folder {path.parent} does not exist; create it or fix `path` in rotator.toml",
                store=self.name,
            ) from exc
        except OSError as exc:
            raise self._unavailable(action, path, exc) from exc


def _value_text(original: str, name: str) -> str | None:
    """The text after `NAME=` on our line (line ending excluded), or None when `=` is not right after the name."""
    start = original.find(name)
    match = _VALUE_TEXT_RE.match(original, start + len(name)) if start >= 0 else None
    if match is None or original[start + len(name)] != "=":
        return None
    return match.group(1)


# --------------------------------------------------------------------------------------------------- lock file


def _write_holder(
    fd: int, *, fence: int, owner: str | None, expires_at: float | None, ttl_seconds: float | None
) -> None:
    """The lock file: the fencing number (which must survive) and who holds the lease, for the next contender."""
    holder: dict[str, Any] = {"fence": fence}
    if owner is not None:
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
