"""A staggered, health-gated rollout of the new key to the applications: the reload actions of a credential run in
batches (`reload_batch`), and each batch's health checks (`health` on its actions) must pass within `health_timeout`
before the next batch reloads.

Why: the reload step used to tell every application at once. A new key that one of them cannot use (or a restart
that leaves it down) then stops all of them together. Here the first batch that fails its checks stops the rollout
while the later batches still run on the old key, which is still valid: the step raises StepFailed, and the driver's
rollback puts the old key back, reloads back only the batches that were reached (`for_rollback`), and revokes the
new key. A failed reload *action* is not a failed batch: it stops the rotation as before (resume retries it).

The record keeps the actions whose batch passed (`healthy`, written after each batch but the last, whose result goes
into the step's own record): a crash between batches resumes at the next batch, and no passed batch reloads again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rotator.attest import fingerprint
from rotator.core.durations import format_duration
from rotator.rotation.context import Journal, RotationContext, StepFailed
from rotator.rotation.health_check import Gate, wait_healthy
from rotator.rotation.reload import action_key, configured, gated, key_values, reload_consumers, run_all
from rotator.rules import rollout
from rotator.rules.record import RotationRecord

if TYPE_CHECKING:
    from rotator.config.reloads import ReloadAction


def reload_step(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """The reload step: batch after batch for a gated credential, else every action at once (rotation/reload.py).
    An emergency never staggers: the leaked key lives until every application reloaded, and rolling back on a failed
    check would put the leaked key back in service."""
    if not gated(ctx):
        return reload_consumers(ctx, record, journal)
    if record.emergency:
        journal.emit(record, "reload", "an emergency reloads every action at once, without health checks")
        return reload_consumers(ctx, record, journal)
    return reload_consumers(ctx, record, journal, in_batches)


def batches(ctx: RotationContext) -> list[tuple[str, ...]]:
    """The credential's reload actions (by `action_key`) in their batches, in the order declared."""
    return rollout.split([action_key(store, action) for store, action in configured(ctx)], ctx.cred.rollout.batch)


def in_batches(
    ctx: RotationContext, record: RotationRecord, journal: Journal, key_label: str
) -> tuple[str | None, RotationRecord]:
    """Reload batch after batch, each gated by its checks; a failed action's description (the caller records it and
    stops) or None, and the record as far as it got (its `reloads_done` and `healthy`). StepFailed when a batch's
    checks do not pass: the rotation is rolled back."""
    split = batches(ctx)
    by_key = {action_key(store, action): (store, action) for store, action in configured(ctx)}
    for number, batch in enumerate(split, start=1):
        label = f"batch {number} of {len(split)}"
        if rollout.passed(batch, record.healthy):
            journal.emit(record, "reload", f"{label}: passed its health checks for this key already; not run again")
            continue
        journal.progress(f"{ctx.cred.name}: reloading {label} ({_names(batch, by_key)})")
        failure, done = run_all(
            ctx, record, journal, key_label=key_label, purpose="rotation", done=record.reloads_done, only=batch
        )
        record = record.advance(record.phase, ctx.runtime.clock(), reloads_done=done)
        if failure is not None:
            return failure, record
        _check(ctx, record, journal, label, [by_key[key] for key in batch], key_label)
        record = record.advance(record.phase, ctx.runtime.clock(), healthy=(*record.healthy, *batch))
        if number < len(split):  # the last batch's result is saved with the step's own record
            record = journal.save(record, "batch_passed.record")
    return None, record


def _check(
    ctx: RotationContext,
    record: RotationRecord,
    journal: Journal,
    label: str,
    actions: Sequence[tuple[str, ReloadAction]],
    key_label: str,
) -> None:
    """Ask the batch's health checks; StepFailed naming the batch, the check and what it saw when they do not pass."""
    facts = {
        "ROTATOR_CREDENTIAL": ctx.cred.name,
        "ROTATOR_KEY_ID": key_label,
        "ROTATOR_ROTATION": record.token,
        "ROTATOR_RELOAD_FOR": "health",
    }
    consumers = {consumer.name: consumer for consumer in ctx.runtime.config.consumers_of(ctx.cred.name)}
    old = fingerprint(record.old_public_key) if record.old_public_key else None
    gates = [
        Gate(
            store,
            action,
            action.health,
            {**facts, "ROTATOR_STORE": store},
            consumers.get(action.health.consumer),
            (fingerprint(ctx.new_key(record).api_key), old),
        )
        for store, action in actions
        if action.health is not None
    ]
    if not gates:
        journal.emit(record, "reload", f"{label}: reloaded (no health check declared)")
        return
    started = ctx.runtime.monotonic()
    failed = wait_healthy(ctx, journal, gates, key_values(ctx))
    seconds = ctx.runtime.monotonic() - started
    if failed is None:
        passed = "; ".join(f"{gate.store}: {gate.check.describe()}" for gate in gates)
        journal.emit(record, "reload", f"{label}: healthy ({passed})", seconds)
        return
    gate, saw, tries = failed
    timeout = format_duration(ctx.cred.rollout.health_timeout)
    reason = (
        f"reload {label} failed its health check: {gate.store}: {gate.check.describe()} was not seen within "
        f"health_timeout {timeout} ({tries} tries; last: {saw}); the later batches were not reloaded"
    )
    journal.emit(record, "reload", reason, seconds)
    raise StepFailed(record, reason)


def _names(batch: tuple[str, ...], by_key: Mapping[str, tuple[str, ReloadAction]]) -> str:
    return ", ".join(f"{by_key[key][0]}: {by_key[key][1].describe()}" for key in batch)


def for_rollback(ctx: RotationContext, record: RotationRecord) -> tuple[str, ...]:
    """The actions a rollback starting from `record` need not reload back (they go into its `reloads_done`, which a
    rollback reads as "holds the old key already"): those of the batches the rollout never reached. None of them in
    an emergency (it reloads everything at once) or once the reload step finished (every batch was reached)."""
    if not gated(ctx) or record.emergency or record.phase.value not in ("accepted", "deployed"):
        return ()
    return rollout.untouched(batches(ctx), record.healthy)
