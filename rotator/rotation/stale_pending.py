"""A PENDING no rotation in flight owns: reported by `rotator sweep`, taken off by `rotator sweep --revoke` (issue 17).

Why: a runner frozen with its put of the AWSPENDING version on the wire, held there past the take-over, has it land
after another runner rolled its rotation back (or finished another one): Secrets Manager then labels a key that is
revoked, or orphaned, AWSPENDING, and keeps it so. Nothing makes it CURRENT (a promote moves only its own token, and
`rotate` replaces a PENDING of another token), but while AWSPENDING sits on a version other than AWSCURRENT's,
Secrets Manager refuses to start a rotation of its own ("a previous rotation isn't complete"), so the credential's
scheduled rotation stays blocked until the label is removed. The Vault and env stores refuse such a late write
(check-and-set, the lock), so only stores that say they can drop a PENDING (`PendingDropper`) are looked at.

A PENDING is stale when the ledger's record names no rotation in flight under its token (the record is finished, or
its rotation has another token) and CURRENT does not carry that token too (a promote that has not yet taken its
PENDING off). It is dropped only under the sweep's lease, so no rotation can start in between; its key, if still
active at Bluum, is then an orphan that the same sweep revokes (it is this credential's by its name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rotator.core.errors import StoreNotFound
from rotator.core.model import Stage, StoredKey

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.rules.record import RotationRecord

__all__ = ["PendingDropper", "StalePending", "find", "is_stale"]


@runtime_checkable
class PendingDropper(Protocol):
    """A store that can take a PENDING off without touching CURRENT or PREVIOUS (Secrets Manager's AWSPENDING)."""

    name: str

    def drop_pending(self, token: str) -> StoredKey | None:
        """Take PENDING off when it carries `token` and CURRENT does not; the key it held, or None (nothing done)."""
        ...


@dataclass(frozen=True, slots=True)
class StalePending:
    """A stale PENDING found in one store."""

    store: PendingDropper
    key: StoredKey

    @property
    def token(self) -> str:
        return self.key.token or ""

    def why(self, record: RotationRecord | None) -> str:
        """Why it is stale, naming the key by label and the rotation by token (never a secret)."""
        if record is None:
            owner = "no rotation record"
        elif record.phase.terminal:
            owner = f"the record's rotation {record.token[:8]} is {record.phase.value}"
        else:
            owner = f"the rotation in flight is {record.token[:8]}"
        return f"PENDING {self.key.label} in store {self.store.name!r} is of rotation {self.token[:8]}, but {owner}"


def is_stale(pending: StoredKey | None, current: StoredKey | None, record: RotationRecord | None) -> bool:
    """Whether `pending` belongs to no rotation in flight (see the module docstring). Pure."""
    if pending is None or not pending.token:
        return False
    if current is not None and current.token == pending.token:
        return False
    return record is None or record.phase.terminal or record.token != pending.token


def find(stores: Sequence[SecretStore], record: RotationRecord | None) -> list[StalePending]:
    """The stale PENDINGs of one credential's `stores` that can drop one."""
    found = []
    for store in stores:
        if not isinstance(store, PendingDropper):
            continue
        pending = store.read(Stage.PENDING)
        try:
            current = store.read(Stage.CURRENT)
        except StoreNotFound:
            current = None
        if pending is not None and is_stale(pending, current, record):
            found.append(StalePending(store, pending))
    return found
