"""What a step works with: the credential, its stores and ledger, its issuer, and the driver's journal.

Steps (rotator/rotation/steps.py and friends) are plain functions over (context, record); everything they share
with the driver (saving the record under the lease, fault points, events, the lease's keep-alive) goes through
the `Journal` the driver hands them, so a step never imports the driver and the Lambda can run one step alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rotator.core.model import ApiKeyInfo, KeyPair, Stage, StoredKey
from rotator.rotation.runtime import Meter
from rotator.rules.record import RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.bluum.client import CheckResult
    from rotator.config.loader import CredentialConfig
    from rotator.core.events import EventKind
    from rotator.issuers.base import Issuer
    from rotator.rotation.runtime import Runtime

KEY_LIST_REUSE_SECONDS = 60.0
"""How old Bluum's key list, as preflight read it in the same command, may be for the revoke of the old key to go by
it instead of listing again (`RotationContext.recent_keys`). A rotation without a grace window (0, or an emergency)
gets from preflight to the revoke in seconds, and the tenant call saved takes a rotation from 4 tenant calls to 3 (a
tenant key's fleet ceiling from 25/4 to 25/3 rotations/s). Any older (a long propagation wait), or in a later command
(after a grace window, which always ends the command), the list is read again. The list only finds the old key by its
public key: a key listed seconds ago is still listed (Bluum never deletes one); had it been revoked since, the revoke
is answered as done; and the check that no store holds it reads the stores anew, whatever the list's age (I1)."""

ConfirmRevoked = Callable[[str], bool]
"""Asks a person to revoke a key in Bluum's dashboard; returns False when nobody can answer."""


def new_token() -> str:
    """A fresh rotation token (or idempotency key): 32 hex characters. Callers such as the Lambda bring their own."""
    return uuid.uuid4().hex


class Journal(Protocol):
    """The driver, as the steps see it."""

    def save(self, record: RotationRecord, point: str) -> RotationRecord:
        """Write `record` under the lease (compare-and-set), then mark the fault point `point`."""
        ...

    def save_along(self, record: RotationRecord, point: str, change: Callable[[], object]) -> RotationRecord:
        """`change` (a stage move in the primary), then `save`: one write for both where the primary keeps the
        record in the document that move writes (the Vault store). The record is never written before the change."""
        ...

    def emit(self, record: RotationRecord, step: str, message: str, seconds: float | None = None) -> None:
        """Tell every subscriber what a step did."""
        ...

    def keepalive(self) -> None:
        """Renew the lease when it is due (call it in long waits); LeaseLost when it was taken over."""
        ...

    def hold(self) -> None:
        """Renew the lease now, before changing anything: LeaseLost (and nothing changed) when it was taken over, or
        when this runner stalled past it since its last renewal."""
        ...

    def check(self) -> None:
        """Before a change whose store checks the lease itself: LeaseLost when this runner stalled past its lease
        since its last renewal (no I/O)."""
        ...

    def before_bluum_change(self) -> None:
        """Right before a create or revoke at Bluum, which nobody fences: renew the lease so that it outlives the
        call's whole budget (timeout and retries), or stop (LeaseLost, nothing changed)."""
        ...

    def progress(self, message: str) -> None:
        """Say that a long wait goes on, and for what (a person at a terminal sees it; otherwise it is logged)."""
        ...

    def publish(
        self,
        kind: EventKind,
        record: RotationRecord | None,
        step: str,
        message: str,
        seconds: float | None = None,
        *,
        subject: str | None = None,
    ) -> None:
        """Publish an event of `kind` (WAITING, ALERT with its `subject`...) about this rotation."""
        ...


@dataclass
class RotationContext:
    """One command's view of one credential."""

    cred: CredentialConfig
    stores: list[SecretStore]
    issuer: Issuer
    runtime: Runtime
    emergency: bool = False
    skip_grace: bool = False
    new_pair: StoredKey | None = None
    """A person's new pair, in hand for this command only (the manual issuer)."""
    confirm_revoked: ConfirmRevoked | None = None
    old: StoredKey | None = None
    """The current pair preflight read in this command (the old key): the check at promote and revoke then compares
    secrets too. None after a crash (a new process): the recorded public key is all there is."""
    new: StoredKey | None = None
    """The new key once read or made, so later steps of the same command need not read it again."""
    fresh_token: bool = False
    """This command chose the rotation's token and wrote its first record: no earlier create under the token can
    have reached Bluum, so a create answered at its first try made exactly one key (no duplicate to look for)."""
    new_pair_checked: bool = False
    """`new_pair` already passed the pre-check (environment, values, Bluum accepts it) in this command."""
    unchecked: str | None = None
    """Stores of other credentials that preflight could not read, in words (the dry-run plan names them)."""
    listed: tuple[float, list[ApiKeyInfo]] | None = None
    """Bluum's key list as `list_keys` last read it in this command, and when (`runtime.monotonic`)."""
    meter: Meter = field(default_factory=Meter)
    step_seconds: float = 0.0
    """Time this command spent in forward steps, and how much of it was waiting (for the done line)."""
    scheduled: bool = False
    """The scheduler's run (`run-due`, the daemon's tick), not a person's command: a failed reload is retried only
    once its backoff passed (rotator/rules/reload_retry.py)."""

    @property
    def primary(self) -> SecretStore:
        return self.stores[0]

    def pair(self, stored: StoredKey) -> KeyPair:
        """`stored` as the pair HTTP Basic auth sends."""
        self.runtime.name_key(stored.api_key, self.cred.name)
        return KeyPair(
            api_key=stored.api_key,
            api_secret=stored.api_secret,
            environment=stored.environment or self.cred.environment,
            key_id=stored.key_id,
        )

    def check(self, stored: StoredKey) -> CheckResult:
        """One smoke test of `stored` at this credential's Bluum, on its `check_path`."""
        client = self.runtime.client(self.cred.base_url)
        return client.check(self.pair(stored), path=self.cred.check_path)

    def list_keys(self) -> list[ApiKeyInfo] | None:
        """The issuer's key list now (None: it has none), remembered for `recent_keys`."""
        keys = self.issuer.list_keys()
        self.listed = None if keys is None else (self.runtime.monotonic(), keys)
        return keys

    def recent_keys(self) -> list[ApiKeyInfo] | None:
        """The key list `list_keys` read in this command while it is less than KEY_LIST_REUSE_SECONDS old, else a new
        one. Only for finding a key that was listed then (the old key): a key made since is not in it."""
        if self.listed is not None and self.runtime.monotonic() - self.listed[0] < KEY_LIST_REUSE_SECONDS:
            return self.listed[1]
        return self.list_keys()

    def current_everywhere(self) -> dict[str, StoredKey | None]:
        """What every target shows as CURRENT, by store name."""
        return {store.name: store.read(Stage.CURRENT) for store in self.stores}

    def new_key(self, record: RotationRecord) -> StoredKey:
        """The rotation's new key, from memory or (after a crash) from the primary, where it is PENDING or CURRENT."""
        if self.new is not None:
            return self.new
        for stage in (Stage.PENDING, Stage.CURRENT):
            found = self.primary.read(stage)
            if found is not None and found.token == record.token:
                self.new = found
                return found
        raise StepFailed(record, f"the new key of rotation {record.token[:8]} is no longer in {self.primary.name!r}")


class StepFailed(Exception):
    """A forward step failed in a way a rollback repairs. The driver rolls back and raises RotationFailed."""

    def __init__(self, record: RotationRecord, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason
