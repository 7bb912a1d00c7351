"""The fault points a rotation passes (see rotator.core.faultpoints), in the order it passes them.

One list for the crash tests of every tier: the end-to-end crash test proves a real run passes exactly
these, so the property test, which crashes in-process at each of them, cannot fall behind the code.
Store-named points (`promote.app`, `clear.mirror`) assume the stores are called `app` and `mirror`.
"""

from __future__ import annotations

FORWARD_POINTS = (
    "started.record",
    "create.bluum",
    "pending.store",
    "pending.record",
    "stage.mirror",
    "staged.record",
    "accepted.record",
    "promote.app",
    "promote.mirror",
    "deployed.record",
    "verified.record",
    "revoking.record",
    "revoke.bluum",
    "old_revoked.record",
    "clear.mirror",
    "clear.app",
    "completed.record",
)
"""A rotation that succeeds, from start to completed."""

ROLLBACK_POINTS = (
    "rolling_back.record",
    "restore.app",
    "restore.mirror",
    "revoke_new.bluum",
    "rolled_back.record",
)
"""A rollback, from its start to rolled back."""
