"""Rolling a rotation back while the old key still exists: PREVIOUS is CURRENT again everywhere, then the new key
is revoked. The old key is never revoked here. And what is true afterwards, checked rather than assumed."""

from __future__ import annotations

from rotator.core.errors import LeaseLost, RollbackFailed, RotatorError, StoreNotFound
from rotator.core.faultpoints import reached
from rotator.core.model import Stage
from rotator.rotation.context import Journal, RotationContext
from rotator.rotation.old_key_guard import check_restorable
from rotator.rotation.reload import RELOADS_CLEARED, configured, reload_back
from rotator.rotation.revocation import revoke_rotation_keys
from rotator.rules import machine
from rotator.rules.record import Phase, RotationRecord


def roll_back(
    ctx: RotationContext, record: RotationRecord, journal: Journal, reason: str, cause: BaseException | None = None
) -> RotationRecord:
    """Restore the old key everywhere, then revoke the new one (ROLLING_BACK is written first, so a crash in the
    middle is finished by `resume`). When applications may have loaded the new key, the reload actions run in between,
    so none is left holding a revoked key."""
    cred = ctx.cred
    started = ctx.runtime.monotonic()
    check_restorable(ctx, record)  # only the old key identified at the start comes back (I8); else exit 4, no change
    try:
        if record.phase is not Phase.ROLLING_BACK:
            record = journal.save(
                record.advance(
                    Phase.ROLLING_BACK,
                    ctx.runtime.clock(),
                    failure=reason,
                    rollback_from=record.phase.value,
                    **RELOADS_CLEARED,  # from here on the reloads are for the old key
                ),
                "rolling_back.record",
            )
        journal.emit(record, "rollback", f"rolling back: {reason}")
        for store in ctx.stores:
            journal.hold()
            store.restore_previous(record.token)
            reached(f"restore.{store.name}")
        if machine.reload_on_rollback(record) and configured(ctx):
            record = reload_back(ctx, record, journal)
        revoke_rotation_keys(
            ctx, record, journal, why="the new key of a rolled-back rotation", point="revoke_new.bluum"
        )
        record = journal.save(
            record.advance(Phase.ROLLED_BACK, ctx.runtime.clock(), waiting_on=None), "rolled_back.record"
        )
    except LeaseLost:
        raise  # another runner holds the lease now: this one stops (exit 3), and the holder finishes the rollback
    except RotatorError as exc:
        raise RollbackFailed(
            f"{cred.name}: rollback failed ({exc}) after: {reason}. Run `rotator resume {cred.name}` to retry "
            "the rollback; the old key was not revoked",
            original=cause or exc,
        ) from exc
    journal.emit(record, "rollback", f"{record.old_key_label} is current again", ctx.runtime.monotonic() - started)
    return record


def after_rollback(ctx: RotationContext, record: RotationRecord) -> str:
    """What is true after a rollback, checked rather than assumed, and what a person still has to do."""
    try:
        old = ctx.primary.read(Stage.CURRENT)
    except StoreNotFound:  # an enrollment rolled back: there was no key before
        old = None
    parts = [f"The old key {record.old_key_label} is current again"]
    if old is not None and record.emergency:
        parts.append(" (not checked: it is the leaked key of an emergency, which is never called)")
    elif old is not None:
        result = ctx.check(old)
        outcome = result.outcome.value
        if outcome == "works":
            parts.append(" and Bluum accepts it")
        elif outcome == "rejected":
            parts.append(f", but Bluum rejects it too ({result.reason}, {result.code}): a person must act")
        else:
            parts.append(
                f"; whether Bluum accepts it could not be checked ({result.reason}): "
                f"`rotator verify {ctx.cred.name}` checks again"
            )
    if not ctx.issuer.mints:
        parts.append(
            f". The new pair {record.new_key_label} was made in Bluum's dashboard and is not in use: revoke it there"
        )
    elif record.new_key_id:
        parts.append(f"; the new key {record.new_key_label} was revoked")
    return "".join(parts) + "."
