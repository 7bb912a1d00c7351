"""`rotator status`: each credential's environment, current key, age, next due date, stage, and what waits on
whom. Read-only; a store that cannot be read becomes an error in its own row, never a crash of the table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rotator.core.errors import RotatorError
from rotator.core.model import Stage
from rotator.core.timestamps import format_timestamp
from rotator.rules import schedule, windows  # not machine: status needs none of its steps
from rotator.rules.pause import in_force
from rotator.rules.record import GRACE_WAIT, Phase, RotationRecord, as_new_key

if TYPE_CHECKING:
    from rotator.config.credential_model import CredentialConfig
    from rotator.rotation.runtime import Runtime


def status(runtime: Runtime) -> list[CredentialStatus]:
    """One row per credential; a store that cannot be read shows as an error in its row, not a crash.

    Reads stores and records only: no Bluum call, so no HTTP client is built (nor httpx imported), and none of the
    rotation machinery is loaded.
    """
    rows = []
    now = runtime.clock()
    for cred in runtime.config.credentials.values():
        try:
            record, pause = runtime.read_ledger(cred)
            current = runtime.store(cred.store).read(Stage.CURRENT)
        except RotatorError as exc:
            row = CredentialStatus(cred.name, cred.environment.value, None, None, None, "error", str(exc))
            rows.append(replace(row, exit_code=int(exc.exit_code)))
            continue
        overlap = as_new_key(record, current.label if current else None)
        since = record.current_since if record is not None else None
        old_age = None if overlap is None or since is None else now - since
        if overlap is not None:  # the stores hold the new key: its age and due date, not the old key's
            since, record = overlap.current_since, overlap
        due = windows.next_due(record, cred.rotate_every, cred.windows.expiry_lead)
        stage = "idle" if record is None or record.phase.terminal else record.phase.value
        if record is not None and record.phase is Phase.ROLLED_BACK:
            stage = "rolled back"
        waiting = _waiting(cred.name, record, now, due, schedule.retry_after_rollback(record, cred.rotate_every))
        held, next_start = _held(runtime, cred, record, now, due)
        waiting = held or waiting
        paused = in_force(pause, now)
        if paused is not None and (record is None or record.phase.terminal):
            waiting = f"{paused.describe()} (`rotator unpause {cred.name}`); then: {waiting}"
        rows.append(
            CredentialStatus(
                name=cred.name,
                environment=cred.environment.value,
                current_key=current.label if current else None,
                age_seconds=None if since is None else now - since,
                next_due=due,
                stage=stage,
                waiting=waiting,
                updated_at=None if record is None or record.phase.terminal else record.updated_at,
                grace_until=None if record is None or record.phase.terminal else record.revoke_after,
                last_success=record.completed_at if record is not None and record.phase is Phase.COMPLETED else None,
                consumers=_consumers(record, total := len(runtime.config.consumers_of(cred.name))),
                consumer_counts=_consumer_counts(record, total),
                next_start=next_start,
                paused=paused is not None,
                paused_by=paused.by if paused else None,
                paused_until=paused.until if paused else None,
                pause_reason=paused.reason if paused else None,
                previous_key=None if overlap is None or record is None else record.old_key_label,
                previous_age_seconds=old_age,
            )
        )
    return rows


def _held(
    runtime: Runtime, cred: CredentialConfig, record: RotationRecord | None, now: float, due: float | None
) -> tuple[str | None, float | None]:
    """Why a due key that the scheduler would start waits (a deny window, outside its allow windows, the cap), and
    when its windows next let a scheduled rotation start; (None, None) for a credential without windows."""
    if not cred.windows.gated:
        return None, None
    from rotator.rotation import start_gate

    decided = start_gate.verdict(runtime, cred)
    if decided is None:
        return None, None
    idle = record is None or record.phase is Phase.COMPLETED
    if decided.may_start or not idle or (due is not None and now < due):
        return None, decided.next_start
    return start_gate.held_words(cred, decided), decided.next_start


def _waits_on_consumers(record: RotationRecord | None, total: int) -> bool:
    """Whether a key waits on the consumers: the old key going forward (VERIFIED, AWAITING_CONSUMERS), or the new key
    in a rollback that waits for them to report the old key again (rotator/rules/reverse.py)."""
    if not total or record is None:
        return False
    if record.phase is Phase.ROLLING_BACK:
        from rotator.rules.reverse import waits_back  # here: only a rollback has to ask

        return waits_back(record)
    return record.phase in (Phase.VERIFIED, Phase.AWAITING_CONSUMERS)


def _consumers(record: RotationRecord | None, total: int) -> str | None:
    """The consumers line while a key waits on them (issue 19), from the record: status never polls. Going forward it
    counts who reports the new key; in a rollback, who reports the old key again."""
    if record is None or not _waits_on_consumers(record, total):
        return None
    if record.phase is Phase.ROLLING_BACK:
        from rotator.rules.reverse import progress

        return progress(record.unmoved, total)
    from rotator.rules import consumers  # here: only a rotation waiting on consumers has a line to show

    return consumers.progress(record.unmoved, record.consumers_moved_at, total)


def _consumer_counts(record: RotationRecord | None, total: int) -> tuple[int, int] | None:
    """(attested, unattested) at the last poll, for the metrics gauge; None when no key waits on consumers.
    "attested": reports the key the rotation is moving them to (the new key forward, the old key in a rollback)."""
    if record is None or not _waits_on_consumers(record, total):
        return None
    if record.consumers_moved_at is not None and record.phase is not Phase.ROLLING_BACK:
        return (total, 0)
    unattested = min(total, len(record.unmoved)) if record.unmoved else total
    return (total - unattested, unattested)


def _grace_over(record: RotationRecord, now: float) -> bool:
    return record.phase is Phase.VERIFIED and record.revoke_after is not None and now >= record.revoke_after


def _waiting(
    name: str, record: RotationRecord | None, now: float, due: float | None, retry_at: float | None = None
) -> str:
    """What waits on whom, in words. `retry_at`: when the scheduler tries again after a rollback."""
    if record is not None and not record.phase.terminal:
        if record.waiting_on and GRACE_WAIT in record.waiting_on and _grace_over(record, now):
            assert record.revoke_after is not None  # _grace_over
            return (
                f"the grace window ended at {format_timestamp(record.revoke_after)}: `rotator resume {name}` (or the "
                f"next scheduled run) revokes the old key {record.old_key_label} now"
            )
        if record.waiting_on:
            return record.waiting_on
        return f"unfinished at {record.phase.value}: run `rotator resume {name}`"
    if record is not None and record.phase is Phase.ROLLED_BACK:
        later = ""
        if retry_at is not None and now < retry_at:
            later = f" (the scheduler tries again at {format_timestamp(retry_at)})"
        return f"last rotation rolled back ({record.failure}); fix the cause, then `rotator rotate {name}`{later}"
    if due is None:
        return "age unknown (seeded by hand): the next scheduled run counts it (or rotate to start the clock)"
    if record is not None and record.age_source is not None and now < due:
        source = "Bluum's creation time" if record.age_source == "bluum" else "when the rotator first saw it"
        return f"nothing (seeded by hand; age counted from {source})"
    if now >= due:
        return f"due now: `rotator rotate {name}`"
    return "nothing"


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    name: str
    environment: str
    current_key: str | None
    age_seconds: float | None
    next_due: float | None
    stage: str
    waiting: str
    exit_code: int = 0
    """Non-zero when the row is an error: the code that error carries (2: fix the store, 5: unreachable)."""
    updated_at: float | None = None
    """When the unfinished rotation's record last changed (None when nothing is unfinished): a stuck one is old."""
    grace_until: float | None = None
    """When the unfinished rotation's grace window ends (the old key may be revoked from then on)."""
    last_success: float | None = None
    """When the last rotation completed, if the record's last rotation did."""
    consumers: str | None = None
    """While the old key waits on consumers: how many report the new key, and who does not (the last poll's); in a
    rollback that waits on them, how many report the old key again, and who does not."""
    consumer_counts: tuple[int, int] | None = None
    """The same as numbers, (attested, unattested), for the metrics gauge `bluum_rotator_consumers`: attested is on
    the key the rotation moves them to (the new key; in a rollback, the old key)."""
    next_start: float | None = None
    """When its windows next let a scheduled rotation start (rotator/rules/windows.py); None for a credential
    without windows (any time)."""
    paused: bool = False
    """Whether the schedulers hold back new rotations of it (`rotator pause`); an expired pause is not shown."""
    paused_by: str | None = None
    """Who paused it (the runner's owner: user@host pid N)."""
    paused_until: float | None = None
    """When the pause ends by itself; None while paused: until `rotator unpause`."""
    pause_reason: str | None = None
    """Why, as the operator gave it."""
    previous_key: str | None = None
    """During the overlap (the grace window, or a wait on consumers): the old key, still active at Bluum and PREVIOUS
    in the stores, revoked at `grace_until` (or when its wait ends); None at any other time."""
    previous_age_seconds: float | None = None
    """The old key's own age during the overlap (None: unknown, as for a key seeded by hand)."""
