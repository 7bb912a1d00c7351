"""The steps that take keys away: revoking the old key after the grace window (by the issuer, or by a person), and
revoking keys of this rotation that must not stay (a duplicate, a lost key, the new key of a rollback).

Every revoke goes through the same two checks first (I1): the key is identified in Bluum's list by the public key
a store holds (never by an id line or a record's id alone), and no configured store may still hold it, except the
rotating credential's PREVIOUS for the old key.
"""

from __future__ import annotations

from rotator.core.errors import BluumError, RotationIncomplete
from rotator.core.faultpoints import reached
from rotator.core.model import ApiKeyInfo, Stage, StoredKey
from rotator.rotation.context import Journal, RotationContext, StepFailed
from rotator.rotation.old_key_guard import check_previous
from rotator.rotation.probe import poll
from rotator.rules import identity, machine
from rotator.rules.identity import Holding
from rotator.rules.machine import Verdict
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord


def confirm_new_key(ctx: RotationContext, record: RotationRecord) -> None:
    """Before the old key goes: the new one must still be current everywhere and still work (I1, I2).

    A grace window is long; in it the new key can expire or be revoked, or someone can edit a store.
    """
    cred = ctx.cred
    new = ctx.new_key(record)
    mismatched = machine.readback_mismatches(new, ctx.current_everywhere())
    if mismatched:
        raise RotationIncomplete(
            f"{cred.name}: the new key {new.label} is no longer in {', '.join(mismatched)}, so the old key "
            f"{record.old_key_label} was NOT revoked. Put the new key back, or undo the rotation with "
            f"`rotator rollback {cred.name}`"
        )
    result = ctx.check(new)
    if result.outcome.value == "rejected":
        raise StepFailed(
            record,
            f"the new key {new.label} stopped working before the old one was revoked ({result.reason}, {result.code})",
        )
    if result.outcome.value != "works":
        raise RotationIncomplete(
            f"{cred.name}: could not confirm the new key still works ({result.reason}); the old key was NOT "
            f"revoked. Run `rotator resume {cred.name}` when Bluum answers"
        )


def start_revoking(
    ctx: RotationContext,
    record: RotationRecord,
    journal: Journal,
    *,
    waiting_on: str | None = None,
    confirmed: bool = False,
) -> RotationRecord:
    """Write ahead that the old key is about to go: from here on there is no rollback to it (I1).
    `confirmed`: the caller has just run `confirm_new_key`."""
    if record.phase is Phase.REVOKING:
        return record
    if not confirmed:
        confirm_new_key(ctx, record)
    return journal.save(record.advance(Phase.REVOKING, ctx.runtime.clock(), waiting_on=waiting_on), "revoking.record")


def revoke_old(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Revoke the old key at Bluum and prove it is rejected; only then is PREVIOUS forgotten.

    The key to revoke is the one Bluum lists with the public key recorded when the rotation started, whatever id the
    record or an id line says; every store's PREVIOUS must hold that key or nothing (else exit 4, nothing revoked:
    old_key_guard), and no store may hold it anywhere but in this credential's PREVIOUS (I1, I8). A record of an
    older version, which kept no public key, revokes the key whose public key PREVIOUS holds, as that version did.
    """
    cred = ctx.cred
    started = ctx.runtime.monotonic()
    if record.phase is not Phase.REVOKING:
        # First: when a store no longer shows the new key, "put it back" is the advice, not the guard's.
        confirm_new_key(ctx, record)
    check_previous(ctx, record, journal)
    old = ctx.primary.read(Stage.PREVIOUS)
    target = _listed_old_key(ctx, record, old)
    if target is None:
        # Not a key Bluum's API manages (seeded by hand, another investor's): only a person can revoke it.
        journal.emit(record, "revoke", f"Bluum's key list has no key for the old pair {record.old_key_label}")
        return journal.save(record.advance(record.phase, ctx.runtime.clock(), old_key_id=None), "old_unlisted.record")
    if target.id != record.old_key_id:
        journal.emit(record, "revoke", f"the old pair is {target.id} at Bluum (the record said {record.old_key_id})")
        record = record.advance(record.phase, ctx.runtime.clock(), old_key_id=target.id)
    holdings, unchecked = checked_holdings(ctx, record, journal, key=f"the old key {target.id}")
    refusal = identity.revoke_refusal(target, holdings, allowed=identity.old_key_of(cred.name))
    if refusal:
        way_back = (
            "" if record.phase is Phase.REVOKING else f", or undo the rotation with `rotator rollback {cred.name}`"
        )
        raise RotationIncomplete(
            f"{cred.name}: the old key was NOT revoked: {refusal}. Once no application uses it, remove it from there "
            f"and run `rotator resume {cred.name}`{way_back}"
        )
    record = start_revoking(ctx, record, journal, confirmed=True)
    done = _revoke_listed(ctx, journal, target)
    if old is not None:
        prove_rejected(ctx, record, journal, old)
        done += "; Bluum now rejects it"
    else:
        done += " (its pair is in no store any more, so Bluum's list is the proof)"
    if unchecked:
        done += f". {unchecked}"
    record = journal.save(record.advance(Phase.OLD_REVOKED, ctx.runtime.clock(), waiting_on=None), "old_revoked.record")
    journal.emit(record, "revoke", done, ctx.runtime.monotonic() - started)
    return record


def _listed_old_key(ctx: RotationContext, record: RotationRecord, old: StoredKey | None) -> ApiKeyInfo | None:
    """The old key in Bluum's list: by the public key recorded at the start; for a record of an older version, by
    the public key PREVIOUS (`old`) holds; with PREVIOUS removed by hand, by the id the record took from the list."""
    keys = ctx.recent_keys() or []  # preflight's, when it was read seconds ago in this command (no grace window)
    if record.old_public_key is not None:
        return next((info for info in keys if info.public_key == record.old_public_key), None)
    if old is not None:
        return identity.listed_key(keys, old)
    # PREVIOUS was removed by hand: the id the record took from Bluum's list (by public key) at the start.
    return next((info for info in keys if info.id == record.old_key_id), None)


def _revoke_listed(ctx: RotationContext, journal: Journal, target: ApiKeyInfo) -> str:
    """Revoke `target` at Bluum unless it is already inactive there, fenced by the lease; what was done, for the
    event."""
    if not target.active:
        return f"{target.id} was already {target.status} at Bluum"
    cred = ctx.cred
    journal.before_bluum_change()  # nobody fences a revoke at Bluum: the lease must outlive the whole call
    try:
        ctx.issuer.revoke(target.id)
    except BluumError as exc:
        raise RotationIncomplete(
            f"{cred.name}: the revoke of the old key {target.id} failed ({exc}); it may or may not have taken "
            f"effect. The new key is current everywhere and verified. Run `rotator resume {cred.name}` to retry"
        ) from exc
    reached("revoke.bluum")
    return f"revoked {target.id}"


def prove_rejected(ctx: RotationContext, record: RotationRecord, journal: Journal, old: StoredKey) -> None:
    judgement, _ = poll(ctx, journal, old, new_key=False)
    if judgement.verdict is Verdict.FAILED:
        raise RotationIncomplete(
            f"{ctx.cred.name}: {judgement.reason}. The old key {record.old_key_label} is still kept as "
            f"PREVIOUS; run `rotator resume {ctx.cred.name}` to check again"
        )


def operator_revoke(ctx: RotationContext, record: RotationRecord, journal: Journal) -> tuple[RotationRecord, bool]:
    """A person revokes the old pair in the dashboard (manual issuer, or a key Bluum's API does not list); Bluum
    is asked to reject it before it is forgotten. Returns the record and whether the revoke is done."""
    cred = ctx.cred
    journal.hold()
    check_previous(ctx, record, journal)  # the person is asked to revoke the recorded old key, never another (I8)
    old = ctx.primary.read(Stage.PREVIOUS)
    label = record.old_key_label or "(unknown)"
    public_key = record.old_public_key or (old.api_key if old is not None else None)
    if public_key is not None:  # the dashboard lists keys by their API key, not by our fingerprints
        label = f"{label} (its API key starts {public_key[:12]}…)"
    ask = ctx.issuer.person_revokes(label)
    waiting = f"{cred.name}: waiting on the operator: {ask}, then run `rotator resume {cred.name}`"
    record = start_revoking(ctx, record, journal, waiting_on=waiting)
    if old is not None:
        result = ctx.check(old)
        if result.outcome.value != "rejected":
            if ctx.confirm_revoked is None or not ctx.confirm_revoked(ask):
                journal.emit(record, "revoke", waiting)
                return record, False
            prove_rejected(ctx, record, journal, old)
    record = journal.save(record.advance(Phase.OLD_REVOKED, ctx.runtime.clock(), waiting_on=None), "old_revoked.record")
    if old is None and record.old_key_label == ENROLLMENT:
        journal.emit(record, "revoke", "a first key: there is no old key to revoke")
    elif old is None:
        journal.emit(record, "revoke", f"the old pair {record.old_key_label} is in no store any more: nothing to check")
    else:
        journal.emit(record, "revoke", f"Bluum now rejects the old key {record.old_key_label}")
    return record, True


def revoke_rotation_keys(
    ctx: RotationContext, record: RotationRecord, journal: Journal, *, why: str, point: str, keep: str | None = None
) -> None:
    """Revoke every key of this rotation that is not dead for good (active, or inactive and so reactivatable; by the
    token in its name, or its recorded new key id) except `keep`. Never the old key, whatever its name says, nor a key
    some store holds (I1, I3, I4)."""
    if not ctx.issuer.revokes:
        return
    holdings: list[Holding] | None = None
    unchecked: str | None = None
    for info in ctx.issuer.list_keys() or []:
        token = machine.token_of(info)
        # By the token in its name; by the recorded id only when no other rotation's token says otherwise.
        ours = token == record.token or (info.id == record.new_key_id and token is None)
        if not info.revocable or not ours or info.id in (keep, record.old_key_id):
            continue
        if holdings is None:
            holdings, unchecked = checked_holdings(ctx, record, journal, key=f"{info.id} ({why})")
        refusal = identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere)
        if refusal:
            raise RotationIncomplete(
                f"{ctx.cred.name}: {info.id} ({why}) was NOT revoked: {refusal}. Once no application uses it, "
                f"remove it from there and run `rotator resume {ctx.cred.name}`"
            )
        journal.before_bluum_change()
        ctx.issuer.revoke(info.id)
        reached(point)
        note = f". {unchecked}" if unchecked else ""
        journal.emit(
            record, "rollback" if point == "revoke_new.bluum" else "cleanup", f"revoked {info.id} ({why}){note}"
        )


def checked_holdings(
    ctx: RotationContext, record: RotationRecord, journal: Journal, *, key: str
) -> tuple[list[Holding], str | None]:
    """What every store holds, for the check before revoking `key`, and what could not be checked.

    A store of another credential that cannot be read (a malformed or unreadable file) might hold `key` (I1). A
    scheduled rotation then waits before the revoke: the reason goes into the record (`rotator status` shows it),
    the rotation stops with exit 4 and its `stopped` event reaches the notification sinks; the old key stays active
    beside the verified new one, and the next run (or `rotator resume`) goes on once the store reads. An emergency
    revokes anyway, since the key leaked, and the returned note names the stores it could not check.
    """
    survey = ctx.runtime.survey(fresh=ctx.cred.targets)
    unread = identity.unread_stores(survey)
    if unread is None:
        return survey.held, None
    if ctx.emergency or record.emergency:
        return survey.held, (
            f"Not checked for that key, because it could not be read: {unread}. This is an emergency, so the key "
            "was revoked anyway: an application there that used it now gets 401; fix that store"
        )
    name = ctx.cred.name
    message = (
        f"{name}: {key} was NOT revoked: {unread} could not be read, and it might hold that key. The rotation waits "
        "here, before the revoke, and every key in use keeps working. Fix that store (or take it out of "
        f"rotator.toml), then `rotator resume {name}` (or the next scheduled run) goes on"
    )
    journal.save(record.advance(record.phase, ctx.runtime.clock(), waiting_on=message), "revoke_wait.record")
    raise RotationIncomplete(message)
