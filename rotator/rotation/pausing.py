"""`rotator pause` and `rotator unpause`: write (or end) a credential's pause in its ledger.

Why under the lease: the pause is an entry of the ledger record (`rotator.rules.pause`), and the record is written
only by the lease holder with the version it read, so a pause never overwrites a rotation's step nor the reverse. A
rotation that holds the lease right now makes `pause` exit 3 (in progress, nothing changed): the pause would not stop
that rotation anyway, and the command says to run it again once it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode, RotationInProgress
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.rules.pause import Pause, check_reason, in_force, parse_until

if TYPE_CHECKING:
    from rotator.rotation.context import RotationContext
    from rotator.rotation.driver import Outcome, RecordKeeper


def pause(
    ctx: RotationContext,
    keeper: Callable[[], RecordKeeper],
    bus: EventBus,
    *,
    reason: str | None,
    until: str | None,
) -> Outcome:
    """Pause `ctx`'s credential: the schedulers start no rotation of it until `until` (or `rotator unpause`).
    Bad input (no reason, a past or unreadable time) is refused before the ledger is touched (exit 2)."""
    from rotator.rotation.driver import Outcome

    runtime, name = ctx.runtime, ctx.cred.name
    now = runtime.clock()
    text = check_reason(reason)
    end = parse_until(until, now) if until is not None else None
    held = Pause(by=runtime.owner, since=now, reason=text, until=end)
    try:
        with keeper() as lease:
            record = lease.read(store=ctx.primary.name)
            lease.write_pause(held)
    except RotationInProgress as exc:
        raise RotationInProgress(
            f"{exc}. The pause was not written (a pause would not stop that rotation anyway: it is finished whatever "
            f"the pause); run `rotator pause {name}` again when that step is done"
        ) from exc
    message = f"{name}: {held.describe()}. Scheduled rotations do not start; a person's `rotator rotate` still does"
    if record is not None and not record.phase.terminal:
        message += f"; the unfinished rotation {record.token[:8]} ({record.phase.value}) is still finished"
    _publish(bus, ctx, EventKind.PAUSED, "pause", message, reason=text, at=now)
    return Outcome(name, ExitCode.OK, message, record)


def unpause(ctx: RotationContext, keeper: Callable[[], RecordKeeper], bus: EventBus) -> Outcome:
    """End `ctx`'s credential's pause (one already ended by its `until` is cleared too); nothing to do is exit 0."""
    from rotator.rotation.driver import Outcome

    runtime, name = ctx.runtime, ctx.cred.name
    now = runtime.clock()
    with keeper() as lease:
        record = lease.read(store=ctx.primary.name)
        was = lease.pause
        if was is None:
            return Outcome(name, ExitCode.OK, f"{name}: not paused; nothing changed", record)
        lease.write_pause(None)
    ended = "" if in_force(was, now) is not None else " (it had already ended by itself)"
    message = f"{name}: unpaused{ended}; it was {was.describe()}. The scheduler rotates it when due"
    _publish(bus, ctx, EventKind.UNPAUSED, "unpause", message, reason=was.reason, at=now)
    return Outcome(name, ExitCode.OK, message, record)


def say_paused(ctx: RotationContext, bus: EventBus, paused: Pause | None, *, started_by: str | None = None) -> None:
    """Before a rotation of a paused credential that no pause holds back (a person's `rotate`, an emergency, a
    rotation Secrets Manager starts): one line saying it is paused and goes on."""
    if paused is None:
        return
    name = ctx.cred.name
    kind = started_by or ("an emergency rotation" if ctx.emergency else "a rotation asked for by a person")
    message = f"{name} is {paused.describe()}; {kind} goes on (a pause holds back the schedulers)"
    _publish(bus, ctx, EventKind.NOTE, "paused", message, reason=paused.reason, at=ctx.runtime.clock())


def _publish(
    bus: EventBus, ctx: RotationContext, kind: EventKind, step: str, message: str, *, reason: str, at: float
) -> None:
    bus.publish(
        RotationEvent(
            kind=kind,
            credential=ctx.cred.name,
            step=step,
            message=message,
            reason=reason,
            actor=ctx.runtime.owner,
            at=at,
        )
    )
