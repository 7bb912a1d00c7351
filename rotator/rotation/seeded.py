"""A key seeded by hand (`seeded_key_age = "count"`): its age is counted, not guessed.

Such a key has no rotation behind it, so there is no record to date it. Its age is taken from Bluum's key list (its
creation time), else counted from now, the first time the rotator sees it, and kept in a record so the count holds.
Rotating every hand-seeded key at the first tick, and asking a person every 15 minutes for ever about a tenant key
nobody dated, is what this avoids.
"""

from __future__ import annotations

from collections.abc import Callable

from rotator.rotation.context import RotationContext, new_token
from rotator.rotation.driver import RecordKeeper
from rotator.rotation.preflight import read_current
from rotator.rules import identity
from rotator.rules.record import Phase, RotationRecord


def count_seeded_key(ctx: RotationContext, keeper: Callable[[], RecordKeeper]) -> RotationRecord:
    """The record that dates `ctx`'s seeded key, written under the lease `keeper` takes (Bluum is asked before it);
    or the record another runner wrote first."""
    current = read_current(ctx)
    keys = ctx.issuer.list_keys()
    listed = identity.listed_key(keys, current) if keys is not None else None
    now = ctx.runtime.clock()
    since, source = (float(listed.created), "bluum") if listed is not None and listed.created else (now, "first seen")
    with keeper() as held:
        record = held.read(store=ctx.primary.name)
        if record is not None:
            return record  # another runner counted it first
        record = RotationRecord(
            credential=ctx.cred.name,
            token=new_token(),
            phase=Phase.COMPLETED,
            issuer=ctx.issuer.kind,
            started_at=now,
            updated_at=now,
            completed_at=now,
            reason="a key seeded by hand: no rotation yet; its age is counted",
            old_key_label=None,
            new_key_id=listed.id if listed else None,
            new_key_label=listed.id if listed else current.label,
            current_since=since,
            age_source=source,
            expires_at=listed.expires_at if listed else None,
        )
        held.write(record)
    return record
