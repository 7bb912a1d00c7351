"""The Vault store's ledger: the stage document at `state_path`, holding the stages, the record and the lease.

Why a unit of its own: everything authoritative about a rotation in Vault lives in this one KV v2 secret, and its
rules are few but strict. Every write is a check-and-set against the version read, so the lease and what it guards
change together or not at all: `acquire` writes a lease with the next fencing number (refused while another unexpired
lease is held), a record write is refused under a lease that expired or was taken over, and a handle that took a
lease writes nothing more once a later lease was taken (a stale runner's stage move). Lease times are wall-clock
seconds of the runners, so their clocks should agree to well within the lease's 15 minutes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from backends.holder import HandleLeases, HeldLease, HolderProcess, contend, refuse_write, this_process
from backends.ledger import Lease, VersionedRecord
from backends.stage_document import DocumentReader, StageDocument
from backends.vault.kv import KvMount
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict, StoreCorrupt, StoreError

__all__ = ["VaultDocument", "VaultLedger"]

log = logging.getLogger("rotator.store.vault")

T = TypeVar("T")

DOCUMENT_FIX: Final = (
    "undelete its latest version if it was deleted (`bao kv undelete`), or, if no rotation is under way, delete it "
    "(the key applications read is kept; then run `rotator sweep` so keys only the document knew get revoked). Do "
    "not roll it back to an older version: that would also roll back the lease's fencing number"
)


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The lease as kept in the stage document. `owner` None: released (the fencing number stays for the next)."""

    fence: int = 0
    owner: str | None = None
    expires_at: float | None = None
    ttl_seconds: float | None = None
    holder: HolderProcess | None = None
    """Where the holder runs, so that a contender in the same place can tell it died (`backends.holder`)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "fence": self.fence,
            "owner": self.owner,
            "expires_at": self.expires_at,
            "ttl_seconds": self.ttl_seconds,
            "holder": self.holder.to_json() if self.holder is not None else None,
        }


@dataclass(frozen=True, slots=True)
class VaultDocument(StageDocument):
    """The stage document plus what this store keeps beside it: the KV version it was read at, and the lease."""

    kv_version: int = 0
    """The version a check-and-set write of this document must name (0: nothing written at state_path yet)."""
    lease: LeaseState = LeaseState()


class VaultLedger:
    """The stage document of one store at `mount/state_path`, and the lease and record kept in it."""

    def __init__(
        self,
        kv: KvMount,
        state_path: str,
        *,
        store: str,
        describe: str,
        owner_path: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = store
        self._owner_path = owner_path
        """The path whose stages this document keeps (`mount/path`): a document that names another is not ours."""
        self._kv = kv
        self._state_path = state_path
        self._describe = describe
        self._clock = clock
        self._held = HandleLeases()
        self._seen: VaultDocument | None = None
        """The stage document as this handle last read or wrote it: what a record write, a lease taken or a release
        tries first, without reading it again (`_on_seen`)."""
        self._carry: _Carry | None = None
        """A record write the next `save_document` carries (`carry_record`), and after it the version written."""

    @property
    def state_where(self) -> str:
        """Where the stage document lives, as `mount/path`."""
        return self._kv.where(self._state_path)

    def describe(self) -> str:
        """The store's description, for messages."""
        return self._describe

    def load_document(self) -> VaultDocument:
        """The stage document at `state_path` (an empty one when nothing is there yet)."""
        self._seen = None
        latest = self._kv.read(self._state_path, action="reading the rotation state at")
        if latest.version == 0:
            self._seen = VaultDocument()
            return self._seen
        if latest.data is None:
            raise StoreCorrupt(
                f"{self.state_where}: its latest version ({latest.version}) is deleted, so the rotation state is "
                f"unknown: undelete it (`bao kv undelete -mount={self._kv.mount} -versions={latest.version} "
                f"{self._state_path}`), or {DOCUMENT_FIX}",
                store=self.name,
            )
        owner = latest.data.get("path")
        if owner is not None and owner != self._owner_path:
            raise StoreConflict(
                f"{self.state_where} keeps the rotation state of {owner}, not of {self._owner_path}: two stores share "
                "one state_path, and a rotation of one would replace the other's new key. Nothing was changed. Give "
                "this store its own state_path (the default, bluum-rotator/<path>, is always its own)",
                store=self.name,
            )
        document = DocumentReader(self.state_where, self.name, DOCUMENT_FIX).parse(latest.data)
        self._seen = VaultDocument(
            current=document.current,
            pending=document.pending,
            previous=document.previous,
            rolled_back_token=document.rolled_back_token,
            record=document.record,
            record_version=document.record_version,
            kv_version=latest.version,
            lease=self._lease_of(latest.data.get("lease")),
        )
        return self._seen

    def held_document(self) -> VaultDocument:
        """The stage document as this handle last read or wrote it, while that version names the lease this handle
        holds; read now otherwise.

        Under a held lease the document changes only by this handle's writes: another runner writes it only by
        taking the lease over (after its expiry, which the holder's lease clock sees first, or once the holder's
        process is gone), and every write is a check-and-set on the version, so a write built on a document that
        changed since is refused, and decided again on what is there (`save_document`). The lease holder's renewal
        at the start of each step reads it afresh (issue 18: re-reads were most of a rotation's Vault requests)."""
        seen, mine = self._seen, self._held.latest()
        if seen is not None and mine is not None and seen.lease.fence == mine and seen.lease.owner is not None:
            return seen
        return self.load_document()

    def save_document(self, document: VaultDocument) -> None:
        """Write the document if it is still at the version read and no later lease than this handle's was taken.
        A write refused for its version says LeaseLost when a later lease was taken since. With a record to carry
        (`carry_record`) that `write_record` would accept on this document, the write carries it too."""
        self.refuse_if_fenced_out(document.lease)
        carry = self._carry
        carried = self._carried_onto(document, carry) if carry is not None and carry.written is None else None
        try:
            self._write_document(carried or document, action="writing the rotation state to")
        except StoreConflict:
            self.refuse_if_fenced_out(self.load_document().lease)
            raise
        if carry is not None and carried is not None:
            self._carry = replace(carry, written=carried.record_version)  # once: a later write builds on it
            if carry.last:
                self._released(carry.lease)

    def carry_record(self, record: dict[str, Any], *, lease: Lease, version: int, last: bool = False) -> None:
        """Have the next `save_document` carry `record` (see `backends.ledger.DocumentLedger`)."""
        _serializable(record, self.name)
        self._carry = _Carry(record, lease, version, last)

    def _carried_onto(self, document: VaultDocument, carry: _Carry) -> VaultDocument | None:
        """`document` with the carried record, when `write_record` would accept it there; None when it would refuse
        (the document is then written without it, and the record's own write refuses as it always did)."""
        try:
            self._refuse_unless_held(document.lease, carry.lease, what="the rotation record was not written")
            self._check_record_version(document, carry.version)
        except (LeaseLost, StoreConflict):
            return None
        carried = replace(document, record=carry.record, record_version=carry.version + 1)
        return replace(carried, lease=LeaseState(carry.lease.fence)) if carry.last else carried

    def carried(self) -> int | None:
        """The record's version when `save_document` carried it since `carry_record`; the carry is dropped."""
        carry, self._carry = self._carry, None
        return None if carry is None else carry.written

    def read_record(self) -> VersionedRecord:
        """The rotation record kept in the stage document and its version (None and 0 before the first rotation)."""
        document = self.held_document()
        return VersionedRecord(document.record, document.record_version)

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record if `lease` still holds and the record is still at `version`; one check-and-set write."""
        return self._write_record(record, lease=lease, version=version, release=False)

    def write_last_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """`write_record`, with the lease released in the same write (a rotation's last record: one write, not two)."""
        return self._write_record(record, lease=lease, version=version, release=True)

    def _write_record(self, record: dict[str, Any], *, lease: Lease, version: int, release: bool) -> int:
        _serializable(record, self.name)
        what = "the rotation record was not written"

        def attempt(document: VaultDocument, fresh: bool) -> int:
            self._refuse_unless_held(document.lease, lease, what=what)
            self._check_record_version(document, version)
            try:
                written = replace(document, record=record, record_version=version + 1)
                if release:
                    written = replace(written, lease=LeaseState(lease.fence))
                self._write_document(written, action="writing the rotation record to", seen=not fresh)
            except StoreConflict:
                if fresh:
                    self._refuse_unless_held(self.load_document().lease, lease, what=what)
                raise
            return version + 1

        written = self._on_seen(attempt)
        if release:
            self._released(lease)
        return written

    def _released(self, lease: Lease) -> None:
        self._held.discard(lease.fence)
        log.debug("released the lease at %s with the last record (fence %d)", self.state_where, lease.fence)

    def _check_record_version(self, document: VaultDocument, version: int) -> None:
        """StoreConflict when the record in `document` is no longer at `version` (someone wrote it since)."""
        if document.record_version != version:
            raise StoreConflict(
                f"the rotation record at {self.state_where} changed since it was read (version "
                f"{document.record_version}, not {version}); nothing was written",
                store=self.name,
            )

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A lease with the next fencing number, written by check-and-set; RotationInProgress while one is held."""

        def attempt(document: VaultDocument, fresh: bool) -> Lease:
            held, now = document.lease, self._clock()
            found = HeldLease(held.fence, held.owner, held.expires_at, held.holder)
            lease = contend(
                found, owner=owner, ttl_seconds=ttl_seconds, now=now, where=self.state_where, store=self.name
            )
            taken = LeaseState(lease.fence, owner, lease.expires_at, ttl_seconds, this_process())
            try:
                self._write_document(
                    replace(document, lease=taken), action="taking the rotation lease at", seen=not fresh
                )
            except StoreConflict as exc:
                if not fresh:
                    raise
                raise RotationInProgress(
                    f"another runner changed the rotation state at {self.state_where} at the same moment (it is "
                    "probably taking the lease); nothing was changed. Wait for it, or run the command again"
                ) from exc
            return lease

        lease = self._on_seen(attempt)
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
        self._held.discard(lease.fence)
        seen = self._seen
        if seen is not None and seen.lease.fence == lease.fence and seen.lease.owner is not None:
            try:  # the document as this handle last saw it, still holding the lease: one write, no read
                released = replace(seen, lease=LeaseState(lease.fence))
                self._write_document(released, action="releasing the lease at", seen=True)
                return
            except StoreConflict:
                pass  # written since: decided below on what is there now
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
            self._write_document(replace(document, lease=LeaseState(held.fence)), action="releasing the lease at")
        except StoreConflict:
            log.warning(
                "the rotation lease at %s changed while it was being released; it ends at its expiry",
                self.state_where,
                extra={"fields": {"store": self.name}},
            )

    def _write_document(self, document: VaultDocument, *, action: str, seen: bool = False) -> None:
        """Check-and-set write of `document` at the version it was read at. `seen`: built on the document as this
        handle saw it last, not read again; a refusal of its version is then a plain conflict (this handle has no
        write of its own there to read back: one whose outcome is unknown clears what it saw)."""
        data = document.to_dict()
        data["lease"] = document.lease.to_json()
        data["path"] = self._owner_path
        self._seen = None
        write = self._kv.write_seen if seen else self._kv.write
        version = write(self._state_path, data, cas=document.kv_version, action=action)
        self._seen = replace(document, kv_version=version)

    def _on_seen(self, attempt: Callable[[VaultDocument, bool], T]) -> T:
        """`attempt` (its checks, then one check-and-set write) on the document this handle saw last, not read again;
        when a check or the write is refused there, `attempt` once more on the document read now (`fresh`), which is
        all it ever did before. The version is what makes the first try safe: a check-and-set write naming the
        version seen is applied only while nobody wrote since, so only when what was seen is what is there; every
        check is then the check a fresh read would have made, and a refusal is decided again on what is there."""
        seen = self._seen
        if seen is not None:
            try:
                return attempt(seen, False)
            except (StoreConflict, RotationInProgress):  # LeaseLost too: refused on what was seen; look again
                pass
        return attempt(self.load_document(), True)

    def refuse_if_fenced_out(self, stored: LeaseState) -> None:
        """A handle that took a lease writes nothing once a later one was taken (a stale runner's stage move)."""
        mine = self._held.latest()
        if mine is not None and stored.fence > mine:
            raise LeaseLost(
                f"{self.describe()}: the rotation state was not written: this runner's lease (fence {mine}) was taken "
                f"over by fence {stored.fence} ({stored.owner or 'since released'}); this runner changes nothing "
                "more. The lease holder (or `rotator resume`) finishes"
            )

    def _refuse_unless_held(self, stored: LeaseState, lease: Lease, *, what: str) -> None:
        held = HeldLease(stored.fence, stored.owner, stored.expires_at, stored.holder)
        refuse_write(held, lease, now=self._clock(), describe=self.describe(), what=what)

    def _lost(self, lease: Lease) -> Lease:
        raise LeaseLost(
            f"{self.describe()}: the rotation lease of {lease.owner} (fence {lease.fence}) was taken over while it was "
            "being renewed; this runner changes nothing more"
        )

    def _lease_of(self, raw: object) -> LeaseState:
        if raw is None:
            return LeaseState()
        fence = raw.get("fence") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not isinstance(fence, int) or isinstance(fence, bool) or fence < 0:
            raise StoreCorrupt(
                f"{self.state_where}: field `lease` must be an object with a whole-number `fence`: {DOCUMENT_FIX}",
                store=self.name,
            )
        owner, expires_at, ttl = raw.get("owner"), raw.get("expires_at"), raw.get("ttl_seconds")
        return LeaseState(
            fence=fence,
            owner=owner if isinstance(owner, str) else None,
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            ttl_seconds=float(ttl) if isinstance(ttl, int | float) else None,
            holder=HolderProcess.from_json(raw.get("holder")),
        )

    def release_all(self) -> None:
        """Release the leases this handle still holds (a runner that stops without releasing)."""
        self._held.release_all(self.release, self.state_where)


@dataclass(frozen=True, slots=True)
class _Carry:
    """A record write that rides on the store's next write of the stage document (`VaultLedger.carry_record`)."""

    record: dict[str, Any]
    lease: Lease
    version: int
    last: bool = False
    """The write releases the lease too (the record is the command's last)."""
    written: int | None = None
    """The record's version once a document write carried it."""


def _serializable(record: dict[str, Any], store: str) -> None:
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=store) from exc
