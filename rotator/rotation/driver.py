"""The driver: runs a rotation's steps, to the end or one named step at a time, and owns what every step shares.

Saving the record (a compare-and-set under the lease), fault points, timings, events, and the failure policy (a
step that fails in a way a rollback repairs is rolled back; an error after a change says `resume`) live here once,
so the CLI, cron, a daemon thread and a Lambda all rotate the same way. `machine.next_step` decides what comes
next; the driver only runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotator.core.durations import format_duration
from rotator.core.errors import (
    ConfigError,
    ExitCode,
    LeaseLost,
    RollbackFailed,
    RotationFailed,
    RotationIncomplete,
    RotationInProgress,
    RotatorError,
    StoreError,
)
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.core.faultpoints import reached
from rotator.core.lease_clock import LeaseClock, guarding
from rotator.core.timestamps import format_timestamp
from rotator.rotation import reload, revocation, revoke_gate, rollout, steps
from rotator.rotation.context import RotationContext, StepFailed
from rotator.rotation.rollback import after_rollback, roll_back
from rotator.rules import machine
from rotator.rules.machine import Step
from rotator.rules.pause import PAUSE_KEY, Pause, pause_in, rotation_part
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord

log = logging.getLogger("rotator.driver")

if TYPE_CHECKING:
    from backends.ledger import Lease, Ledger

LEASE_TTL_SECONDS = 15 * 60
"""The default lease (`[ledger] lease_ttl`): it outlives one step with room to spare; waits renew it every third."""
IN_FLIGHT_SECONDS = 40.0
"""With the defaults, the longest request a runner may still have in flight
(`rotator.core.in_flight.longest_in_flight`): a whole Bluum call ([bluum] timeout 10s + retry_budget 30s), longer than
one Vault or AWS request (20 s)."""
TAKEOVER_SECONDS = LEASE_TTL_SECONDS + IN_FLIGHT_SECONDS
"""With the defaults, how long after its last renewal another runner may take a lease over."""

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


class RecordKeeper:
    """The lease on one credential's ledger, for one command: its record is read with a version and written only
    with that version under a lease that still holds. Waits renew the lease every third of its time.

    Two lengths: this runner treats its lease as `ttl` seconds from its last renewal, on its own clocks
    (`rotator.core.lease_clock`), and stops once either clock says that passed (it was frozen); the ledger is told
    `ttl + in_flight`, so another runner takes over only once the longest request this one may still have in flight
    (`in_flight`: a whole Bluum call with its retries, or one store request with its timeouts) has ended too. A create
    or revoke leaves only with a whole Bluum call (`call`) left on the lease: it is renewed first, or the runner stops
    (LeaseLost, exit 3, nothing more changed). The clocks are read before a renewal is sent, not after its answer:
    the ledger dates the lease from the request, and a slow answer must not lengthen this runner's view of it."""

    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        credential: str = "",
        ttl: float = LEASE_TTL_SECONDS,
        in_flight: float = IN_FLIGHT_SECONDS,
        call: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._ledger = ledger
        self._owner = owner
        self._ttl = ttl
        self._in_flight = in_flight
        self._call = in_flight if call is None else call
        self._clock = LeaseClock(ttl, monotonic=monotonic, wall=clock)
        self._lease: Lease | None = None
        self._version = 0
        self._pause: Pause | None = None
        self._read: tuple[str, RotationRecord | None] | None = None
        self._renewing = False
        self._guard: ExitStack | None = None

    @property
    def call_seconds(self) -> float:
        """The longest one Bluum call may take, retries included: what a create or revoke needs left."""
        return self._call

    def __enter__(self) -> RecordKeeper:
        sent = self._clock.now()
        try:
            self._lease = self._ledger.acquire(self._owner, self._ttl + self._in_flight)
        except RotationInProgress as exc:
            if not self._credential:
                raise
            raise RotationInProgress(f"{self._credential}: {exc}") from exc
        self._clock.renewed(sent, granted=self._granted(self._lease, sent))
        self._read = None
        self._guard = ExitStack()
        self._guard.enter_context(guarding(self.before_request))
        return self

    def __exit__(self, *exc: object) -> None:
        """Release the lease. A release that fails (the store went away) is logged, never raised: it would hide
        what the block ended with (a finished rotation, or the error that says where it stopped), and a lease
        nobody releases still ends at its expiry.

        An error that ends the block after this runner stalled past its lease (a refusal, exit 2 or 4, judged on what
        it read once thawed: another runner may have finished or rolled back the rotation since, so the advice would
        be wrong) is reported as what it is: LeaseLost, exit 3, nothing more changed."""
        ended_on = exc[1] if len(exc) > 1 and isinstance(exc[1], BaseException) else None
        stalled = None
        if isinstance(ended_on, RotatorError) and not isinstance(ended_on, RotationInProgress) and self._lease:
            stalled = self._clock.ran_out()
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.close()
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self._ledger.release(lease)
        except StoreError as error:
            log.warning(
                "could not release the rotation lease (fence %d); it ends by itself at %s: %s",
                lease.fence,
                format_timestamp(lease.expires_at),
                error,
                extra={"fields": {"credential": self._credential, "fence": lease.fence}},
            )
        if stalled:
            raise LeaseLost(
                f"{self._prefix()}{stalled} (fence {lease.fence}); it stopped on what it read since, which another "
                "runner may have changed, so this one changes nothing more. `rotator status` shows where the "
                "rotation is; `rotator resume` finishes it once no other runner holds the lease"
            ) from ended_on

    @property
    def lease(self) -> Lease:
        if self._lease is None:
            raise RuntimeError("the record keeper is used outside its `with` block")
        return self._lease

    def read(self, *, store: str) -> RotationRecord | None:
        """The record (and, for the next write, its version)."""
        versioned = self._ledger.read_record()
        self._version = versioned.version
        self._pause = pause_in(versioned.record)
        rotation = rotation_part(versioned.record)
        record = None if rotation is None else RotationRecord.from_dict(rotation, store=store)
        self._read = (store, record)
        return record

    def recall(self, *, store: str) -> RotationRecord | None:
        """The record as this lease last read it, when nothing was written since; read now otherwise.

        Under a lease the record stays as read until this keeper writes it: a write must name a lease that holds and
        the version read. Should this runner lose its lease, it sends nothing more (`before_request`) and its writes
        are refused, as they would be after a second read. So a command that read the record to decide does not read
        it again to start (issue 18: a Lambda step reads it once)."""
        if self._read is not None and self._read[0] == store:
            return self._read[1]
        return self.read(store=store)

    def write(self, record: RotationRecord) -> None:
        self.hold()  # renewed only when the lease clock says it is due; checked always
        self._read = None
        self._version = self._ledger.write_record(
            self._with_pause(record.to_dict()), lease=self.lease, version=self._version
        )

    @property
    def pause(self) -> Pause | None:
        """The credential's pause as this lease last read the ledger (`rotator.rules.pause`)."""
        return self._pause

    def _with_pause(self, data: dict[str, Any]) -> dict[str, Any]:
        """The record to write, carrying the pause it was read with: a rotation's write must not end a pause (the
        pause is written only by `rotator pause`/`unpause`, under this same lease discipline)."""
        if self._pause is not None:
            data[PAUSE_KEY] = self._pause.to_json()
        return data

    def write_pause(self, pause: Pause | None) -> None:
        """Set (or with None, end) the credential's pause, keeping the rotation record as it is: read under this
        lease, then written by compare-and-set on that version (`rotator pause`, `rotator unpause`)."""
        self.hold()
        versioned = self._ledger.read_record()
        data = dict(rotation_part(versioned.record) or {})
        data.pop(PAUSE_KEY, None)
        if pause is not None:
            data[PAUSE_KEY] = pause.to_json()
        self._read = None
        self._version = self._ledger.write_record(data, lease=self.lease, version=versioned.version)
        self._pause = pause

    def keepalive(self) -> None:
        """Renew the lease once a third of its time has passed; LeaseLost when someone else holds it now."""
        if self._clock.due():
            self.hold()
        else:
            self.check()

    def check(self, needed: float = 0.0) -> None:
        """LeaseLost when this runner stalled past its lease since its last renewal (no I/O: before every change);
        with `needed`, also when less than that is left."""
        stalled = self._clock.ran_out()
        if stalled:
            fence = self._lease.fence if self._lease is not None else 0
            raise LeaseLost(
                f"{self._prefix()}{stalled} (fence {fence}); another runner may have taken it over since, so this "
                "one changes nothing more and stops. `rotator status` shows where the rotation is; `rotator resume` "
                "finishes it once no other runner holds the lease"
            )
        left = self._clock.left()
        if left < needed:
            raise LeaseLost(
                f"{self._prefix()}the lease has {format_duration(left, places=2)} left, less than the "
                f"{format_duration(needed)} the next request may take, and could not be renewed first; this runner "
                "changes nothing more and stops. `rotator resume` finishes the rotation"
            )

    def hold(self, needed: float = 0.0, *, confirm: bool = False) -> None:
        """Renew the lease when needed, unless this runner stalled past it (then it stops: a renewal must not make a
        frozen runner's view of the world current again); LeaseLost when someone else holds it now (the caller then
        changes nothing). With `needed`: at least that much of the lease is left afterwards.

        Renewed only when the lease clock says so: a third of the lease has passed, or less than `needed` plus the
        renewal's own request (`in_flight`) is left. Otherwise the clock, timed from the last renewal's send, already
        proves the lease is held (another runner takes it over only after its expiry, or once this process is gone),
        and every store write is fenced by its own check-and-set (issue 18: a renewal is a request). `confirm`: ask
        the ledger anyway: at the start of each step, which may change what no check-and-set fences (a dotenv file,
        Bluum), and whose reads of the stage document are then served from what that renewal read."""
        self.check()
        if not confirm and not self._clock.due() and self._clock.left() >= needed + self._in_flight:
            return
        self._renewing = True
        sent = self._clock.now()
        try:
            self._lease = self._ledger.renew(self.lease, self._ttl + self._in_flight)
        finally:
            self._renewing = False
        self._clock.renewed(sent, granted=self._granted(self._lease, sent))
        self.check(needed)

    def before_request(self, seconds: float) -> None:
        """The guard of every request sent inside this block (`rotator.core.lease_clock`): a runner that stalled past
        its lease sends nothing; one whose lease has less than `seconds` left renews it first."""
        if self._renewing or self._lease is None:
            return  # the renewal's own request
        self.check()
        if self._clock.left() < seconds:
            self.hold(seconds)

    def _granted(self, lease: Lease | None, sent: tuple[float, float]) -> float | None:
        """When the ledger's lease runs from, when that is before the request was sent: a renewal may be answered
        with the lease as it already was (Vault's skips its write while two thirds are left). None when the ledger's
        clock is not this runner's wall clock (a memory store on a monotonic clock): then its lease says nothing
        about when, and the request's own time stands."""
        if lease is None:
            return None
        length = self._ttl + self._in_flight
        granted = lease.expires_at - length
        return granted if sent[1] - length < granted < sent[1] else None

    def _prefix(self) -> str:
        return f"{self._credential}: " if self._credential else ""


class Driver:
    """Runs the steps of one credential's rotation under one lease; the steps see it as their `Journal`."""

    def __init__(self, ctx: RotationContext, keeper: RecordKeeper, bus: EventBus) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.bus = bus

    # ----------------------------------------------------------------- the journal

    def save(self, record: RotationRecord, point: str) -> RotationRecord:
        self.keeper.write(record)
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
