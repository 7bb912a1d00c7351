"""The ledger: where one credential's rotation record lives, and the lease that says who may write it.

Why a lease with a fencing number, not a lock held for a whole run: a Lambda step, a daemon thread and a CLI run
on another machine all act on the same credential, and a remote store's lock is a lease that can expire while its
holder sleeps through a propagation wait or a grace window. So:

- `acquire(owner, ttl)` gives a `Lease` with a fencing number that grows with every acquisition; anyone else is
  refused (RotationInProgress, exit 3) until the lease is released or has expired.
- `renew(lease, ttl)` extends it; it fails with `LeaseLost` (exit 3) once someone else has acquired since.
- `read_record()` returns the record with its version; `write_record(record, lease=, version=)` is a
  compare-and-set: it is
  refused with `LeaseLost` when the lease is no longer the current, unexpired one, and with `StoreConflict` when
  the record changed since `version` was read. A stale runner therefore changes nothing more, whatever it does.

The record holds no secret (key ids, phases, times). Stage calls (`SecretStore.put_pending` and the rest) are not
fenced themselves: the driver renews its lease before each step and writes the record after it, so a runner that
lost its lease stops at its next step boundary.

The primary store of a credential is its ledger in the built-in stores (the env store: the sidecar plus `flock`
on the lock file, whose fencing number lives in that lock file; the memory store: a real TTL lease on a clock
tests can move). `tests/store_contract.py` has the ledger cases every store runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rotator.core.durations import format_duration


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to write one credential's record until `expires_at` (on the ledger's own clock)."""

    owner: str
    fence: int
    """Grows by one with every acquisition of this ledger: a write under a lower number is stale."""
    expires_at: float
    ttl_seconds: float


@dataclass(frozen=True, slots=True)
class VersionedRecord:
    """The record as read, and the version a compare-and-set write must name. Version 0: never written."""

    record: dict[str, Any] | None
    version: int


@runtime_checkable
class Ledger(Protocol):
    """One credential's rotation record and its lease."""

    name: str

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A new lease, or RotationInProgress (never waits) while another unexpired lease is held."""
        ...

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        """`lease` extended by `ttl_seconds` from now; LeaseLost if another lease was acquired since."""
        ...

    def release(self, lease: Lease) -> None:
        """Give the lease up. Releasing a lease that was taken over does nothing to the new holder's."""
        ...

    def read_record(self) -> VersionedRecord:
        """The record and its version."""
        ...

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record if `lease` still holds and nobody wrote since `version`; returns the new version.

        LeaseLost when the lease expired or was taken over; StoreConflict when the version moved on.
        """
        ...


@runtime_checkable
class DocumentLedger(Protocol):
    """A ledger that keeps the record in the same document as its store's stages (the Vault store's stage document):
    a record write can ride on the store's next write of that document, and the command's last record write can give
    the lease up, each one check-and-set write instead of two (issue 18: every write is a request to the store)."""

    def carry_record(self, record: dict[str, Any], *, lease: Lease, version: int, last: bool = False) -> None:
        """Have the store's next write of its document carry `record` (the checks of `write_record` first; a write
        they refuse carries nothing, and the record is then written on its own and refused there, as always).
        `last`: that write releases the lease too, as `write_last_record` does."""
        ...

    def carried(self) -> int | None:
        """The record's new version when a document write since `carry_record` carried it; None otherwise. Either
        way the carry is dropped: only the change the caller made in between may carry it."""
        ...

    def write_last_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """`write_record`, releasing `lease` in the same write: the last record write of a command that ends with
        it (a rotation completed)."""
        ...


@runtime_checkable
class LaneSource(Protocol):
    """A store that can keep a paying key's lane (issue 20, "Many hosts, one tenant key"): a lease of its own, beside
    the credential's ledger and in the same place (Vault: a document at `<state_path>.lane`; DynamoDB: the item
    `<secret ARN>#lane`; the env store: a kernel lock on `<file>.lane.rotator.lock`, so only on one host). Why there:
    every runner that can rotate the credentials a paying key pays for reaches that store already, and its leases
    already have fencing numbers and a compare-and-set. Only the lease is used: the lane keeps no record."""

    def lane_ledger(self) -> Ledger:
        """A new handle on the lane's lease (the caller releases what it takes)."""
        ...


def lease_refusal(*, held_fence: int | None, latest_fence: int, lease: Lease, now: float) -> str | None:
    """Why `lease` no longer allows a write, or None. Pure, shared by every ledger.

    `held_fence` is the fencing number of the lease the ledger holds now (None: none is held); `latest_fence` the
    highest it ever handed out. An expired lease nobody took over can still be renewed, but not written under.
    """
    whose = f"its lease (fence {lease.fence}, owner {lease.owner})"
    if latest_fence > lease.fence:
        return f"{whose} was taken over by a later one (fence {latest_fence})"
    if held_fence != lease.fence:
        return f"{whose} was released"
    if now >= lease.expires_at:
        return f"{whose} expired {format_duration(now - lease.expires_at, places=2)} ago"
    return None


@contextmanager
def held_lease(ledger: Ledger, owner: str, ttl_seconds: float) -> Iterator[Lease]:
    """Acquire for the `with` block and release after it, also when it raises. For short holds (sweep, tests); a
    rotation's driver renews its lease through its waits instead."""
    lease = ledger.acquire(owner, ttl_seconds)
    try:
        yield lease
    finally:
        ledger.release(lease)


class LedgerByDelegation:
    """The `Ledger` calls of a store whose ledger is a separate object, `self._ledger` (the Vault store's stage
    document, the AWS store's DynamoDB item): one forwarding in one place instead of one per store."""

    _ledger: Ledger

    def read_record(self) -> VersionedRecord:
        """The record and its version."""
        return self._ledger.read_record()

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Compare-and-set of the record under `lease` (see `Ledger.write_record`)."""
        return self._ledger.write_record(record, lease=lease, version=version)

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A new lease, or RotationInProgress while another unexpired one is held."""
        return self._ledger.acquire(owner, ttl_seconds)

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        """`lease` extended; LeaseLost once it was released or taken over."""
        return self._ledger.renew(lease, ttl_seconds)

    def release(self, lease: Lease) -> None:
        """Give the lease up; one taken over in the meantime is left to its holder."""
        self._ledger.release(lease)
