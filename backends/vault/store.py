"""The Vault store: one credential in HashiCorp Vault or OpenBao KV v2, read by applications as plain fields.

Applications (a Vault Agent template, the Vault CSI provider, External Secrets Operator, their own hvac code) read
`api_key`, `api_secret` and, when present, `key_id`, `environment` and `base_url` from the LATEST version at `path`.
Every KV v2 write becomes the version they read, so PENDING, PREVIOUS, the tokens and the rotation record cannot be
versions there: they live in a stage document (`backends.stage_document`, the env store's sidecar format) at
`state_path`, by default `bluum-rotator/<path>` on the same mount: outside the application's folder, so a policy that
lets applications read their path does not show them PENDING or PREVIOUS. The path applications read is a copy of
the document's CURRENT; `backends.projected` writes the document first and the copy second and repairs a crash in
between, exactly as for the env store. Fields at `path` that are not ours (a database password beside the key) are
kept as they are.

Every data write is a check-and-set against the version that was read, so two writers never both win, and a mount
with `cas_required` works unchanged. Nothing depends on older versions being kept (PREVIOUS is in the document, and
rollback writes the previous pair back as a new latest version), so a mount with `max_versions = 1` works too.
Nothing is written to metadata, which has no check-and-set: the minimal policy is create, read and update on the two
data paths.

The store is its credential's ledger (`backends.ledger`): the record and the lease live in the stage document too,
so one check-and-set write covers the lease and what it guards (`backends.vault.ledger`). What applications read at
`path` and how a key maps onto those fields is `backends.key_fields`; KV calls are `backends.vault.kv`; logging in
is `backends.vault.auth`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Unpack

import hvac

from backends import stages
from backends.key_fields import FieldMap
from backends.ledger import Lease, LedgerByDelegation
from backends.projected import Projected
from backends.stages import StageLog
from backends.vault.connection import ConnectionOptions, connect, namespace_of, retry_of
from backends.vault.kv import KvMount, KvVersion
from backends.vault.ledger import VaultDocument, VaultLedger
from rotator.core.errors import (
    ConfigError,
    StoreConflict,
    StoreError,
    StoreNotFound,
)
from rotator.core.findings import Finding
from rotator.core.model import Environment, Stage, StoredKey

__all__ = ["DEFAULT_MOUNT", "STATE_PREFIX", "VaultStore"]

log = logging.getLogger("rotator.store.vault")

DEFAULT_MOUNT: Final = "secret"
STATE_PREFIX: Final = "bluum-rotator/"
"""Where the stage document of `path` lives by default (`bluum-rotator/<path>`), on the same mount."""
LANE_SUFFIX: Final = ".lane"
"""The paying-key lane's document is the stage document's path plus this (`lane_ledger`)."""
_PATH_RE: Final = re.compile(r"[A-Za-z0-9_.@=+-]+(?:/[A-Za-z0-9_.@=+-]+)*")
_SHOW_ATTEMPTS: Final = 3


class VaultStore(LedgerByDelegation):
    """One credential at a KV v2 path applications read, with its stages and lease in a document beside it.

    Options mirror the store's table in rotator.toml; those that say how to reach Vault (`url`, `namespace`,
    `ca_cert`, `timeout`, the login's, `allow_insecure_http`) are `backends.vault.connection.ConnectionOptions`.
    `client`, `environ`, `clock` and `monotonic` are for embedding and tests (an hvac client already logged in, the
    environment to read VAULT_* from, the wall clock the lease is measured on, the clock that times token renewal).
    """

    _ledger: VaultLedger

    def __init__(
        self,
        name: str,
        *,
        path: str,
        mount: str = DEFAULT_MOUNT,
        state_path: str | None = None,
        fields: Sequence[str] = (),
        field_names: Mapping[str, str] | None = None,
        environment: Environment | None = None,
        base_url: str | None = None,
        client: hvac.Client | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        environ = os.environ if environ is None else environ
        self.name = name
        self._path, self._state_path = _checked_paths(name, path, state_path)
        mount = _checked_path(name, "mount", mount)
        self._fields = FieldMap(
            name, fields=fields, field_names=field_names, environment=environment, base_url=base_url
        )
        self._namespace = namespace_of(connection, environ)
        self._session = connect(name, connection, environ=environ, client=client, monotonic=monotonic)
        self._kv = KvMount(self._session, mount, store=name, retry=retry_of(name, connection))
        self._projected = Projected(self, StageLog(log, name, self.describe()))
        self._ledger = VaultLedger(
            self._kv,
            self._state_path,
            store=name,
            describe=self.describe(),
            owner_path=self._kv.where(self._path),
            clock=clock,
        )
        self._clock = clock
        self._known_before: tuple[StoredKey, ...] = ()
        """The keys of the stage document as last read (before a move): `path` may show one of them."""
        self._moved = False
        """The stage document was just written by this handle: the next `show` writes `path` even when it shows the
        key already (see `show`)."""
        self._shown: KvVersion | None = None
        """`path` as the stage move in hand read it (`shown`), for that move's own write there (`show`)."""

    # ----------------------------------------------------------------------------------------------- where

    def describe(self) -> str:
        """Where the secret lives, for messages."""
        namespace = f" (namespace {self._namespace})" if self._namespace else ""
        return f"Vault KV {self._kv.where(self._path)} at {self._session.address}{namespace}"

    @property
    def state_where(self) -> str:
        """Where the stage document lives, as `mount/path`."""
        return self._ledger.state_where

    def __repr__(self) -> str:
        return f"VaultStore(name={self.name!r}, path={self._kv.where(self._path)!r})"

    def check_access(self) -> list[Finding]:
        """The mount and the token's capabilities on both paths, asked without writing (`backends.access`)."""
        from backends.vault.access import vault_access

        part = f"store {self.name} ({self.describe()})"
        return vault_access(part, self._session, self._kv.mount, (self._path, self._state_path), self.name)

    def check_lane_access(self) -> list[Finding]:
        """The token's capabilities on the paying-key lane's document (`[fleet] lanes`), asked without writing."""
        from backends.vault.access import vault_access

        part = f"store {self.name} ({self.describe()}), the paying-key lane"
        lane = f"{self._state_path}{LANE_SUFFIX}"
        return vault_access(part, self._session, self._kv.mount, (lane,), self.name)

    def access_refusals(self) -> list[Finding]:
        """The capabilities the token lacks on both paths, in one read-only request (`backends.access`)."""
        from backends.vault.access import vault_refusals

        part = f"store {self.name} ({self.describe()})"
        return vault_refusals(part, self._session, self._kv.mount, (self._path, self._state_path))

    def lane_ledger(self) -> VaultLedger:
        """The lease of the paying-key lane kept in this store (`backends.ledger.LaneSource`): a document of its own
        at `<state_path>.lane` on the same mount, with the same check-and-set lease as the stage document."""
        lane = f"{self._state_path}{LANE_SUFFIX}"
        return VaultLedger(
            self._kv,
            lane,
            store=self.name,
            describe=f"the paying-key lane at {self._kv.where(lane)}",
            owner_path=f"lane:{self._kv.where(self._path)}",
            clock=self._clock,
        )

    # ----------------------------------------------------------------------------------------------- the stages

    def read(self, stage: Stage) -> StoredKey | None:
        """CURRENT from the latest version at `path` (plus the document's token when it holds that key); the rest
        from the stage document."""
        return self._projected.read(stage)

    def put_pending(self, key: StoredKey) -> stages.Staged:
        """Stage `key` as PENDING under its token, in the document only: applications see nothing yet."""
        stages.require_token(key)
        self.check_show(key)
        return self._projected.put_pending(key, where=self.state_where, store=self.name)

    def promote(self, token: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT, the key applications read becomes PREVIOUS: the document, then `path`."""
        return self._projected.promote(token, where=self.state_where, store=self.name)

    def restore_previous(self, token: str) -> stages.Rollback:
        """Rollback: PREVIOUS is written back to `path` as a new latest version (the document first)."""
        return self._projected.restore_previous(token, where=self.state_where, store=self.name)

    def clear_previous(self, token: str) -> stages.Cleared:
        """Forget PREVIOUS once its key is revoked; applications never read it, so only the document changes."""
        return self._projected.clear_previous(token)

    # -------------------------------------------------------------------------------- the two places (for Projected)

    def load_document(self) -> VaultDocument:
        """The stage document at `state_path` (an empty one when nothing is there yet); under a held lease, as this
        handle last read or wrote it (`VaultLedger.held_document`)."""
        return self._document(self._ledger.held_document())

    def _document(self, document: VaultDocument) -> VaultDocument:
        self._known_before = _keys_of(document)
        self._moved = False
        self._shown = None
        return document

    def save_document(self, document: VaultDocument) -> None:
        """Write the document if it is still at the version read and no later lease than this handle's was taken."""
        self._ledger.save_document(document)
        self._moved = True

    def read_stages(self) -> dict[Stage, StoredKey]:
        """Every stage that holds a key, from one reading of the stage document and of `path` (`backends.base`)."""
        return self._projected.read_stages()

    def shown(self) -> StoredKey:
        """The key applications read now: the latest version at `path`."""
        latest = self._kv.read(self._path, action="reading")
        self._shown = latest
        where = self._kv.where(self._path)
        start = f"`rotator enroll` gives the credential its first key, or write the key applications use at {where}"
        if latest.version == 0:
            raise StoreNotFound(f"{where} holds nothing yet: {start}", store=self.name)
        if latest.data is None:
            raise StoreNotFound(
                f"{where}: its latest version ({latest.version}) is deleted, so applications read nothing: undelete "
                f"it (`bao kv undelete -mount={self._kv.mount} -versions={latest.version} {self._path}`), or {start}",
                store=self.name,
            )
        return self._fields.key_from(latest.data, f"{where} (version {latest.version})")

    def check_show(self, key: StoredKey) -> None:
        """Refuse a key that `path` could not hold as applications expect (an empty key or secret)."""
        if not key.api_key or not key.api_secret.reveal():
            raise StoreError(f"{key.label} has an empty API key or secret; nothing was written", store=self.name)

    def show(self, key: StoredKey) -> bool:
        """Make `key` the latest version at `path`, keeping fields that are not ours; False when it already is.

        Every write at `path` is what applications read next, so it is made only when, just before it:
        - the stage document still names `key` CURRENT, and no later lease than this handle's was taken (a runner
          that froze between the document and this write must not show a key the new holder has since rolled back
          and revoked);
        - `path` shows a key some stage held (before or after this move), or none: a key a person wrote there is
          never overwritten;
        - `path` is still at the version read (check-and-set). A writer who changed only other fields is followed
          on their version; one who changed our fields stops the write.

        Right after the stage document moved, `path` is written even when it shows `key` already (a new version, the
        same fields): a runner that read `path` under an earlier lease and was frozen before its own write (its check
        passed, its request not yet sent) then finds the version moved on, and its check-and-set is refused by Vault
        itself. Without it, a rollback by the runner that took over, whose old key `path` still showed, would leave
        the version the frozen runner names, and its late write would show the key that rollback revoked (I1).

        That write right after the move is built on `path` as the move read it (the key it made PREVIOUS), not read
        again (issue 18): the write is a check-and-set on that version, so it is applied only while `path` still
        holds what the checks above were made on; when anyone wrote there since, it is refused, and `path` is read
        afresh and decided again. Deciding *not* to write is never made on that reading.
        """
        self.check_show(key)
        fence, self._moved = self._moved, False
        seen, self._shown = (self._shown if fence else None), None
        for _ in range(_SHOW_ATTEMPTS + (seen is not None)):
            latest = seen if seen is not None else self._kv.read(self._path, action="reading")
            write = self._kv.write_seen if seen is not None else self._kv.write
            seen = None
            base = dict(latest.data or {})
            wanted = self._fields.wanted(key, base)
            if latest.data is not None and wanted == base and not fence:
                return False
            self._check_may_write(key, latest)
            try:
                write(self._path, wanted, cas=latest.version, action="writing the key to")
            except StoreConflict:
                continue  # someone wrote meanwhile: look again (their key, if they wrote one, is then refused)
            return True
        raise StoreConflict(
            f"{self._kv.where(self._path)} kept changing while the key was being written; the rotation state is "
            "kept: run `rotator resume` once nobody else writes there",
            store=self.name,
        )

    def _check_may_write(self, key: StoredKey, latest: KvVersion) -> None:
        where = self._kv.where(self._path)
        known = self._known_before
        # Read afresh, not as seen: a runner frozen between its document write and this one must find the lease
        # taken over here, as no check-and-set of `path` can tell it.
        document = self._document(self._ledger.load_document())
        self._known_before = known + self._known_before
        self._ledger.refuse_if_fenced_out(document.lease)
        if document.current is None or not document.current.same_key(key):
            raise StoreConflict(
                f"{where} was not written: the rotation state at {self.state_where} no longer makes {key.label} "
                "CURRENT (another runner moved it on). Run `rotator status` to see where that rotation is",
                store=self.name,
            )
        if latest.data is None:
            return
        try:
            shown = self._fields.key_from(latest.data, f"{where} (version {latest.version})")
        except StoreNotFound:
            return  # no key fields yet: nothing of anyone's is overwritten
        if shown.same_key(key) or any(shown.same_key(held) for held in self._known_before):
            return
        raise StoreConflict(
            f"{where} holds {shown.label} (version {latest.version}), which no rotation of this store put there "
            "(someone wrote it by hand?), so it was not overwritten; applications keep reading it. If that key is "
            "right, nothing more is needed here; otherwise restore the expected key there, then run "
            "`rotator resume`",
            store=self.name,
        )

    # ----------------------------------------------------------------------------------------------- ledger
    # read_record, write_record, acquire, renew, release: LedgerByDelegation, to the stage document's ledger

    def carry_record(self, record: dict[str, Any], *, lease: Lease, version: int, last: bool = False) -> None:
        """The next stage move's document write carries `record` too (`backends.ledger.DocumentLedger`)."""
        self._ledger.carry_record(record, lease=lease, version=version, last=last)

    def carried(self) -> int | None:
        """The record's version when a stage move since `carry_record` carried it; None otherwise."""
        return self._ledger.carried()

    def write_last_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """The record, with the lease released in the same write (`backends.ledger.DocumentLedger`)."""
        return self._ledger.write_last_record(record, lease=lease, version=version)

    def close(self) -> None:
        """Release the leases this handle still holds and close Vault connections."""
        self._ledger.release_all()
        self._session.close()

    # ----------------------------------------------------------------------------------------------- internals


def _checked_paths(store: str, path: str, state_path: str | None) -> tuple[str, str]:
    """`path` and `state_path` (by default `bluum-rotator/<path>`), checked: two Vault paths, never the same."""
    checked = _checked_path(store, "path", path)
    state = _checked_path(store, "state_path", state_path or STATE_PREFIX + checked)
    if state == checked:
        raise ConfigError(
            f"store {store!r}: state_path must differ from path: applications read every version written at "
            "path, so PENDING and PREVIOUS cannot live there. Remove state_path to use the default"
        )
    return checked, state


def _checked_path(store: str, option: str, value: object) -> str:
    text = value.strip("/") if isinstance(value, str) else ""
    if not text or not _PATH_RE.fullmatch(text) or any(part in (".", "..") for part in text.split("/")):
        raise ConfigError(
            f"store {store!r}: {option} is not a Vault path: use names joined by /, without spaces or "
            'leading and trailing slashes (e.g. path = "bluum/prod/trading")'
        )
    return text


def _keys_of(document: VaultDocument) -> tuple[StoredKey, ...]:
    return tuple(key for key in (document.current, document.pending, document.previous) if key is not None)
