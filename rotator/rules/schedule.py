"""When a credential is due, and when the scheduler tries again after a rollback: pure decisions over a record's
times, with no I/O.

Apart from rotator/rules/machine.py (which re-exports them), because `rotator status` needs these three and none of
the machine's steps and verdicts (issue 18: status <= 2x `--help`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rotator.rules.record import Phase

if TYPE_CHECKING:
    from rotator.rules.record import RotationRecord

__all__ = ["ROLLBACK_HOLD_OFF", "is_due", "next_due", "retry_after_rollback"]


def next_due(current_since: float | None, rotate_every: timedelta) -> float | None:
    """When the current key must be rotated; None when its age is unknown (seeded by hand)."""
    if current_since is None:
        return None
    return current_since + rotate_every.total_seconds()


def is_due(current_since: float | None, rotate_every: timedelta, now: float) -> bool:
    """Unknown age counts as due: we cannot prove a hand-seeded key is younger than the policy allows."""
    due = next_due(current_since, rotate_every)
    return due is None or now >= due


ROLLBACK_HOLD_OFF = timedelta(hours=6)
"""The longest a scheduler waits, after a scheduled rotation rolled back, before it tries again (a tenth of the
rotation period when that is shorter)."""


def retry_after_rollback(record: RotationRecord | None, rotate_every: timedelta) -> float | None:
    """When the scheduler may try again after the last rotation rolled back; None when it did not roll back.

    Its key is still as old as before, so it is still due; but what made it fail (a key that never verifies, a store
    that refuses) rarely mends itself in 15 minutes, and trying at every tick mints and revokes a key and pages each
    time. A person can always try at once with `rotator rotate`.
    """
    if record is None or record.phase is not Phase.ROLLED_BACK:
        return None
    return record.updated_at + min(rotate_every / 10, ROLLBACK_HOLD_OFF).total_seconds()
