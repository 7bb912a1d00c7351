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

The store is its credential's ledger (`backends.ledger`). The lease lives in the stage document too, so one
check-and-set write covers the lease and what it guards: `acquire` writes a lease with the next fencing number
(refused while another unexpired lease is held), and every write of the document by a handle that holds a lease
re-checks that no later lease has been taken since, so a runner whose lease was taken over writes nothing more. Lease
times are wall-clock seconds of the runners, so their clocks should agree to well within the lease's 15 minutes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import hvac

from backends import stages
from backends.ledger import Lease, VersionedRecord, lease_refusal
from backends.projected import Projected
from backends.stage_document import DocumentReader, StageDocument
from backends.stages import StageLog
from backends.vault_auth import VaultAuth, VaultSession
from backends.vault_kv import KvMount
from rotator.errors import (
    ConfigError,
    LeaseLost,
    RotationInProgress,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreNotFound,
)
from rotator.model import Environment, Stage, StoredKey
from rotator.secret import Secret

__all__ = ["DEFAULT_MOUNT", "STATE_PREFIX", "VaultStore"]

log = logging.getLogger("rotator.store.vault")

DEFAULT_MOUNT: Final = "secret"
STATE_PREFIX: Final = "bluum-rotator/"
"""Where the stage document of `path` lives by default (`bluum-rotator/<path>`), on the same mount."""
FIELDS: Final = ("api_key", "api_secret", "key_id", "environment", "base_url")
OPTIONAL_FIELDS: Final = ("key_id", "environment", "base_url")
"""Fields the store adds to the secret only when its `fields` option names them (it always keeps the fields the
secret already has in step with the key)."""
_PATH_RE: Final = re.compile(r"[A-Za-z0-9_.@=+-]+(?:/[A-Za-z0-9_.@=+-]+)*")
_SHOW_ATTEMPTS: Final = 3
_DOCUMENT_FIX: Final = (
    "restore an earlier version (`bao kv rollback`), or, if no rotation is under way, delete it (the key applications "
    "read is kept; then run `rotator sweep` so keys only the document knew get revoked)"
)


@dataclass(frozen=True, slots=True)
class _LeaseState:
    """The lease as kept in the stage document. `owner` None: released (the fencing number stays for the next)."""

    fence: int = 0
    owner: str | None = None
    expires_at: float | None = None
    ttl_seconds: float | None = None

    def live(self, now: float) -> bool:
        return self.owner is not None and self.expires_at is not None and now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "fence": self.fence,
            "owner": self.owner,
            "expires_at": self.expires_at,
            "ttl_seconds": self.ttl_seconds,
        }


@dataclass(frozen=True, slots=True)
class _VaultDocument(StageDocument):
    """The stage document plus what this store keeps beside it: the KV version it was read at, and the lease."""

    kv_version: int = 0
    """The version a check-and-set write of this document must name (0: nothing written at state_path yet)."""
    lease: _LeaseState = _LeaseState()


class VaultStore:
    """One credential at a KV v2 path applications read, with its stages and lease in a document beside it.

    Options mirror the store's table in rotator.toml; `client`, `environ`, `clock` and `monotonic` are for embedding
    and tests (an hvac client already logged in, the environment to read VAULT_* from, the wall clock the lease is
    measured on, the clock that times token renewal).
    """

    def __init__(
        self,
        name: str,
        *,
        path: str,
        mount: str = DEFAULT_MOUNT,
        state_path: str | None = None,
        url: str | None = None,
        namespace: str | None = None,
        ca_cert: str | None = None,
        timeout: float = 10.0,
        auth: str | None = None,
        auth_mount: str | None = None,
        role: str | None = None,
        token_file: str | None = None,
        role_id_file: str | None = None,
        secret_id_file: str | None = None,
        jwt_file: str | None = None,
        aws_region: str | None = None,
        aws_header_value: str | None = None,
        fields: Sequence[str] = (),
        field_names: Mapping[str, str] | None = None,
        environment: Environment | None = None,
        base_url: str | None = None,
        client: hvac.Client | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.name = name
        self._path = _checked_path(name, "path", path)
        self._state_path = _checked_path(name, "state_path", state_path or STATE_PREFIX + self._path)
        if self._state_path == self._path:
            raise ConfigError(
                f"store {name!r}: state_path must differ from path: applications read every version written at "
                "path, so PENDING and PREVIOUS cannot live there. Remove state_path to use the default"
            )
        mount = _checked_path(name, "mount", mount)
        self._extra_fields = _checked_fields(name, fields)
        self._names = _checked_field_names(name, field_names)
        self._environment = Environment(environment) if environment is not None else None
        self._base_url = base_url
        self._clock = clock
        address = url or environ.get("VAULT_ADDR", "")
        if client is None and not address:
            raise ConfigError(
                f"store {name!r}: no Vault address: set `url` in the store's table, or the VAULT_ADDR environment "
                'variable (e.g. url = "https://vault.example.com:8200")'
            )
        self._namespace = namespace or environ.get("VAULT_NAMESPACE") or None
        options = {
            "auth": auth,
            "auth_mount": auth_mount,
            "role": role,
            "token_file": token_file,
            "role_id_file": role_id_file,
            "secret_id_file": secret_id_file,
            "jwt_file": jwt_file,
            "aws_region": aws_region,
            "aws_header_value": aws_header_value,
        }
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            raise ConfigError(f"store {name!r}: timeout {timeout!r} must be a number of seconds") from None
        self._session = VaultSession(
            store=name,
            url=address or str(getattr(client, "url", "")),
            auth=VaultAuth.from_options(name, options),
            namespace=self._namespace,
            ca_cert=ca_cert or environ.get("VAULT_CACERT") or None,
            timeout=seconds,
            environ=environ,
            client=client,
            monotonic=monotonic,
        )
        self._kv = KvMount(self._session, mount, store=name)
        self._projected = Projected(self, StageLog(log, name, self.describe()))
        self._held: set[int] = set()
        """Fencing numbers of the leases acquired through this handle and not yet released."""
        self._mutex = threading.Lock()

    # ----------------------------------------------------------------------------------------------- where

    def describe(self) -> str:
        """Where the secret lives, for messages."""
        namespace = f" (namespace {self._namespace})" if self._namespace else ""
        return f"Vault KV {self._kv.where(self._path)} at {self._session.address}{namespace}"

    @property
    def state_where(self) -> str:
        """Where the stage document lives, as `mount/path`."""
        return self._kv.where(self._state_path)

    def __repr__(self) -> str:
        return f"VaultStore(name={self.name!r}, path={self._kv.where(self._path)!r})"

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

    def load_document(self) -> _VaultDocument:
        """The stage document at `state_path` (an empty one when nothing is there yet)."""
        latest = self._kv.read(self._state_path, action="reading the rotation state at")
        if latest.version == 0:
            return _VaultDocument()
        if latest.data is None:
            raise StoreCorrupt(
                f"{self.state_where}: its latest version ({latest.version}) is deleted, so the rotation state is "
                f"unknown: undelete it (`bao kv undelete -mount={self._kv.mount} -versions={latest.version} "
                f"{self._state_path}`), or {_DOCUMENT_FIX}",
                store=self.name,
            )
        document = DocumentReader(self.state_where, self.name, _DOCUMENT_FIX).parse(latest.data)
        return _VaultDocument(
            current=document.current,
            pending=document.pending,
            previous=document.previous,
            rolled_back_token=document.rolled_back_token,
            record=document.record,
            record_version=document.record_version,
            kv_version=latest.version,
            lease=self._lease_of(latest.data.get("lease")),
        )

    def save_document(self, document: _VaultDocument) -> None:
        """Write the document if it is still at the version read and no later lease than this handle's was taken."""
        self._refuse_if_fenced_out(document.lease)
        self._write_document(document, action="writing the rotation state to")

    def shown(self) -> StoredKey:
        """The key applications read now: the latest version at `path`."""
        latest = self._kv.read(self._path, action="reading")
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
        return self._key_from(latest.data, latest.version)

    def check_show(self, key: StoredKey) -> None:
        """Refuse a key that `path` could not hold as applications expect (an empty key or secret)."""
        if not key.api_key or not key.api_secret.reveal():
            raise StoreError(f"{key.label} has an empty API key or secret; nothing was written", store=self.name)

    def show(self, key: StoredKey) -> bool:
        """Make `key` the latest version at `path`, keeping fields that are not ours; False when it already is.

        A check-and-set that loses to a writer who changed only other fields is tried again on their version; one
        that changed our fields stops with StoreConflict (someone else is writing keys there).
        """
        self.check_show(key)
        where = self._kv.where(self._path)
        for _ in range(_SHOW_ATTEMPTS):
            latest = self._kv.read(self._path, action="reading")
            base = dict(latest.data or {})
            wanted = self._wanted(key, base)
            if latest.data is not None and wanted == base:
                return False
            try:
                self._kv.write(self._path, wanted, cas=latest.version, action="writing the key to")
            except StoreConflict:
                now = self._kv.read(self._path, action="reading")
                ours = [self._names[field] for field in FIELDS]
                if {n: (now.data or {}).get(n) for n in ours} != {n: base.get(n) for n in ours}:
                    raise StoreConflict(
                        f"{where} was changed by someone else while the new key was being written there (its key "
                        "fields changed); nothing of this runner's was written. Check who else writes that path, "
                        "then run `rotator resume`",
                        store=self.name,
                    ) from None
                continue
            return True
        raise StoreConflict(
            f"{where} kept changing while the key was being written; run `rotator resume`", store=self.name
        )

    # ----------------------------------------------------------------------------------------------- ledger

    def read_record(self) -> VersionedRecord:
        """The rotation record kept in the stage document and its version (None and 0 before the first rotation)."""
        document = self.load_document()
        return VersionedRecord(document.record, document.record_version)

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record if `lease` still holds and the record is still at `version`; one check-and-set write."""
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=self.name) from exc
        document = self.load_document()
        self._refuse_unless_held(document.lease, lease, what="the rotation record was not written")
        if document.record_version != version:
            raise StoreConflict(
                f"the rotation record at {self.state_where} changed since it was read (version "
                f"{document.record_version}, not {version}); nothing was written",
                store=self.name,
            )
        try:
            self._write_document(
                replace(document, record=record, record_version=version + 1), action="writing the rotation record to"
            )
        except StoreConflict:
            self._refuse_unless_held(self.load_document().lease, lease, what="the rotation record was not written")
            raise
        return version + 1

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A lease with the next fencing number, written by check-and-set; RotationInProgress while one is held."""
        document = self.load_document()
        held, now = document.lease, self._clock()
        if held.live(now):
            assert held.expires_at is not None
            raise RotationInProgress(
                f"another rotation of this credential is running ({held.owner}, fence {held.fence}, lease until "
                f"{_stamp(held.expires_at)}; {self.state_where}); nothing was changed. Wait for it; if that runner is "
                "gone, its lease ends then and `rotator resume` finishes its rotation"
            )
        if held.owner is not None:
            log.warning(
                "taking over the expired rotation lease of %s (fence %d) on %s",
                held.owner,
                held.fence,
                self.state_where,
                extra={"fields": {"store": self.name, "owner": held.owner}},
            )
        lease = Lease(owner=owner, fence=held.fence + 1, expires_at=now + ttl_seconds, ttl_seconds=ttl_seconds)
        taken = _LeaseState(lease.fence, owner, lease.expires_at, ttl_seconds)
        try:
            self._write_document(replace(document, lease=taken), action="taking the rotation lease at")
        except StoreConflict as exc:
            raise RotationInProgress(
                f"another runner changed the rotation state at {self.state_where} at the same moment (it is probably "
                "taking the lease); nothing was changed. Wait for it, or run the command again"
            ) from exc
        with self._mutex:
            self._held.add(lease.fence)
        log.debug("took the rotation lease at %s for %s (fence %d)", self.state_where, owner, lease.fence)
        return lease

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        """Extend `lease`; LeaseLost once it was released or another lease was taken. A lease renewed less than a
        third of its time ago is not written again (each renewal is a Vault write)."""
        document = self.load_document()
        held, now = document.lease, self._clock()
        if held.fence != lease.fence or held.owner is None:
            raise LeaseLost(
                f"{self.describe()}: the rotation lease of {lease.owner} (fence {lease.fence}) is no longer held "
                f"(the lease at {self.state_where} is fence {held.fence}, {held.owner or 'released'}); this runner "
                "changes nothing more"
            )
        if held.expires_at is not None and held.expires_at - now >= ttl_seconds * 2 / 3:
            return replace(lease, expires_at=held.expires_at, ttl_seconds=ttl_seconds)
        expires_at = now + ttl_seconds
        try:
            self._write_document(
                replace(document, lease=replace(held, expires_at=expires_at, ttl_seconds=ttl_seconds)),
                action="renewing the rotation lease at",
            )
        except StoreConflict:
            return (
                self.renew(lease, ttl_seconds) if self.load_document().lease.fence == lease.fence else self._lost(lease)
            )
        return replace(lease, expires_at=expires_at, ttl_seconds=ttl_seconds)

    def release(self, lease: Lease) -> None:
        """Give the lease up (the fencing number stays); a lease taken over in the meantime is left to its holder."""
        with self._mutex:
            self._held.discard(lease.fence)
        document = self.load_document()
        held = document.lease
        if held.fence != lease.fence:
            log.warning(
                "the rotation lease of %s (fence %d) on %s had been taken over (fence %d) before it was released",
                lease.owner,
                lease.fence,
                self.state_where,
                held.fence,
                extra={"fields": {"store": self.name, "owner": lease.owner}},
            )
            return
        if held.owner is None:
            return
        try:
            self._write_document(replace(document, lease=_LeaseState(held.fence)), action="releasing the lease at")
        except StoreConflict:
            log.warning(
                "the rotation lease at %s changed while it was being released; it ends at its expiry",
                self.state_where,
                extra={"fields": {"store": self.name}},
            )

    def close(self) -> None:
        """Release the leases this handle still holds and close Vault connections."""
        with self._mutex:
            held = sorted(self._held)
        for fence in held:
            try:
                self.release(Lease(owner="", fence=fence, expires_at=0.0, ttl_seconds=0.0))
            except StoreError as exc:
                log.warning("could not release the rotation lease at %s: %s", self.state_where, exc)
        self._session.close()

    # ----------------------------------------------------------------------------------------------- internals

    def _write_document(self, document: _VaultDocument, *, action: str) -> None:
        data = document.to_dict()
        data["lease"] = document.lease.to_json()
        self._kv.write(self._state_path, data, cas=document.kv_version, action=action)

    def _refuse_if_fenced_out(self, stored: _LeaseState) -> None:
        """A handle that took a lease writes nothing once a later one was taken (a stale runner's stage move)."""
        with self._mutex:
            mine = max(self._held, default=None)
        if mine is not None and stored.fence > mine:
            raise LeaseLost(
                f"{self.describe()}: the rotation state was not written: this runner's lease (fence {mine}) was taken "
                f"over by fence {stored.fence} ({stored.owner or 'since released'}). Nothing more is changed by this "
                "runner; the lease holder (or `rotator resume`) finishes"
            )

    def _refuse_unless_held(self, stored: _LeaseState, lease: Lease, *, what: str) -> None:
        held = stored.fence if stored.owner is not None else None
        refusal = lease_refusal(held_fence=held, latest_fence=stored.fence, lease=lease, now=self._clock())
        if refusal:
            raise LeaseLost(
                f"{self.describe()}: {what}: {refusal}. Nothing more is changed by this runner; the lease holder (or "
                "`rotator resume`, once no lease is held) finishes"
            )

    def _lost(self, lease: Lease) -> Lease:
        raise LeaseLost(
            f"{self.describe()}: the rotation lease of {lease.owner} (fence {lease.fence}) was taken over while it was "
            "being renewed; this runner changes nothing more"
        )

    def _lease_of(self, raw: object) -> _LeaseState:
        if raw is None:
            return _LeaseState()
        fence = raw.get("fence") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not isinstance(fence, int) or isinstance(fence, bool) or fence < 0:
            raise StoreCorrupt(
                f"{self.state_where}: field `lease` must be an object with a whole-number `fence`: {_DOCUMENT_FIX}",
                store=self.name,
            )
        owner, expires_at, ttl = raw.get("owner"), raw.get("expires_at"), raw.get("ttl_seconds")
        return _LeaseState(
            fence=fence,
            owner=owner if isinstance(owner, str) else None,
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            ttl_seconds=float(ttl) if isinstance(ttl, int | float) else None,
        )

    def _key_from(self, data: Mapping[str, Any], version: int) -> StoredKey:
        where = f"{self._kv.where(self._path)} (version {version})"
        api_key, api_secret = self._names["api_key"], self._names["api_secret"]
        if api_key not in data and api_secret not in data:
            raise StoreNotFound(
                f"{where} has no {api_key} or {api_secret} field yet: put the key applications use there, or give "
                "the credential its first key with `rotator enroll`",
                store=self.name,
            )

        def text(field: str, *, required: bool) -> str | None:
            value = data.get(self._names[field])
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise StoreCorrupt(
                    f"{where}: field {self._names[field]!r} must be a non-empty string: fix it with `bao kv patch`",
                    store=self.name,
                )
            return value

        environment = self._environment
        named = text("environment", required=False)
        if named is not None:
            try:
                environment = Environment.from_bluum(named)
            except ValueError:
                raise StoreCorrupt(
                    f"{where}: field {self._names['environment']!r} must be sandbox or production: fix the value",
                    store=self.name,
                ) from None
        return StoredKey(
            api_key=text("api_key", required=True) or "",
            api_secret=Secret(text("api_secret", required=True) or ""),
            key_id=text("key_id", required=False),
            environment=environment,
            base_url=text("base_url", required=False) or self._base_url,
        )

    def _wanted(self, key: StoredKey, base: Mapping[str, Any]) -> dict[str, Any]:
        """`base` (the secret's other fields kept) with our fields showing `key`; a field the key lacks is removed."""
        environment = key.environment or self._environment
        values: dict[str, str | None] = {
            "api_key": key.api_key,
            "api_secret": key.api_secret.reveal(),
            "key_id": key.key_id,
            "environment": environment.value if environment is not None else None,
            "base_url": key.base_url or self._base_url,
        }
        wanted = dict(base)
        for field, value in values.items():
            name = self._names[field]
            if field in OPTIONAL_FIELDS and field not in self._extra_fields and name not in base:
                continue
            if value is None:
                wanted.pop(name, None)
            else:
                wanted[name] = value
        return wanted


def _checked_path(store: str, option: str, value: object) -> str:
    text = value.strip("/") if isinstance(value, str) else ""
    if not text or not _PATH_RE.fullmatch(text) or any(part in (".", "..") for part in text.split("/")):
        raise ConfigError(
            f"store {store!r}: {option} {value!r} is not a Vault path: use names joined by /, without spaces or "
            'leading and trailing slashes (e.g. path = "bluum/prod/trading")'
        )
    return text


def _checked_fields(store: str, fields: Sequence[str]) -> frozenset[str]:
    unknown = [repr(fields)] if isinstance(fields, str) else [repr(f) for f in fields if f not in OPTIONAL_FIELDS]
    if unknown:
        raise ConfigError(
            f"store {store!r}: fields may name {', '.join(OPTIONAL_FIELDS)} (API key and secret are always written), "
            f"not {', '.join(unknown)}"
        )
    return frozenset(fields)


def _checked_field_names(store: str, field_names: Mapping[str, str] | None) -> dict[str, str]:
    names = {field: field for field in FIELDS}
    if field_names is None:
        return names
    if not isinstance(field_names, Mapping):
        raise ConfigError(f'store {store!r}: field_names must be a table, e.g. field_names = {{ api_key = "KEY" }}')
    for field, name in field_names.items():
        if field not in FIELDS:
            raise ConfigError(f"store {store!r}: field_names may rename {', '.join(FIELDS)}, not {field!r}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"store {store!r}: field_names.{field} must be a non-empty field name")
        names[field] = name
    if len(set(names.values())) != len(names):
        raise ConfigError(f"store {store!r}: field_names gives two fields the same name; give each its own")
    return names


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
