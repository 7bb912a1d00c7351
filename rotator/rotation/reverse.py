"""A rollback's consumer gate (issue 19, "rollback is a rotation in reverse"): the new key is revoked only once every
consumer reports the old key again.

`roll_back` (rotator/rotation/rollback.py) puts the old key back everywhere and runs the reloads back; then it calls
`await_back`, which polls the credential's consumers (with back-off, the lease kept alive) for up to `consumer_wait`:
- every one reports the old key: the rollback goes on and revokes the new key;
- the bound passes first: the new key is NOT revoked. The rotation stays ROLLING_BACK (the old key is CURRENT, two
  keys are active, which I4 allows), the run ends with exit 4 naming each consumer not back and what it reported, an
  alert says the same, and `rotator resume` (or the next tick) asks again;
- an operator's `rotator resume NAME --revoke-anyway --reason TEXT` (`override`): asked once, then revoked anyway,
  and the report, the history and an alert name who breaks. That is the way for a leaked new key.

Why not revoke anyway once the bound passes: the project's rule is that no key is revoked while a store or a consumer
still uses it, and a rollback is a revoke like any other. Keeping the new key alive costs nothing but a second active
key; revoking it under a consumer is an outage. A person who must kill it now (it leaked) says so, with a reason.

The rollback of an emergency rotation waits too: the key it revokes is the new one, which did not leak (the leaked
old key is the one it brings back, by the operator's choice). A leaked NEW key is the override's case.

A credential without consumers, or a rollback from before any consumer could hold the new key, returns at once from
`await_back`: no poll, no record write, as before.
"""

from __future__ import annotations

from rotator.attest import fingerprint
from rotator.consumers.poll import poll_once, poll_until
from rotator.core.errors import ConfigError, RotationIncomplete
from rotator.core.events import EventKind
from rotator.core.model import Stage
from rotator.rotation.context import Journal, RotationContext
from rotator.rotation.reload import action_key, configured
from rotator.rotation.revoke_gate import consumers_of
from rotator.rules.consumers import Attestation, describe
from rotator.rules.record import Phase, RotationRecord
from rotator.rules.reverse import choices, not_back, swapped, waits_back

__all__ = ["CONSUMERS_NOT_BACK", "NotBack", "await_back", "override", "revoked_although"]

CONSUMERS_NOT_BACK = "consumers_not_back"
"""The alert's name (an ALERT event's `subject`): consumers not on the old key when a rollback was to revoke the new."""


class NotBack(RotationIncomplete):
    """Raised when a rollback's consumers are not all back on the old key: the new key was not revoked, and nothing
    failed (so `roll_back` does not report it as a failed rollback). Exit 4; `resume` asks again."""


def await_back(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Return once every consumer reports the old key (or an operator overrode the wait); NotBack otherwise."""
    consumers = consumers_of(ctx)
    if not consumers or not waits_back(record):
        return record
    runtime = ctx.runtime
    started = runtime.monotonic()
    old_fp, new_fp = _old_fingerprint(ctx, record), _new_fingerprint(ctx, record)
    name = ctx.cred.name
    if record.revoked_over is not None:  # the operator chose: asked once, so the report names who breaks
        found = poll_once(consumers, new_fingerprint=old_fp, old_fingerprint=new_fp, credential=name)
    else:

        def between(answers: list[Attestation]) -> None:
            journal.keepalive()
            journal.progress(f"{name}: rolling back: {_summary([swapped(a) for a in answers])}; asking again")

        found = poll_until(
            consumers,
            new_fingerprint=old_fp,  # the poller waits for "new": here the key to reach is the old one
            old_fingerprint=new_fp,
            credential=name,
            wait=ctx.cred.consumer_wait.total_seconds(),
            monotonic=runtime.monotonic,
            sleep=runtime.pause,
            between=between,
        )
    answers = [swapped(answer) for answer in found]
    lines = tuple(describe(answer) for answer in not_back(answers))
    now = runtime.clock()
    if not lines:
        if record.unmoved:  # the last run's list is stale now
            record = journal.save(record.advance(record.phase, now, unmoved=()), "back.record")
        journal.emit(record, "rollback", f"{name}: {_summary(answers)}", runtime.monotonic() - started)
        return record
    if record.revoked_over is not None:
        record = journal.save(record.advance(record.phase, now, unmoved=lines), "back_anyway.record")
        message = (
            f"{name}: the new key {record.new_key_label} is revoked anyway ({record.revoked_over}) {_although(record)}"
        )
        journal.emit(record, "rollback", message)
        journal.publish(EventKind.ALERT, record, "rollback", message, subject=CONSUMERS_NOT_BACK)
        return record
    raise NotBack(_hold(ctx, record, journal, answers, lines))


def _hold(
    ctx: RotationContext, record: RotationRecord, journal: Journal, answers: list[Attestation], lines: tuple[str, ...]
) -> str:
    """Write who is not back and why the new key waits; alert when that changed. The message for exit 4."""
    name, now = ctx.cred.name, ctx.runtime.clock()
    message = (
        f"{name}: rolling back ({record.failure}): the old key {record.old_key_label} is current again everywhere and "
        "the reloads back "
        f"ran, but the new key {record.new_key_label} was NOT revoked: {_summary(answers)} (they may still use it; "
        f"both keys stay active). " + choices(name)
    )
    changed = record.unmoved != lines
    done = tuple(action_key(store, action) for store, action in configured(ctx))  # the reloads back all succeeded
    waiting = record.advance(record.phase, now, unmoved=lines, waiting_on=message, reloads_done=done)
    record = journal.save(waiting, "not_back.record")
    journal.publish(EventKind.WAITING, record, "rollback", message)
    if changed:  # a tick that finds the same consumers in the same state does not page again
        journal.publish(EventKind.ALERT, record, "rollback", message, subject=CONSUMERS_NOT_BACK)
    return message


def _summary(answers: list[Attestation]) -> str:
    back = len(answers) - len(not_back(answers))
    text = f"{back} of {len(answers)} consumers report the old key"
    return text + "".join(f"; {describe(answer)}" for answer in not_back(answers))


def _old_fingerprint(ctx: RotationContext, record: RotationRecord) -> str:
    """The old key's fingerprint: from the record, or (a record from before 2026-12) the primary's CURRENT, which the
    rollback has just made the old key again."""
    if record.old_public_key:
        return fingerprint(record.old_public_key)
    current = ctx.primary.read(Stage.CURRENT)
    return fingerprint(current.api_key) if current is not None else ""


def _new_fingerprint(ctx: RotationContext, record: RotationRecord) -> str | None:
    """The new key's fingerprint, to tell "reports the new key" from "another key": the key in memory, else Bluum's
    list (a public key is not a secret). None when neither knows it: such a consumer is then "another key", still not
    back."""
    if ctx.new is not None:
        return fingerprint(ctx.new.api_key)
    if ctx.issuer.revokes and record.new_key_id:
        for info in ctx.issuer.list_keys() or []:
            if info.id == record.new_key_id:
                return fingerprint(info.public_key)
    return None


def revoked_although(record: RotationRecord) -> str:
    """For a rollback's report: who was not back on the old key when an operator revoked the new key anyway ("" when
    every consumer was, or when nobody overrode the wait)."""
    if record.phase not in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) or not record.unmoved or not record.revoked_over:
        return ""
    return f"It was revoked anyway ({record.revoked_over}) {_although(record)}"


def _although(record: RotationRecord) -> str:
    return f"although {len(record.unmoved)} consumer(s) did not report the old key: {'; '.join(record.unmoved)}"


def override(ctx: RotationContext, record: RotationRecord, journal: Journal, reason: str) -> RotationRecord:
    """`resume NAME --revoke-anyway --reason TEXT` in a rollback that waits on its consumers: the reason goes into the
    record before anything is revoked; the run then revokes the new key and names who breaks. Refused (exit 2,
    nothing changed) where no rollback waits on consumers."""
    name = ctx.cred.name
    if not reason.strip():
        raise ConfigError(
            f"{name}: --revoke-anyway needs --reason TEXT: the reason goes into the record. Nothing changed"
        )
    if not consumers_of(ctx) or not waits_back(record):
        raise ConfigError(
            f"{name}: --revoke-anyway in a rollback overrides only one waiting for its consumers to report the old "
            f"key; rotation {record.token[:8]} is rolling back from {record.rollback_from}, before any consumer could "
            f"hold the new key. Nothing changed; `rotator resume {name}` finishes the rollback"
        )
    record = journal.save(record.advance(record.phase, ctx.runtime.clock(), revoked_over=reason), "override.record")
    last = "; ".join(record.unmoved) or "not asked yet"
    journal.emit(
        record,
        "rollback",
        f"{name}: revoking the new key anyway ({reason}); not back on the old key at the last poll: {last}",
    )
    return record
