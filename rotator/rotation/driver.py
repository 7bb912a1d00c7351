"""The driver: runs a rotation's steps, to the end or one named step at a time, and owns what every step shares.

Saving the record (a compare-and-set under the lease), fault points, timings, events, and the failure policy (a
step that fails in a way a rollback repairs is rolled back; an error after a change says `resume`) live here once,
so the CLI, cron, a daemon thread and a Lambda all rotate the same way. `machine.next_step` decides what comes
next; the driver only runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rotator.core.durations import format_duration
from rotator.core.errors import (
    ConfigError,
    ExitCode,
    RollbackFailed,
    RotationFailed,
    RotationIncomplete,
    RotatorError,
)
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.core.faultpoints import reached
from rotator.rotation import reload, revocation, revoke_gate, rollout, steps
from rotator.rotation.context import RotationContext, StepFailed
from rotator.rotation.keeper import IN_FLIGHT_SECONDS, LEASE_TTL_SECONDS, TAKEOVER_SECONDS, RecordKeeper
from rotator.rotation.rollback import after_rollback, roll_back
from rotator.rules import machine
from rotator.rules.machine import Step
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord

__all__ = ["FORWARD", "IN_FLIGHT_SECONDS", "LEASE_TTL_SECONDS", "TAKEOVER_SECONDS", "Driver", "Outcome", "RecordKeeper"]
"""The record keeper and its defaults live in `rotator.rotation.keeper`; they are imported from here too."""

log = logging.getLogger("rotator.driver")

StepFunction = Callable[[RotationContext, RotationRecord, "Driver"], RotationRecord]

FORWARD: dict[Step, StepFunction] = {
    Step.CREATE: steps.create,
    Step.STORE_PENDING: steps.store_pending,
    Step.STAGE: steps.stage,
    Step.ACCEPT: steps.accept,
    Step.PROMOTE: steps.promote,
    Step.RELOAD: rollout.reload_step,
    Step.CONFIRM: steps.confirm,
    Step.ATTEST: revoke_gate.attest,
    Step.REVOKE_OLD: revoke_gate.revoke_old,
    Step.CLEAR: steps.clear,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did to one credential, and the exit code that says so."""

    credential: str
    exit_code: ExitCode
    message: str
    record: RotationRecord | None = None


class Driver:
    """Runs the steps of one credential's rotation under one lease; the steps see it as their `Journal`."""

    def __init__(self, ctx: RotationContext, keeper: RecordKeeper, bus: EventBus) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.bus = bus

    # ----------------------------------------------------------------- the journal

    def save(self, record: RotationRecord, point: str) -> RotationRecord:
        self.keeper.write(record, last=record.phase is Phase.COMPLETED)  # completed: nothing follows under this lease
        reached(point)
        return record

    def save_along(self, record: RotationRecord, point: str, change: Callable[[], object]) -> RotationRecord:
        self.keeper.write_along(record, change, last=record.phase is Phase.COMPLETED)
        reached(point)
        return record

    def emit(self, record: RotationRecord, step: str, message: str, seconds: float | None = None) -> None:
        self.publish(EventKind.STEP if seconds is not None else EventKind.NOTE, record, step, message, seconds)

    def keepalive(self) -> None:
        self.keeper.keepalive()

    def hold(self) -> None:
        self.keeper.hold()

    def check(self) -> None:
        self.keeper.check()

    def before_bluum_change(self) -> None:
        self.keeper.hold(self.keeper.call_seconds)

    def progress(self, message: str) -> None:
        self.publish(EventKind.PROGRESS, None, "wait", message)

    def publish(
        self,
        kind: EventKind,
        record: RotationRecord | None,
        step: str,
        message: str,
        seconds: float | None = None,
        *,
        subject: str | None = None,
    ) -> None:
        self.bus.publish(
            RotationEvent(
                kind=kind,
                credential=self.ctx.cred.name,
                step=step,
                message=message,
                token=record.token if record else None,
                seconds=seconds,
                old_key=record.old_key_label if record else None,
                new_key=record.new_key_label if record else None,
                reason=(record.failure or record.reason) if record else None,
                emergency=record.emergency if record else False,
                actor=self.ctx.runtime.owner,
                at=self.ctx.runtime.clock(),
                subject=subject,
            )
        )

    # ----------------------------------------------------------------- running

    def run(self, record: RotationRecord, *, only: Step | None = None) -> Outcome:
        """Run steps until the rotation is done or has to wait; with `only`, stop once that step has run."""
        cred, ctx = self.ctx.cred, self.ctx
        while True:
            step = self._next(record)
            if step is Step.DONE:
                return self._finished(record)
            if step is Step.WAIT_GRACE:
                return self._held(revoke_gate.wait_for_grace(ctx, record, self))
            if ctx.runtime.stopping.is_set():
                return self._stopped_on_request(record, step)
            if step is Step.ROLLBACK and (waiting := reload.rollback_not_now(ctx, record)) is not None:
                return Outcome(cred.name, ExitCode.INCOMPLETE, waiting, record)  # its reload's backoff
            if step is Step.ROLLBACK:
                record = self._roll_back(record, record.failure or "interrupted before the new key was stored")
                return self._finished(record)
            if step is Step.RELOAD and (held := reload.not_now(ctx, record)) is not None:
                return Outcome(cred.name, held[0], held[1], record)  # a failed reload's backoff; a tick's shared reload
            try:
                if step is Step.AWAIT_OPERATOR_REVOKE:
                    record, done = revocation.operator_revoke(ctx, record, self)
                    if not done:
                        self.publish(EventKind.WAITING, record, "revoke", record.waiting_on or "")
                        return Outcome(cred.name, ExitCode.INCOMPLETE, record.waiting_on or "", record)
                    if only is Step.REVOKE_OLD:
                        return self._advanced(record, step)
                    continue
                record = self._forward(step, record)
            except revoke_gate.StillWaiting as gate:  # the old key waits on consumers: this run ends here
                return self._held(gate.held)
            except StepFailed as failure:
                record = self._roll_back(failure.record, failure.reason, cause=failure.__cause__)
                message = f"{cred.name}: rotation failed and was rolled back: {failure.reason}. " + after_rollback(
                    ctx, record
                )
                self.publish(EventKind.ROLLED_BACK, record, "rollback", message)
                raise RotationFailed(message) from failure.__cause__
            except RotatorError as exc:
                if exc.exit_code not in (ExitCode.BAD_INPUT, ExitCode.UNAVAILABLE):
                    self.publish(EventKind.STOPPED, record, step.value, str(exc))
                    raise
                # Something was already changed (the record exists): "nothing changed" would be a lie.
                try:
                    latest = self.keeper.read(store=ctx.primary.name) or record
                except RotatorError:
                    latest = record
                message = (
                    f"{cred.name}: {exc}. The rotation stopped at phase {latest.phase.value}; fix the cause, then "
                    f"run `rotator resume {cred.name}` (or `rotator rollback {cred.name}` to undo it)"
                )
                self.publish(EventKind.STOPPED, latest, step.value, message)
                raise RotationIncomplete(message) from exc
            if only is not None and step is only:
                if self._next(record) is Step.DONE:
                    return self._finished(record)
                return self._advanced(record, step)

    def advance(self, record: RotationRecord, step: Step) -> Outcome:
        """Run the one named step of this rotation: done already is a no-op, not reached yet is an error."""
        cred = self.ctx.cred
        wanted = machine.NAMED_STEPS.index(step)
        upcoming = self._next(record)
        if upcoming is Step.DONE:  # answered without publishing: nothing happens again
            code = ExitCode.ROLLED_BACK if record.phase is Phase.ROLLED_BACK else ExitCode.OK
            message = f"{cred.name}: rotation {record.token[:8]} is over ({record.phase.value}); nothing to do"
            return Outcome(cred.name, code, message, record)
        if upcoming is Step.ROLLBACK and record.phase is Phase.ROLLING_BACK:
            return self.run(record)  # an interrupted rollback is finished, whatever step was asked for
        if upcoming in (Step.STORE_PENDING, Step.ROLLBACK):  # a person's pair stands in for the minted key
            position = 0
        elif upcoming in (Step.WAIT_GRACE, Step.AWAIT_OPERATOR_REVOKE, Step.ATTEST):
            position = machine.NAMED_STEPS.index(Step.REVOKE_OLD)
        else:
            position = machine.NAMED_STEPS.index(upcoming)
        if wanted < position:
            message = f"{cred.name}: {step.value} of rotation {record.token[:8]} is done already"
            if step is Step.RELOAD and not reload.configured(self.ctx):
                message = f"{cred.name}: no target of {cred.name} has reload actions: nothing to reload"
            return Outcome(cred.name, ExitCode.OK, message, record)
        if wanted > position or upcoming is Step.ROLLBACK:
            needed = (
                "create, with the new pair (--new-key-file)"
                if upcoming is Step.ROLLBACK
                else machine.NAMED_STEPS[position].value
            )
            raise ConfigError(
                f"{cred.name}: rotation {record.token[:8]} is at phase {record.phase.value}; its next step is "
                f"{needed}, not {step.value}. Nothing was changed"
            )
        return self.run(record, only=Step.STORE_PENDING if upcoming is Step.STORE_PENDING else step)

    def _next(self, record: RotationRecord) -> Step:
        return machine.next_step(
            record,
            now=self.ctx.runtime.clock(),
            mints=self.ctx.issuer.mints,
            revokes=self.ctx.issuer.revokes,
            has_new_pair=self.ctx.new_pair is not None,
            skip_grace=self.ctx.skip_grace,
            reloads=bool(reload.configured(self.ctx)),
            consumers=bool(revoke_gate.consumers_of(self.ctx)),
        )

    def _forward(self, step: Step, record: RotationRecord) -> RotationRecord:
        runtime = self.ctx.runtime
        started = runtime.monotonic()
        self.keeper.hold(confirm=True)  # a runner whose lease was taken over must not run one more step
        with runtime.metering(self.ctx.meter):
            record = FORWARD[step](self.ctx, record, self)
        self.ctx.step_seconds += runtime.monotonic() - started
        return record

    def _roll_back(self, record: RotationRecord, reason: str, cause: BaseException | None = None) -> RotationRecord:
        """Roll back; a rollback that fails itself is announced (a `stopped` event: the sinks hear of it) and raised."""
        try:
            return roll_back(self.ctx, record, self, reason, cause=cause)
        except RollbackFailed as failed:
            try:
                latest = self.keeper.read(store=self.ctx.primary.name) or record
            except RotatorError:
                latest = record
            self.publish(EventKind.STOPPED, latest, "rollback", str(failed))
            raise

    def _stopped_on_request(self, record: RotationRecord, step: Step) -> Outcome:
        """The process was asked to stop: the step in hand is done, the next one is left to `resume`."""
        name = self.ctx.cred.name
        message = (
            f"{name}: stopped on request before {step.value} (rotation {record.token[:8]} is at phase "
            f"{record.phase.value}); `rotator resume {name}` or the next tick finishes it"
        )
        self.publish(EventKind.STOPPED, record, step.value, message)
        return Outcome(name, ExitCode.INCOMPLETE, message, record)

    def _advanced(self, record: RotationRecord, step: Step) -> Outcome:
        upcoming = self._next(record)
        after = "nothing" if upcoming is Step.DONE else upcoming.value
        message = f"{self.ctx.cred.name}: {step.value} of rotation {record.token[:8]} done; next: {after}"
        return Outcome(self.ctx.cred.name, ExitCode.OK, message, record)

    def _held(self, held: revoke_gate.Held) -> Outcome:
        return Outcome(self.ctx.cred.name, held.exit_code, held.message, held.record)

    def _finished(self, record: RotationRecord) -> Outcome:
        cred = self.ctx.cred
        if record.phase is Phase.COMPLETED:
            total, waited = self.ctx.step_seconds, self.ctx.meter.waited
            done = "enrolled" if record.old_key_label == ENROLLMENT else f"{record.old_key_label} is revoked"
            done += f"; {note}" if (note := revoke_gate.revoked_although(record)) else ""
            message = (
                f"{cred.name}: rotation complete; {record.new_key_label} is current everywhere, "
                f"{done} ({format_duration(total, places=2)} of steps, "
                f"{format_duration(waited, places=2)} of it waiting)"
            )
            self.publish(EventKind.COMPLETED, record, "done", message, total)
            return Outcome(cred.name, ExitCode.OK, message, record)
        message = f"{cred.name}: rolled back ({record.failure}). " + after_rollback(self.ctx, record)
        self.publish(EventKind.ROLLED_BACK, record, "rollback", message)
        return Outcome(cred.name, ExitCode.ROLLED_BACK, message, record)
