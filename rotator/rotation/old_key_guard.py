"""The check, at promote and at revoke, that every store still shows the old key the rotation started from (I8).

Before promote, what a store will move into PREVIOUS is what it shows as CURRENT (a store already promoted by this
rotation, after a crash, shows it as PREVIOUS); at revoke it is PREVIOUS. A store that shows another key stops the
rotation with exit 4 before anything more changes, naming the store and both keys by label (rotator/rules/old_key.py
decides; this module reads the stores and words the stop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rotator.core.errors import RotationIncomplete, StoreNotFound
from rotator.core.model import Stage, StoredKey
from rotator.rotation.context import Journal, RotationContext
from rotator.rules import old_key
from rotator.rules.record import Phase, RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore


def check_before_promote(
    ctx: RotationContext,
    record: RotationRecord,
    journal: Journal,
    new: StoredKey,
    stores: Sequence[SecretStore] | None = None,
) -> None:
    """Every target (of `stores`, default all) must show the recorded old key (or nothing) where promote takes the
    key it keeps as PREVIOUS. Promote calls it for all targets first, then for each one right before its own promote:
    a writer who waits until the first target is promoted must not get another key into a later one's PREVIOUS."""
    pinned = old_key.recorded(record)
    if pinned is None:
        return
    from backends.base import WriteChecked  # lazily, as every store import

    targets = ctx.stores if stores is None else stores
    for store in targets:  # a target swapped since the start is named as such, and never read through
        if isinstance(store, WriteChecked):
            store.check_unchanged(record.token)
    shown = {store.name: _to_become_previous(store, record, new) for store in targets}
    _stop_if_other(ctx, record, journal, pinned, shown, before_promote=True)


def check_promoted(
    ctx: RotationContext, record: RotationRecord, journal: Journal, store: str, previous: StoredKey | None
) -> None:
    """After one target's promote: what it now keeps as PREVIOUS must be the recorded old key (a writer may have
    slipped in between the check before promote and the store's own read)."""
    pinned = old_key.recorded(record)
    if pinned is None:
        return
    _stop_if_other(ctx, record, journal, pinned, {store: previous}, before_promote=False)


def check_previous(ctx: RotationContext, record: RotationRecord, journal: Journal) -> None:
    """Before a revoke (by the issuer or a person): every target's PREVIOUS holds the recorded old key or nothing."""
    pinned = old_key.recorded(record)
    if pinned is None:
        return
    shown = {store.name: _read(store, Stage.PREVIOUS) for store in ctx.stores}
    _stop_if_other(ctx, record, journal, pinned, shown, before_promote=False)


def check_restorable(ctx: RotationContext, record: RotationRecord) -> None:
    """Before a rollback restores anything: every target it would restore (CURRENT carries this rotation's token)
    must bring back the recorded old key as CURRENT, never another key someone got into its PREVIOUS."""
    pinned = old_key.recorded(record)
    if pinned is None:
        return
    shown = {}
    for store in ctx.stores:
        current = _read(store, Stage.CURRENT)
        if current is not None and current.token == record.token:
            shown[store.name] = _read(store, Stage.PREVIOUS)
    others = old_key.shown_instead(pinned, shown, pair=ctx.old)
    if not others:
        return
    name = ctx.cred.name
    raise RotationIncomplete(
        f"{name}: {'; '.join(others)} as the key a rollback would make current again, but the old key identified "
        f"when rotation {record.token[:8]} started is {pinned.named}: someone changed it during the rotation. Nothing "
        "was rolled back and nothing was revoked. Put the old key's pair into that store by hand (the rollback then "
        f"leaves it as it is) and run `rotator rollback {name}` again, or go forward with `rotator resume {name}`"
    )


def _to_become_previous(store: SecretStore, record: RotationRecord, new: StoredKey) -> StoredKey | None:
    """What `store` would keep as PREVIOUS once promoted (the rule of backends.stages.promote)."""
    current = _read(store, Stage.CURRENT)
    if current is not None and current.token != record.token and not current.same_key(new):
        return current
    return _read(store, Stage.PREVIOUS)


def _read(store: SecretStore, stage: Stage) -> StoredKey | None:
    try:
        return store.read(stage)
    except StoreNotFound:
        return None  # nothing shown yet (a first key): no old key there


def _stop_if_other(
    ctx: RotationContext,
    record: RotationRecord,
    journal: Journal,
    pinned: old_key.OldKey,
    shown: dict[str, StoredKey | None],
    *,
    before_promote: bool,
) -> None:
    others = old_key.shown_instead(pinned, shown, pair=ctx.old)
    if not others:
        return
    name = ctx.cred.name
    what = "as the key this rotation replaces" if before_promote else "as the old key (PREVIOUS)"
    if before_promote:
        done = f"The new key {record.new_key_label} was NOT deployed and nothing was revoked"
    else:
        done = "Nothing was revoked"
    leaked = (
        f" The old key {pinned.label} is still active at Bluum: this was an emergency, so if the store cannot be put "
        "right soon, revoke that key in Bluum's dashboard."
        if record.emergency and pinned.public_key is not None
        else ""
    )
    back = "" if record.phase is Phase.REVOKING else f", or undo the rotation with `rotator rollback {name}`"
    message = (
        f"{name}: {'; '.join(others)} {what}, but the old key identified when rotation {record.token[:8]} started "
        f"is {pinned.named}: someone changed it during the rotation. {done}; nothing more was changed.{leaked} "
        f"Find out who wrote it, put the old key back there, then run `rotator resume {name}`{back}"
    )
    # The reason goes into the record (no key changes), so `rotator status` and every later run say it too.
    journal.save(record.advance(record.phase, ctx.runtime.clock(), waiting_on=message), "old_key_changed.record")
    raise RotationIncomplete(message)
