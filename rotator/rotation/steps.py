"""The forward steps up to the grace window, one function each, each idempotent for the rotation's token.

create (AWS createSecret) · stage (setSecret) · accept (testSecret) · promote (finishSecret) · confirm.
Each reads what it needs from the context and the record, changes one thing, and ends with a record write through
the journal (which also marks the fault point named after it). Running a step again after a crash, or twice on
purpose, finds its work done and only writes the record. A failure a rollback repairs raises `StepFailed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.errors import (
    BluumError,
    BluumRateLimited,
    BluumServerError,
    BluumUnavailable,
    BluumUnexpectedResponse,
    RotationIncomplete,
    StoreError,
)
from rotator.core.faultpoints import reached
from rotator.core.model import CreatedKey, Stage, StoredKey
from rotator.rotation.context import Journal, RotationContext, StepFailed, new_token
from rotator.rotation.old_key_guard import check_before_promote, check_promoted
from rotator.rotation.own_pending import foreign_pending
from rotator.rotation.preflight import precheck_new_pair
from rotator.rotation.probe import poll
from rotator.rotation.revocation import revoke_rotation_keys
from rotator.rules import machine
from rotator.rules.machine import Verdict
from rotator.rules.record import Phase, RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore


def _pending_key(ctx: RotationContext, record: RotationRecord, created: CreatedKey) -> StoredKey:
    """The minted pair as the primary stores it: tied to this rotation by its token (a crash finds it again)."""
    return StoredKey(
        api_key=created.pair.api_key,
        api_secret=created.pair.api_secret,
        key_id=created.info.id,
        environment=created.pair.environment,
        base_url=ctx.cred.base_url,
        token=record.token,
    )


def create(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """The issuer mints the key (idempotent by token) and it is stored as PENDING before anything else (I3)."""
    cred = ctx.cred
    started = ctx.runtime.monotonic()
    stored = ctx.primary.read(Stage.PENDING)
    if stored is not None and stored.token == record.token:
        return _already_stored(ctx, record, journal, stored)  # a crash after storing it: never mint a second
    idempotency_key = record.token
    if ctx.runtime.clock() - record.started_at > machine.IDEMPOTENCY_TRUST_SECONDS:
        # Bluum forgets an Idempotency-Key after 24 h: a key made under this token then cannot be fetched again
        # (its secret is lost), and creating anew would make a third active key (I4). Revoke it first, and create
        # under a fresh key: a replay of the old one might hand back the key just revoked.
        revoke_rotation_keys(
            ctx, record, journal, why="its secret was lost with a crashed run", point="revoke_token.bluum"
        )
        idempotency_key = new_token()
    created = _mint(ctx, record, journal, idempotency_key)
    reached("create.bluum")
    pending = _pending_key(ctx, record, created)
    record = record.advance(
        record.phase,
        ctx.runtime.clock(),
        new_key_id=created.info.id,
        new_key_label=created.info.id,
        new_expires_at=created.info.expires_at,
    )
    problem = machine.environment_violation(cred.environment, created.pair.environment, f"new key {created.info.id}")
    if problem:
        raise StepFailed(record, problem)
    journal.check()  # an answer that came back after a freeze: the lease may be another runner's by now

    def store() -> None:
        try:
            ctx.primary.put_pending(pending)
        except StoreError as exc:
            raise StepFailed(record, f"could not store the new key as PENDING: {exc}") from exc
        reached("pending.store")
        ctx.new = pending

    # One write where the primary keeps the record beside its stages (Vault): never the record before the key.
    record = journal.save_along(record.advance(Phase.PENDING_STORED, ctx.runtime.clock()), "pending.record", store)
    journal.emit(
        record,
        "generate",
        f"created {created.info.id} at Bluum, stored as PENDING in {ctx.primary.name}",
        ctx.runtime.monotonic() - started,
    )
    if ctx.fresh_token and created.attempts == 1 and idempotency_key == record.token:
        return record  # one create, sent once, under a token nobody used before: no duplicate can exist
    # Should Bluum not honour Idempotency-Key here (undocumented), a resent or resumed create made a second key.
    revoke_rotation_keys(
        ctx, record, journal, why="a duplicate of this rotation's key", point="revoke_token.bluum", keep=created.info.id
    )
    return record


def _already_stored(
    ctx: RotationContext, record: RotationRecord, journal: Journal, stored: StoredKey
) -> RotationRecord:
    """A crash after storing it: the key we need is already safe; never create a second one. Unless it is not
    ours: someone put it there before this step ran (own_pending)."""
    foreign = foreign_pending(ctx, record, stored)
    if foreign:
        raise StepFailed(record, foreign)
    ctx.new = stored
    record = record.advance(record.phase, ctx.runtime.clock(), new_key_id=stored.key_id, new_key_label=stored.label)
    return journal.save(record.advance(Phase.PENDING_STORED, ctx.runtime.clock()), "pending.record")


def _mint(ctx: RotationContext, record: RotationRecord, journal: Journal, idempotency_key: str) -> CreatedKey:
    """The create at Bluum, fenced: what each failure means for the rotation (roll back, or resume later)."""
    cred = ctx.cred
    # PENDING was read under the lease, and nobody checks a create at Bluum against it: make sure the lease still
    # holds, and will until the create's last possible retry has been answered (or stop, having minted nothing).
    journal.before_bluum_change()
    try:
        return ctx.issuer.mint(name=machine.key_name(cred.name, record.token), idempotency_key=idempotency_key)
    except BluumUnexpectedResponse as exc:
        # The key may exist (wrong environment, no secret): roll back, which revokes it by id or token.
        failed = record.advance(record.phase, ctx.runtime.clock(), new_key_id=exc.key_id, new_key_label=exc.key_id)
        raise StepFailed(failed, f"Bluum's answer to the create is unusable: {exc}") from exc
    except (BluumUnavailable, BluumServerError, BluumRateLimited) as exc:
        raise RotationIncomplete(
            f"{cred.name}: Bluum did not answer the create of the new key ({exc}); it may or may not exist. "
            f"Nothing was deployed. Run `rotator resume {cred.name}` when Bluum is reachable: it finishes "
            "with the same key, or cleans it up"
        ) from exc
    except BluumError as exc:
        # Refused (4xx). An earlier attempt of this call may still have created it: rollback revokes by token.
        raise StepFailed(
            record, f"Bluum refused to create the new key: {exc}; check the manager credential {cred.manager!r}"
        ) from exc


def store_pending(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """A person's pair (in hand for this command only), checked like at the start, is stored as PENDING in the
    primary."""
    assert ctx.new_pair is not None  # machine.next_step asks for this step only when it is
    if not ctx.new_pair_checked:
        current = ctx.primary.read(Stage.CURRENT)
        if current is None:
            raise StepFailed(record, f"{ctx.primary.name!r} holds no current key any more")
        precheck_new_pair(ctx, journal, ctx.new_pair, current)
        ctx.new_pair_checked = True
    pending = StoredKey(
        api_key=ctx.new_pair.api_key,
        api_secret=ctx.new_pair.api_secret,
        key_id=ctx.new_pair.key_id,
        environment=ctx.cred.environment,
        base_url=ctx.cred.base_url,
        token=record.token,
    )
    journal.hold()  # the pre-check may have taken a while (Bluum's answers): the lease must still be ours
    ctx.primary.put_pending(pending)
    reached("pending.store")
    ctx.new = pending
    record = journal.save(
        record.advance(
            Phase.PENDING_STORED, ctx.runtime.clock(), new_key_id=pending.key_id, new_key_label=pending.label
        ),
        "pending.record",
    )
    journal.emit(record, "generate", f"stored the operator's new pair {pending.label} as PENDING in {ctx.primary.name}")
    return record


def stage(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """PENDING in every other target (AWS's setSecret). Applications still read the old key."""
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    try:
        for store in ctx.stores[1:]:
            journal.hold()
            store.put_pending(new)
            reached(f"stage.{store.name}")
    except StoreError as exc:
        raise StepFailed(record, f"staging the new key failed: {exc}") from exc
    record = journal.save(record.advance(Phase.STAGED, ctx.runtime.clock()), "staged.record")
    if len(ctx.stores) > 1:
        names = ", ".join(store.name for store in ctx.stores[1:])
        journal.emit(record, "stage", f"{new.label} is PENDING in {names}", ctx.runtime.monotonic() - started)
    return record


def accept(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Wait until Bluum accepts the new key (AWS's testSecret), before any application is handed it.

    So no application runs on a key still propagating, and a key that never works is rolled back before any
    reader saw it.
    """
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    judgement, calls = poll(ctx, journal, new, new_key=True)
    if judgement.verdict is Verdict.FAILED:
        raise StepFailed(record, f"verification failed before deploying: {judgement.reason}")
    record = journal.save(record.advance(Phase.ACCEPTED, ctx.runtime.clock()), "accepted.record")
    journal.emit(
        record, "accept", f"Bluum accepts {new.label} (after {calls} call(s))", ctx.runtime.monotonic() - started
    )
    return record


def promote(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """CURRENT in every target, the old key PREVIOUS (AWS's finishSecret); then every target is read back (I1).

    Only the old key recorded at the start may become PREVIOUS: a target showing another key stops the rotation
    before it changes (or, when a writer slipped in during its own promote, right after it), exit 4 (I8)."""
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    try:
        check_before_promote(ctx, record, journal, new)
        for index, store in enumerate(ctx.stores):
            journal.hold()  # between targets too: a lease taken over mid-deploy stops here
            store.put_pending(new)  # a no-op where staged; repairs a target staged by an older version
            if index:  # what it shows now, not before the others' promote (the first: the check just made)
                check_before_promote(ctx, record, journal, new, [store])
            promotion = store.promote(record.token)
            reached(f"promote.{store.name}")
            if promotion.changed:
                check_promoted(ctx, record, journal, store.name, promotion.previous)
        observed = ctx.current_everywhere()
    except StoreError as exc:
        raise StepFailed(record, f"deploy failed: {exc}") from exc
    mismatched = machine.readback_mismatches(new, observed)
    if mismatched:
        raise StepFailed(record, f"read-back after deploy does not show the new key in {', '.join(mismatched)}")
    now = ctx.runtime.clock()
    record = journal.save(record.advance(Phase.DEPLOYED, now, waiting_on=None, grace_from=now), "deployed.record")
    journal.emit(
        record,
        "deploy",
        f"{new.label} is CURRENT in {', '.join(observed)}; old key kept as PREVIOUS (overlap)",
        ctx.runtime.monotonic() - started,
    )
    return record


def confirm(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Bluum still accepts the new key and every target still shows it (I2); the old key may go when the grace window,
    counted from when applications were given the new key (`grace_from`: promote, or the reload actions), ends."""
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    judgement, calls = poll(ctx, journal, new, new_key=True)
    if judgement.verdict is Verdict.FAILED:
        raise StepFailed(record, f"verification failed: {judgement.reason}")
    mismatched = machine.readback_mismatches(new, ctx.current_everywhere())
    if mismatched:
        raise StepFailed(record, f"verification failed: the new key is no longer in {', '.join(mismatched)}")
    now = ctx.runtime.clock()
    grace = 0.0 if ctx.emergency or record.emergency else ctx.cred.grace.total_seconds()
    start = now if record.grace_from is None else min(record.grace_from, now)  # None: a record of an older version
    record = journal.save(
        record.advance(Phase.VERIFIED, now, verified_at=now, revoke_after=start + grace), "verified.record"
    )
    journal.emit(
        record,
        "confirm",
        f"every store reads back {new.label} and Bluum accepts it (after {calls} call(s))",
        ctx.runtime.monotonic() - started,
    )
    return record


def clear(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Forget the (revoked) old key in every target; the rotation is complete.

    The primary is cleared last: where it keeps the record beside its stages (Vault), that one write also says the
    rotation is complete and gives the lease up (issue 18). Every other target has forgotten the key by then."""
    started = ctx.runtime.monotonic()

    def forget(store: SecretStore) -> None:
        journal.hold()  # between targets too, as in promote: a runner that lost its lease clears nothing more
        store.clear_previous(record.token)
        reached(f"clear.{store.name}")

    for store in ctx.stores[1:]:
        forget(store)
    now = ctx.runtime.clock()
    completed = record.advance(
        Phase.COMPLETED,
        now,
        completed_at=now,
        current_since=record.verified_at or now,
        expires_at=record.new_expires_at,
    )
    record = journal.save_along(completed, "completed.record", lambda: forget(ctx.primary))
    journal.emit(
        record,
        "cleanup",
        f"forgot the old key in {', '.join(s.name for s in ctx.stores)}",
        ctx.runtime.monotonic() - started,
    )
    return record
