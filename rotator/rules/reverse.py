"""A rollback is a rotation in reverse (issue 19): pure decisions, no I/O.

Going forward, the old key waits until every consumer reports the new key. Going back, the NEW key is the one about to
be revoked, so it waits until every consumer reports the OLD key again: the old key is CURRENT everywhere and the
reloads back ran, but a process that reloads slowly (or not at all) still calls with the new key, and revoking it then
is the outage the rollback was meant to avoid. rotator/rotation/reverse.py asks; these functions decide.

Only "old" counts as moved back. A consumer that reports the new key still uses it; an unreachable or malformed one
may; one that reports a third key is misconfigured, and a person should look at it before the rollback ends. Silence
is never taken for consent, as going forward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from rotator.rules import machine
from rotator.rules.consumers import Attestation, AttestOutcome
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord

__all__ = ["CLEARED", "choices", "not_back", "progress", "swapped", "waits_back"]

CLEARED: dict[str, object] = {"unmoved": (), "consumers_moved_at": None, "revoked_over": None}
"""The record's consumer fields as a rollback starts them: what they said was about the way forward."""

_SWAP: dict[AttestOutcome, AttestOutcome] = {"new": "old", "old": "new"}


def waits_back(record: RotationRecord) -> bool:
    """Whether a rollback waits for its consumers to report the old key before it revokes the new one: when they may
    have loaded the new key (the phases whose rollback reloads back, AWAITING_CONSUMERS among them), and when there is
    an old key to go back to (not an enrollment)."""
    return (
        record.phase is Phase.ROLLING_BACK and machine.reload_on_rollback(record) and record.old_key_label != ENROLLMENT
    )


def swapped(attestation: Attestation) -> Attestation:
    """An answer judged with the old key as the one to reach (the poller's "new") put back in the rotation's terms:
    "new" is the rotation's new key, "old" its old key."""
    outcome = _SWAP.get(attestation.outcome, attestation.outcome)
    return dataclasses.replace(attestation, outcome=outcome)


def not_back(attestations: Iterable[Attestation]) -> list[Attestation]:
    """Every consumer that does not report the old key, in the order given: it may still use the new key."""
    return [attestation for attestation in attestations if attestation.outcome != "old"]


def choices(credential: str) -> str:
    """The two ways on once a rollback's bound passed with consumers not back on the old key."""
    return (
        f"Choose: `rotator resume {credential}` asks them again and revokes the new key once every consumer reports "
        f"the old key, or `rotator resume {credential} --revoke-anyway --reason TEXT` revokes the new key now (a "
        "leaked new key), and the consumers above break"
    )


def progress(not_back_lines: Sequence[str], total: int) -> str:
    """For `status`, from the record alone (no poll): how many of the credential's `total` consumers reported the old
    key at the rollback's last poll, and who did not (the record's `unmoved`, which a rollback starts empty)."""
    if not not_back_lines:
        return f"the {total} consumer(s) have not been asked for the old key yet"
    back = max(0, total - len(not_back_lines))
    return f"{back} of {total} consumers report the old key; " + "; ".join(not_back_lines)
