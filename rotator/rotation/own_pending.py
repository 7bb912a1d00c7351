"""Is the PENDING found under this rotation's token the key this rotation minted? (I8)

`steps.create` finds a PENDING under its token when an earlier run of the same step stored its key and died before
the record said so; it then goes on with that key rather than mint a second one. But anyone allowed to write the
primary store can put a PENDING there first (in Secrets Manager: fill the empty AWSPENDING version a rotation starts
with): taken as ours, the current key would be "rotated" onto itself with no call to Bluum, every step reporting ok,
and every later revoke aimed at the key in use. So the key must prove it is ours: not the current key, and listed at
Bluum under this credential's and this token's key name, with the same public key, still active.
"""

from __future__ import annotations

from rotator.core.errors import StoreNotFound
from rotator.core.model import Stage, StoredKey
from rotator.rotation.context import RotationContext
from rotator.rules import machine
from rotator.rules.record import RotationRecord

__all__ = ["foreign_pending"]


def foreign_pending(ctx: RotationContext, record: RotationRecord, stored: StoredKey) -> str | None:
    """Why `stored` (the primary's PENDING under `record.token`) is not this rotation's own new key; None if it is."""
    where = f"the PENDING version under this rotation's token {record.token} in {ctx.primary.describe()}"
    fix = (
        "someone put it there. Nothing was minted and no key was revoked; the PENDING label was taken off that "
        "version. Put keys only into the current version (AWSCURRENT), never into a pending one, then start a new "
        "rotation (aws secretsmanager rotate-secret, or `rotator rotate`)"
    )
    try:
        current = ctx.primary.read(Stage.CURRENT)
    except StoreNotFound:
        current = None
    if current is not None and stored.same_key(current):
        return f"{where} holds the current key {current.label}, not a new one this rotation minted: {fix}"
    if not ctx.issuer.mints:
        return None
    name = machine.key_name(ctx.cred.name, record.token)
    listed = next((info for info in ctx.issuer.list_keys() or [] if info.id == stored.key_id), None)
    if listed is None or listed.name != name or listed.public_key != stored.api_key or not listed.active:
        why = (
            "Bluum lists no key with its id"
            if listed is None
            else f"Bluum lists {listed.id} as {listed.status}, named {listed.name[:130]!r}, not as this rotation's "
            "active key"
        )
        return f"{where} holds {stored.label}, which this rotation did not mint ({why}): {fix}"
    return None
