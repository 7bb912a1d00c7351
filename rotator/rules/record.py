"""The rotation record: what a rotation has done so far, kept in the primary store (never on the runner).

It holds no secret: key ids, labels, times, the token and the phase. Any machine that can read the
primary store can finish (resume) or undo (rollback) a rotation from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from rotator.core.errors import StoreCorrupt

RECORD_VERSION = 1
ENROLLMENT = "none (enrollment)"
"""The old key label of a credential's first rotation: there is no old key."""


_OMITTED_AT_DEFAULT = (
    "consumers_moved_at",
    "unmoved",
    "revoked_over",
    "healthy",
    "expires_at",
    "new_expires_at",
    "grace_from",
)
"""Fields of issue 19 left out of a record while unset, so a credential without consumers stores what it always did."""


GRACE_WAIT: Final = "stays active until the grace window ends at"
"""The words of the record's `waiting_on` while only the grace window holds the old key back
(revoke_gate.wait_for_grace): `rotator status` tells that wait from the others, to say when the window is over
instead of repeating a time already past."""


class Phase(StrEnum):
    """How far a rotation got. Each phase names the last step that finished."""

    STARTED = "started"  # token chosen; a key may already exist at Bluum (create is idempotent by token)
    PENDING_STORED = "pending_stored"  # new key exists at Bluum and is PENDING in the primary store
    STAGED = "staged"  # new key is PENDING in every target (applications still read the old key)
    ACCEPTED = "accepted"  # Bluum accepts the new key (propagation waited out); nothing deployed yet
    DEPLOYED = "deployed"  # new key is CURRENT in every target, old key is PREVIOUS (overlap)
    RELOADED = "reloaded"  # the targets' reload actions ran: applications hold the new key (only with reload actions)
    VERIFIED = "verified"  # Bluum accepts the new key; the old one waits for the grace window to end
    AWAITING_CONSUMERS = "awaiting_consumers"  # the grace window ended with consumers not on the new key: a person
    # chooses (resume waits on, rollback, or resume --revoke-anyway); nothing is revoked meanwhile
    REVOKING = "revoking"  # written just before the old key is revoked: no rollback to it from here on
    OLD_REVOKED = "old_revoked"  # old key revoked at Bluum and proven rejected; PREVIOUS not yet cleared
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.ROLLED_BACK)


OLD_KEY_ACTIVE: frozenset[Phase] = frozenset(
    {Phase.DEPLOYED, Phase.RELOADED, Phase.VERIFIED, Phase.AWAITING_CONSUMERS, Phase.REVOKING}
)
"""The overlap: the stores' CURRENT is the new key and the old key, PREVIOUS, is still active at Bluum (status shows
both; a leak report naming the old key revokes it at once)."""


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """One rotation of one credential. Replaced (never mutated) at each step."""

    credential: str
    token: str
    phase: Phase
    issuer: str
    started_at: float
    updated_at: float
    emergency: bool = False
    reason: str | None = None
    old_key_id: str | None = None
    old_key_label: str | None = None
    old_public_key: str | None = None
    """The old key's API key (Bluum's `public_key`, the Basic-auth user name: not a secret), as the stores showed it
    when the rotation started. The key revoked is the one Bluum lists with this public key, and a store that shows any
    other key as the old one at promote or revoke time stops the rotation (rotator/rotation/old_key.py). None in an
    enrollment (there is no old key) and in a record written by a version before 2026-12, which then revokes the key
    its stores' PREVIOUS holds, as that version did."""
    new_key_id: str | None = None
    new_key_label: str | None = None
    verified_at: float | None = None
    revoke_after: float | None = None
    """When the old key may be revoked: `grace_from` (else, in a record of an older version, confirm's time) plus the
    grace window; written by confirm, which always precedes the revoke (I2)."""
    grace_from: float | None = None
    """When applications were given the new key, from which the grace window counts: promote (AWS's finishSecret:
    AWSCURRENT moved, and a Lambda's consumers read it from then on), or, with reload actions, when they all ran.
    Confirm may run much later (the Lambda's tick): counting from it gave the old key a grace window plus a tick."""
    completed_at: float | None = None
    failure: str | None = None
    waiting_on: str | None = None
    current_since: float | None = None
    age_source: str | None = None
    """Where `current_since` came from when no rotation set it: "bluum" (the key list's creation time) or "first
    seen" (the first scheduled run that met a key seeded by hand)."""
    rollback_from: str | None = None
    """The phase a rollback started from: from promote on, applications may have loaded the new key, so the rollback
    runs the reload actions again before it revokes it (machine.reload_on_rollback)."""
    reload_failures: int = 0
    """How many times in a row this rotation's reload step failed (rotator/rules/reload_retry.py: the scheduler's
    backoff grows with it)."""
    reload_failed_at: float | None = None
    """When its reload step last failed: the scheduler's next try is counted from it."""
    reloads_done: tuple[str, ...] = ()
    """The reload actions (rotator/rotation/reload.py `action_key`: the store and a hash of the action, never the
    action itself) that succeeded for this rotation's new key: a retry does not run them again."""
    healthy: tuple[str, ...] = ()
    """The reload actions (as `reloads_done` names them) whose batch passed its health checks for the new key
    (rotator/rules/rollout.py): a resume starts at the first batch not in it, and a rollback reloads back only up to
    that batch. Written only by a staggered or health-checked rollout."""
    consumers_moved_at: float | None = None
    """When every consumer of the credential reported the new key (rotator/rules/consumers.py); None while any has
    not, and for a credential without consumers."""
    unmoved: tuple[str, ...] = ()
    """The consumers the last poll found not on the new key, each in words (consumers.describe): no key, no secret."""
    revoked_over: str | None = None
    """The reason an operator gave to revoke the old key although consumers were not on the new key."""
    expires_at: float | None = None
    """When the credential's current key expires at Bluum (as Bluum reported it), carried from rotation to rotation
    like `current_since`: the key is due `expiry_lead` before it (rotator/rules/windows.py). None: no expiry known."""
    new_expires_at: float | None = None
    """When this rotation's new key expires, as Bluum answered its create; it becomes `expires_at` on completion."""

    def advance(self, phase: Phase, now: float, **changes: Any) -> RotationRecord:  # noqa: ANN401 - field values
        """A copy at `phase`, with `changes` applied and `updated_at` set."""
        return dataclasses.replace(self, phase=phase, updated_at=now, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in _OMITTED_AT_DEFAULT:  # a rotation without consumers writes the record it always wrote
            if data[name] in (None, ()):
                del data[name]
        if "unmoved" in data:
            data["unmoved"] = list(data["unmoved"])
        data["phase"] = self.phase.value
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, store: str = "") -> RotationRecord:
        """Parse a stored record; StoreCorrupt names what is wrong (records hold no secrets, so it is safe)."""
        try:
            if data.get("version") != RECORD_VERSION:
                raise ValueError(f"unsupported record version {data.get('version')!r}")
            values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
            values["phase"] = Phase(values["phase"])
            values["reloads_done"] = tuple(values.get("reloads_done", ()))  # a JSON list; absent in older records
            values["healthy"] = tuple(values.get("healthy", ()))
            values["unmoved"] = tuple(values.get("unmoved", ()))  # JSON has lists
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorrupt(
                f"the rotation record is unreadable ({exc}). Inspect it; if no rotation is running, "
                "delete the record so the next run starts clean",
                store=store,
            ) from exc


def as_new_key(record: RotationRecord | None, current: str | None) -> RotationRecord | None:
    """While the old and the new key are both active and the stores show the new one as CURRENT (the grace window):
    the record as it will read once completed, the new key's `current_since` (verified; before that, when
    applications were given it) and expiry, so its age and due date are the new key's, not the old key's (status and
    plan say both). None at any other time."""
    if record is None or record.phase not in OLD_KEY_ACTIVE or current is None or current != record.new_key_label:
        return None
    since = record.verified_at or record.grace_from or record.updated_at
    return dataclasses.replace(record, current_since=since, expires_at=record.new_expires_at)
