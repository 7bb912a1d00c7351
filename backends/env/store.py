"""The env store: a dotenv file that applications read, plus a sidecar file that keeps the stages.

Applications read `{PREFIX}API_KEY`, `{PREFIX}API_SECRET` and the other lines of the dotenv file, so that file only
ever shows CURRENT. PENDING, PREVIOUS, the rotation token of each stage and the rotation record live in a sidecar
JSON file. The sidecar is the source of truth for stages; the dotenv file is a projection of the sidecar's CURRENT.
Every write goes through a new file renamed over the old one (temp file, fsync, rename, mode 0600) unless the store
writes in place, and every mutating call writes the sidecar first and the dotenv file second, so a crash between
the two leaves a state that calling the same method again repairs.

This module is the store's face (`backends.base.SecretStore`) and the glue between its parts, one job each:

- `backends.env.dotenv_file`: our lines of the dotenv file, read as applications read them and rendered without
  touching any other line;
- `backends.env.target`: where the dotenv file is written (checks, the pin of a rotation, the writes through it);
- `backends.env.sidecar`: the stage document (stages, tokens, record) in the rotator's state folder;
- `backends.env.ledger`: the lease (an `flock` with a fencing number) and the record writes under it.

What each call does to the stages is decided by `backends.stages` (shared with every store), and the write order
and crash repair of "stage document plus the copy readers see" by `backends.projected` (shared with the Vault
store).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from backends import stages
from backends.dotenv_lines import Reader
from backends.env.dotenv_file import DotenvFile
from backends.env.ledger import LOCK_SUFFIX, FlockLedger
from backends.env.reports import os_errors, report_replaced
from backends.env.sidecar import SIDECAR_SUFFIX, SIDECAR_VERSION, Sidecar
from backends.env.write_modes import WRITE_MODES
from backends.ledger import LedgerByDelegation
from backends.projected import Projected
from backends.stage_document import StageDocument
from backends.stages import StageLog
from rotator.core.errors import ConfigError
from rotator.core.findings import Finding
from rotator.core.model import Environment, Stage, StoredKey

if TYPE_CHECKING:
    from backends.env.target import DotenvTarget, Pin

__all__ = ["LOCK_SUFFIX", "SIDECAR_SUFFIX", "SIDECAR_VERSION", "EnvStore"]

log = logging.getLogger("rotator.store.env")

LANE_SUFFIX: Final = ".lane"
"""The paying-key lane's lock file is `<file>.lane.rotator.lock` (`lane_ledger`)."""

RACY_SECONDS = 2.0
"""A file whose times are this recent may still change without its times moving (see `EnvStore.fingerprint`)."""


class EnvStore(LedgerByDelegation):
    """One credential in a dotenv file (what applications read) plus its sidecar (stages, tokens, record).

    `environment` and `base_url` are the credential's own; they fill in for a hand-seeded file that lacks those
    lines. A relative `path` is used as given: the config layer resolves it against the config file's folder.
    """

    _ledger: FlockLedger

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
        self._file = DotenvFile(
            name,
            path=path,
            prefix=prefix,
            reader=reader,
            fields=fields,
            environment=environment,
            base_url=base_url,
        )
        if write_mode not in WRITE_MODES:
            raise ConfigError(
                f"store {name!r}: write_mode {write_mode!r} is not one of {', '.join(WRITE_MODES)}: `replace` (a new "
                "file renamed over the old one: readers never see half a file) or `in_place` (the same file rewritten, "
                "for a hard-linked file or a single-file bind mount)"
            )
        self.name = name
        self._path = self._file.path
        where = self.describe()
        self._sidecar = Sidecar(name, self._path, state_dir, where=where)
        self._write_mode = write_mode
        self._ledger = FlockLedger(
            name,
            lock_path=self._path.with_name(self._path.name + LOCK_SUFFIX),
            sidecar=self._sidecar,
            where=where,
            check_beside=self._check_beside,
        )
        self._pin: Pin | None = None
        """The pin of the rotation whose promote or restore is writing now (see `backends.env.target`)."""
        self._projected = Projected(self, StageLog(log, name, where))

    @functools.cached_property
    def _target(self) -> DotenvTarget:
        """Where the dotenv file is written (`backends.env.target`), built when a write or a check first needs it:
        reading the store (`rotator status`) needs neither the target nor its rules. It keeps nothing but its settings
        (pins live in files), so two threads that build it at once build the same thing."""
        from backends.env.target import DotenvTarget

        return DotenvTarget(
            self._path,
            store=self.name,
            pin_path=self._sidecar.pin_path,
            write_mode=self._write_mode,
            state_setting=self._sidecar.setting,
            pin_in_state_dir=self._sidecar.in_state_dir,
        )

    def _check_beside(self, path: Path) -> None:
        """The ledger's check before it creates its lock file beside the dotenv file (`DotenvTarget.check_beside`)."""
        self._target.check_beside(path)

    # ----------------------------------------------------------------------------------------------- where

    @property
    def path(self) -> Path:
        """The dotenv file applications read."""
        return self._path

    @property
    def sidecar_path(self) -> Path:
        """The JSON file holding stages, tokens and the rotation record."""
        return self._sidecar.path

    @property
    def lock_path(self) -> Path:
        """The file a lease holds a kernel lock on; it also keeps the fencing number."""
        return self._ledger.lock_path

    def describe(self) -> str:
        """Where the secret lives, for messages."""
        reader = "" if self._file.reader is Reader.DOTENV else f", read as {self._file.reader.value}"
        return f"env file {self._path} (prefix {self._file.prefix}{reader})"

    def __repr__(self) -> str:
        return f"EnvStore(name={self.name!r}, path={str(self._path)!r}, prefix={self._file.prefix!r})"

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
        for path in (self._path, self._sidecar.path):
            try:
                st = os.stat(path)
            except OSError:
                marks.append(None)
                continue
            if st.st_mtime_ns >= settled:
                return object()
            marks.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(marks)

    # read_record, write_record, acquire, renew, release: LedgerByDelegation, to the flock ledger

    def lane_ledger(self) -> FlockLedger:
        """The lease of the paying-key lane (`backends.ledger.LaneSource`): a kernel lock on `<file>.lane.rotator.lock`
        beside the file, like the credential's own. A dotenv file is a same-host ledger, so this lane keeps the
        runners of ONE host from sharing a tenant key's budget by accident (a daemon and a cron `run-due`); runners on
        several hosts need a shared ledger (Vault or DynamoDB) for their lanes. The lane keeps no record: its
        sidecar is never written."""
        lane = self._path.with_name(self._path.name + LANE_SUFFIX)
        return FlockLedger(
            self.name,
            lock_path=lane.with_name(lane.name + LOCK_SUFFIX),
            sidecar=Sidecar(self.name, lane, None, where=f"the paying-key lane of {self.describe()}"),
            where=f"the paying-key lane of {self.describe()}",
            check_beside=self._check_beside,
        )

    def close(self) -> None:
        """Release any lease this handle still holds (a runner that stops without releasing)."""
        self._ledger.close()

    # ----------------------------------------------------------------------------------------------- writes

    def put_pending(self, key: StoredKey) -> stages.Staged:
        """Stage `key` as PENDING under its token. Only the sidecar changes: applications see nothing yet.

        Like Secrets Manager's ClientRequestToken, a token already held by any stage with the same key is a no-op
        (a resumed rotation may call this after promote), and with another key a StoreConflict.
        """
        stages.require_token(key)
        self._file.check_storable(key)
        assert key.token is not None
        # The rotation starts here for this store: what its file is now is checked, and pinned once staged.
        with os_errors(self.name, "inspecting", self._path):
            observed = None if self._target.kept_pin(key.token) else self._target.check()
        staged = self._projected.put_pending(key, where=str(self._sidecar.path), store=self.name)
        with os_errors(self.name, "inspecting", self._path):
            self._target.pin(key.token, observed)
        return staged

    def promote(self, token: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT and the dotenv file's key becomes PREVIOUS; sidecar first, then the file.

        Called again after a crash between the two writes (the sidecar's CURRENT already carries `token`), it only
        re-projects CURRENT into the dotenv file, and only if the file differs.
        """
        with os_errors(self.name, "inspecting", self._path):
            pin = self._target.kept_pin(token)  # none: a rotation staged by an older version; checked as it is now
            # Before anything is read through the path: a swapped file is refused, not read.
            self._target.verify(pin) if pin is not None else self._target.check()
        self._pin = pin
        try:
            return self._projected.promote(token, where=str(self._sidecar.path), store=self.name)
        finally:
            self._pin = None

    def check_unchanged(self, token: str) -> None:
        """The pin of rotation `token`, if it has one, still holds (`TargetChanged`, exit 4, when it does not)."""
        with os_errors(self.name, "inspecting", self._path):
            pin = self._target.kept_pin(token)
            if pin is not None:
                self._target.verify(pin)

    def restore_previous(self, token: str) -> stages.Rollback:
        """Rollback: when CURRENT carries `token`, PREVIOUS becomes CURRENT again (sidecar first, then the file)."""
        self._pin = self._target.kept_pin(token)
        try:
            rollback = self._projected.restore_previous(token, where=str(self._sidecar.path), store=self.name)
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

    def check_access(self) -> list[Finding]:
        """The folders a rotation writes in, for this user, and the safety rules of `check_writable`, without writing
        (`backends.access`)."""
        from backends.env.access import dotenv_access

        return dotenv_access(
            f"store {self.name} ({self.describe()})", self._path, self._sidecar.path, self.check_writable
        )

    def check_writable(self) -> None:
        """Refuse (UnsafeTarget, exit 2), before a rotation changes anything, a dotenv file the rotator must not
        write: in a folder others can write, hard-linked, or a bind mount (the last two fine in `in_place` mode)."""
        with os_errors(self.name, "inspecting", self._path):
            self._target.check()

    # -------------------------------------------------------------------------------- the two places (for Projected)

    def load_document(self) -> StageDocument:
        return self._sidecar.load()

    def save_document(self, document: StageDocument) -> None:
        self._sidecar.save(document)

    def shown(self) -> StoredKey:
        """The key the dotenv file shows, as its reader reads it. StoreNotFound when the file is missing or holds
        neither our key nor our secret line (nothing shown yet: a credential before its first key)."""
        return self._file.shown()

    def check_show(self, key: StoredKey) -> None:
        """Refuse now (StoreError), before the sidecar moves, a key the dotenv file could not show faithfully."""
        self._file.render(self._file.text_or_empty(), key)

    def show(self, key: StoredKey) -> bool:
        """Rewrite our lines of the dotenv file to `key` (creating the file, 0600, for a first key); False when the
        file already shows it exactly."""
        changed = False

        def render(old: bytes | None) -> bytes | None:
            nonlocal changed
            text = self._file.decode(old) if old is not None else ""
            new_text = self._file.render(text, key)
            changed = new_text != text
            return new_text.encode("utf-8") if changed else None

        with os_errors(self.name, "writing", self._path):
            lock = functools.partial(self._ledger.write_lock, self._path)
            result = self._target.rewrite(self._pin, render, lock=lock)
        if result is not None:
            report_replaced(self.name, self._path, result)
        return changed
