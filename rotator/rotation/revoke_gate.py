"""What the old key waits on before it is revoked: the grace window, and (issue 19) every consumer reporting the new
key.

The grace window: a run that finds it still open writes when it ends into the record and returns (exit 0); the next
tick or `rotator resume` after that time revokes (`--now`: at once).

Why a gate of its own between confirm and revoke: the stores holding the new key, and reloads that exited 0, prove
nothing about a process that read its key at start; only the process can say which key it sends. So for a credential
with consumers (rotator/config/consumers.py), the driver runs `attest` (Step.ATTEST) in VERIFIED until all of them
report the new key, polling with back-off for up to `consumer_wait` per run:
- all report it: `consumers_moved_at` is written and the rotation goes on as before (grace window, then revoke);
- not all, within the grace window: nothing revoked, the run ends as a grace wait does (exit 0) naming them;
- not all, grace window over: AWAITING_CONSUMERS, exit 4, an alert naming each one and what it reported, and the
  three choices (resume, rollback, resume --revoke-anyway --reason).
An emergency never waits (a leaked key does not), nor does an operator's override; both poll once just before the
revoke so the report, the history and the notification name everyone it breaks (`revoke_old`).
A credential without consumers never reaches this module: no extra request, no extra record write.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotator.attest import fingerprint
from rotator.config.consumers import Consumer
from rotator.consumers.poll import poll_once, poll_until
from rotator.core.errors import ConfigError, ExitCode
from rotator.core.events import EventKind
from rotator.core.timestamps import format_timestamp
from rotator.rotation import revocation
from rotator.rotation.context import Journal, RotationContext
from rotator.rules.consumers import Attestation, choices, describe, summary, unmoved
from rotator.rules.machine import attest_first
from rotator.rules.record import GRACE_WAIT, Phase, RotationRecord

__all__ = [
    "CONSUMERS_UNMOVED",
    "Held",
    "StillWaiting",
    "attest",
    "consumers_of",
    "override_consumers",
    "revoke_old",
    "revoked_although",
    "wait_for_grace",
]

CONSUMERS_UNMOVED = "consumers_unmoved"
"""The alert's name (an ALERT event's `subject`): consumers not on the new key when the old key's time came."""


@dataclass(frozen=True, slots=True)
class Held:
    """The old key waits (the grace window, or consumers): the run ends, and the driver returns this as its outcome."""

    record: RotationRecord
    message: str
    exit_code: ExitCode


class StillWaiting(Exception):
    """Raised by the attest step when not every consumer reports the new key: nothing failed and nothing is rolled
    back; the run ends with `held` (its record already written) and the next run asks again."""

    def __init__(self, held: Held) -> None:
        super().__init__(held.message)
        self.held = held


def wait_for_grace(ctx: RotationContext, record: RotationRecord, journal: Journal) -> Held:
    """The grace window is open and nothing waits on consumers: say when the old key goes, and return."""
    cred = ctx.cred
    assert record.revoke_after is not None
    when = format_timestamp(record.revoke_after)
    message = (
        f"{cred.name}: new key {record.new_key_label} is current and verified; the old key "
        f"{record.old_key_label} {GRACE_WAIT} {when}. "
        f"`rotator resume {cred.name}` after that time (or the next scheduled run) revokes it; "
        f"`rotator resume {cred.name} --now` revokes it at once"
    )
    record = journal.save(record.advance(record.phase, ctx.runtime.clock(), waiting_on=message), "wait.record")
    journal.publish(EventKind.WAITING, record, "grace", message)
    return Held(record, message, ExitCode.OK)


def consumers_of(ctx: RotationContext) -> tuple[Consumer, ...]:
    """The credential's consumers, across its targets; () for most credentials."""
    return ctx.runtime.config.consumers_of(ctx.cred.name)


def _fingerprints(ctx: RotationContext, record: RotationRecord) -> tuple[str, str | None]:
    old = fingerprint(record.old_public_key) if record.old_public_key else None
    return fingerprint(ctx.new_key(record).api_key), old


def attest(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Poll the consumers for up to `consumer_wait`; the record once all report the new key, else StillWaiting."""
    consumers = consumers_of(ctx)
    runtime = ctx.runtime
    started = runtime.monotonic()
    new_fp, old_fp = _fingerprints(ctx, record)

    def between(found: list[Attestation]) -> None:
        journal.keepalive()
        journal.progress(f"{ctx.cred.name}: {summary(found)}; asking again")

    found = poll_until(
        consumers,
        new_fingerprint=new_fp,
        old_fingerprint=old_fp,
        credential=ctx.cred.name,
        wait=ctx.cred.consumer_wait.total_seconds(),
        monotonic=runtime.monotonic,
        sleep=runtime.pause,
        between=between,
    )
    now = runtime.clock()
    if not unmoved(found):
        moved = record.advance(Phase.VERIFIED, now, consumers_moved_at=now, unmoved=(), waiting_on=None)
        record = journal.save(moved, "attested.record")
        message = f"all {len(found)} consumer(s) report the new key {record.new_key_label}"
        journal.emit(record, "attest", message, runtime.monotonic() - started)
        return record
    raise StillWaiting(_hold(ctx, record, journal, found))


def _hold(ctx: RotationContext, record: RotationRecord, journal: Journal, found: list[Attestation]) -> Held:
    """Write who is not on the new key, and say what happens next: wait in the grace window, or a person decides."""
    name, now = ctx.cred.name, ctx.runtime.clock()
    lines = tuple(describe(attestation) for attestation in unmoved(found))
    in_grace = not ctx.skip_grace and record.revoke_after is not None and now < record.revoke_after
    if in_grace and record.phase is Phase.VERIFIED:
        assert record.revoke_after is not None
        message = (
            f"{name}: {summary(found)}. The old key {record.old_key_label} stays active (the grace window ends at "
            f"{format_timestamp(record.revoke_after)}) and is revoked only once every consumer reports the new key; "
            f"the next scheduled run or `rotator resume {name}` asks them again"
        )
        record = journal.save(record.advance(Phase.VERIFIED, now, unmoved=lines, waiting_on=message), "attest.record")
        journal.publish(EventKind.WAITING, record, "attest", message)
        return Held(record, message, ExitCode.OK)
    message = f"{name}: the old key {record.old_key_label} was NOT revoked: {summary(found)}. " + choices(name)
    changed = record.phase is not Phase.AWAITING_CONSUMERS or record.unmoved != lines
    waiting = record.advance(Phase.AWAITING_CONSUMERS, now, unmoved=lines, waiting_on=message)
    record = journal.save(waiting, "awaiting_consumers.record")
    journal.publish(EventKind.WAITING, record, "attest", message)
    if changed:  # a tick that finds the same consumers in the same state does not page again
        journal.publish(EventKind.ALERT, record, "attest", message, subject=CONSUMERS_UNMOVED)
    return Held(record, message, ExitCode.INCOMPLETE)


def revoke_old(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Revoke the old key (rotator/rotation/revocation.py). In an emergency or an operator's override, the consumers
    are asked once first (each within its timeout), and the ones not on the new key are named in the revoke's report,
    the history and a notification: they are who breaks."""
    consumers = consumers_of(ctx)
    if not consumers or record.phase is Phase.REVOKING or not (record.emergency or record.revoked_over):
        return revocation.revoke_old(ctx, record, journal)
    new_fp, old_fp = _fingerprints(ctx, record)
    found = poll_once(consumers, new_fingerprint=new_fp, old_fingerprint=old_fp, credential=ctx.cred.name)
    lines = tuple(describe(attestation) for attestation in unmoved(found))
    if lines != record.unmoved:
        record = journal.save(record.advance(record.phase, ctx.runtime.clock(), unmoved=lines), "attest_once.record")
    record = revocation.revoke_old(ctx, record, journal)
    note = revoked_although(record)
    if note and record.phase is Phase.OLD_REVOKED:
        message = f"{ctx.cred.name}: {note}"
        journal.emit(record, "revoke", message)
        journal.publish(EventKind.ALERT, record, "revoke", message, subject=CONSUMERS_UNMOVED)
    return record


def revoked_although(record: RotationRecord) -> str:
    """For the revoke's report: who was not on the new key when an emergency or an override revoked the old key
    ("" when everyone was, or when nothing overrode the gate)."""
    if not record.unmoved or not (record.emergency or record.revoked_over):
        return ""
    why = f"emergency: {record.reason}" if record.emergency else f"revoked anyway: {record.revoked_over}"
    return (
        f"the old key {record.old_key_label} was revoked ({why}) although {len(record.unmoved)} consumer(s) were not "
        f"on the new key: {'; '.join(record.unmoved)}"
    )


def override_consumers(ctx: RotationContext, record: RotationRecord, journal: Journal, reason: str) -> RotationRecord:
    """`resume NAME --revoke-anyway --reason TEXT`: the operator's reason goes into the record (and the history) before
    anything is revoked; the run then revokes, and `revoke_old` names who breaks. Refused (exit 2, nothing changed)
    where there is no consumer gate to override."""
    name = ctx.cred.name
    if not reason.strip():
        raise ConfigError(
            f"{name}: --revoke-anyway needs --reason TEXT: the reason goes into the record. Nothing changed"
        )
    if not consumers_of(ctx) or not attest_first(record):
        raise ConfigError(
            f"{name}: --revoke-anyway overrides only a rotation waiting for its consumers (phase verified or "
            f"awaiting_consumers); rotation {record.token[:8]} is at {record.phase.value}"
            + (", and its consumers already report the new key" if record.consumers_moved_at else "")
            + f". Nothing changed; `rotator resume {name}` finishes it"
        )
    record = journal.save(record.advance(record.phase, ctx.runtime.clock(), revoked_over=reason), "override.record")
    last = "; ".join(record.unmoved) or "not asked yet"
    journal.emit(
        record, "attest", f"{name}: revoking the old key anyway ({reason}); not on the new key at the last poll: {last}"
    )
    return record
