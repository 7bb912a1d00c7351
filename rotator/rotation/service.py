"""The commands (`rotate`, `resume`, `rollback`, `step`, `verify`, `run_due`) over one runtime and one event bus.

Each command builds a `RotationContext` for one credential, takes the credential's lease through a `RecordKeeper`,
and hands the record to a `Driver`. What a command refuses before anything changes is in `preflight`. A command
whose whole job stands alone is a function of its own module, handed the context (and the lease to take): `enroll`,
`verify`, `seeded`, `sweep`, `status`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from rotator.core.errors import ConfigError, ExitCode, RotationInProgress
from rotator.core.events import EventBus, EventKind, log_event
from rotator.core.in_flight import bluum_call_seconds, longest_in_flight
from rotator.core.model import StoredKey
from rotator.core.timestamps import format_timestamp
from rotator.rotation import preflight, reverse, scheduling, start_gate
from rotator.rotation.context import ConfirmRevoked, RotationContext, new_token
from rotator.rotation.driver import Driver, Outcome, RecordKeeper
from rotator.rotation.pausing import say_paused
from rotator.rotation.repeat_gate import RepeatGate
from rotator.rotation.revoke_gate import override_consumers
from rotator.rotation.runtime import Runtime
from rotator.rules import machine
from rotator.rules import pause as pause_rule
from rotator.rules.machine import Step
from rotator.rules.record import Phase, RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.bluum.client import BluumClient
    from rotator.config.loader import Config
    from rotator.notify.history import HistoryLog
    from rotator.rotation.status import CredentialStatus
    from rotator.rotation.sweep import SweepFinding


class RotationService:
    """Runs the commands for the credentials of one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        history: HistoryLog | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        owner: str | None = None,
        stores: Mapping[str, SecretStore] | None = None,
        clients: Mapping[str, BluumClient] | None = None,
    ) -> None:
        """`stores`, `clients`: handles made by the caller (see Runtime). `bus`, `history`: what `rotator.ops.app`
        assembled for every way in (the history subscribed to the bus there); the service only checks, before a
        command that may change something, that the history can be written. Without them (tests that drive the
        service alone): events go to the log, and no history is kept."""
        self.runtime = Runtime(
            config, clock=clock, sleep=sleep, monotonic=monotonic, owner=owner, stores=stores, clients=clients
        )
        self.bus = bus if bus is not None else EventBus(log_event)
        self.history = history

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def waited(self) -> float:
        """Seconds spent sleeping so far: verification polls, retry back-off and the rate-limit throttle."""
        return self.runtime.waited

    def now(self) -> float:
        return self.runtime.clock()

    def close(self) -> None:
        """Close the runtime (its clients and stores); the sinks are closed by the app that made them."""
        self.runtime.close()

    def __enter__(self) -> RotationService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- building blocks

    def context(self, name: str, **options: Any) -> RotationContext:  # noqa: ANN401 - RotationContext fields
        cred = self.config.credential(name)
        return RotationContext(
            cred=cred,
            stores=self.runtime.stores_of(cred),
            issuer=self.runtime.issuer(cred),
            runtime=self.runtime,
            **options,
        )

    def _ledger_context(self, name: str) -> RotationContext:
        """The context of a command that touches only the ledger (pause, unpause): the primary store alone, so a
        target that cannot be opened in this shell (a Doppler token not set) does not refuse a pause."""
        cred = self.config.credential(name)
        stores = [self.runtime.store(cred.store)]
        return RotationContext(cred=cred, stores=stores, issuer=self.runtime.issuer(cred), runtime=self.runtime)

    def mints(self, name: str) -> bool:
        """Whether `name`'s keys are minted by its issuer (so `rotate --all` can rotate it unattended)."""
        return self.runtime.issuer(self.config.credential(name)).mints

    def revokes(self, name: str) -> bool:
        """Whether `name`'s old keys are revoked through the API (a leak report of an old key can kill it at once)."""
        return self.runtime.issuer(self.config.credential(name)).revokes

    def _keeper(self, ctx: RotationContext) -> RecordKeeper:
        """The record keeper of a command that may change something; the history it will append to is checked
        first, so a history folder this user cannot write stops the command before anything changes."""
        if self.history is not None:
            self.history.check(ctx.cred.name)
        return RecordKeeper(
            self.runtime.ledger(ctx.cred),
            self.runtime.owner,
            self.runtime.monotonic,
            credential=ctx.cred.name,
            ttl=self.config.ledger.lease_ttl,
            in_flight=longest_in_flight(self.config.bluum, self.config.stores.values()),
            call=bluum_call_seconds(self.config.bluum),
            clock=self.runtime.clock,
        )

    # ----------------------------------------------------------------- commands

    def rotate(
        self,
        name: str,
        *,
        emergency: bool = False,
        reason: str | None = None,
        dry_run: bool = False,
        new_pair: StoredKey | None = None,
        confirm_revoked: ConfirmRevoked | None = None,
        token: str | None = None,
        only_if_due: bool = False,
    ) -> Outcome:
        """Rotate one credential: generate, deploy, verify, then revoke when the grace window allows.

        `only_if_due`: the scheduler's rotation. Whether it is due is decided again under the lease, since another
        runner (a second daemon, a cron job, the Lambda) may have rotated it between our first look and the lease.
        """
        ctx = self.context(
            name, emergency=emergency, skip_grace=emergency, new_pair=new_pair, confirm_revoked=confirm_revoked
        )
        self._check_request(ctx, emergency=emergency, reason=reason, dry_run=dry_run, token=token)
        seen = self.runtime.read_record(ctx.cred)
        outcome = self._rotate(ctx, seen, reason=reason, token=token, only_if_due=only_if_due, dry_run=dry_run)
        return start_gate.noted(outcome, seen, self.runtime, ctx.cred, emergency=emergency, scheduled=only_if_due)

    def _rotate(
        self,
        ctx: RotationContext,
        seen: RotationRecord | None,
        *,
        reason: str | None = None,
        token: str | None = None,
        only_if_due: bool = False,
        dry_run: bool = False,
    ) -> Outcome:
        """Rotate `ctx`'s credential, whose record read `seen` before the lease (to decide): it is read once more,
        under the lease, and that reading is the one the rotation starts from (its version names the first write)."""
        waiting = self._in_grace(ctx, seen)
        if waiting is not None and not ctx.emergency:
            return Outcome(ctx.cred.name, ExitCode.OK, waiting, seen)
        if dry_run:
            current, current_id = preflight.preflight(ctx, seen)
            return Outcome(ctx.cred.name, ExitCode.OK, preflight.plan(ctx, current, current_id), seen)
        with self._keeper(ctx) as keeper:
            latest = keeper.read(store=ctx.primary.name)
            if only_if_due and latest is not None and latest.phase.terminal and not scheduling.is_due(ctx, latest):
                return scheduling.not_due(ctx, latest, " (another runner rotated it a moment ago)")
            held = pause_rule.scheduled_start(ctx.cred.name, keeper.pause, self.runtime.clock())
            if only_if_due and held is not None:  # paused between the first look and the lease
                return Outcome(ctx.cred.name, ExitCode.OK, held, latest)
            if held is not None:
                say_paused(ctx, self.bus, keeper.pause)
            driver = Driver(ctx, keeper, self.bus)
            record = self._start(ctx, keeper, driver, emergency=ctx.emergency, reason=reason, token=token)
            return driver.run(record)

    def _in_grace(self, ctx: RotationContext, record: RotationRecord | None) -> str | None:
        """What to say when the last rotation (`record`) is only waiting out its grace window: nothing to start,
        nothing wrong."""
        if record is None or record.phase is not Phase.VERIFIED or record.revoke_after is None:
            return None
        if self.runtime.clock() >= record.revoke_after:
            return None
        when = format_timestamp(record.revoke_after)
        name = ctx.cred.name
        return (
            f"{name}: rotated already ({record.new_key_label} is current); the old key {record.old_key_label} waits "
            f"out its grace window until {when}. Nothing to start: `rotator resume {name}` after that time revokes "
            f"it (`--now` at once)"
        )

    def _check_request(
        self, ctx: RotationContext, *, emergency: bool, reason: str | None, dry_run: bool, token: str | None
    ) -> None:
        cred = ctx.cred
        if emergency and not (reason and reason.strip()):
            raise ConfigError(
                "--emergency needs --reason TEXT (not blank): the reason goes into the rotation record. Nothing changed"
            )
        if not ctx.issuer.mints and ctx.new_pair is None and not dry_run:
            raise ConfigError(
                f"{cred.name} is minted in Bluum's dashboard (issuer {ctx.issuer.kind}): create the new pair there, "
                f"then run `rotator rotate {cred.name} --new-key-file FILE` (JSON with api_key, api_secret, key_id)"
            )
        if ctx.issuer.mints and ctx.new_pair is not None:
            raise ConfigError(f"{cred.name} is minted through Bluum's API (issuer bluum): --new-key-file is not used")
        problem = machine.token_problem(token) if token is not None else None
        if problem:
            raise ConfigError(f"{cred.name}: --token: {problem}. Nothing was changed")

    def _start(
        self,
        ctx: RotationContext,
        keeper: RecordKeeper,
        driver: Driver,
        *,
        emergency: bool,
        reason: str | None,
        token: str | None,
    ) -> RotationRecord:
        """Preflight under the lease, then the STARTED record, from the record as this lease read it (`recall`)."""
        cred = ctx.cred
        previous_record = keeper.recall(store=ctx.primary.name)
        current, old_id = preflight.preflight(ctx, previous_record)
        ctx.old = current
        if ctx.new_pair is not None:
            preflight.precheck_new_pair(ctx, driver, ctx.new_pair, current)
            ctx.new_pair_checked = True
        now = self.runtime.clock()
        record = RotationRecord(
            credential=cred.name,
            token=token or new_token(),
            phase=Phase.STARTED,
            issuer=ctx.issuer.kind,
            started_at=now,
            updated_at=now,
            emergency=emergency,
            reason=reason,
            old_key_id=old_id,
            old_key_label=old_id or current.label,
            old_public_key=current.api_key,  # the key revoked at the end, whatever a store shows by then (I8)
            current_since=previous_record.current_since if previous_record else None,
            expires_at=previous_record.expires_at if previous_record else None,
        )
        record = driver.save(record, "started.record")
        ctx.fresh_token = token is None or previous_record is None or previous_record.token != token
        kind = "emergency rotation" if emergency else "rotation"
        driver.publish(
            EventKind.STARTED,
            record,
            "start",
            f"{kind} {record.token[:8]} of {cred.name} started; current key {record.old_key_label}",
        )
        return record

    def enroll(self, name: str, *, new_pair: StoredKey | None = None) -> Outcome:
        """Give a credential its first key: a rotation from nothing (no old key to keep or revoke); see `enroll`."""
        from rotator.rotation.enroll import enroll

        ctx = self.context(name, new_pair=new_pair, skip_grace=True)
        return enroll(ctx, partial(self._keeper, ctx), self.bus)

    def deploy(self, name: str) -> Outcome:
        """Copy the current key into targets that hold none yet (a store added to `also_deploy_to`); see `deploy`."""
        from rotator.rotation.deploy import deploy

        ctx = self.context(name)
        return deploy(ctx, partial(self._keeper, ctx), self.bus)

    def resume(
        self,
        name: str,
        *,
        skip_grace: bool = False,
        confirm_revoked: ConfirmRevoked | None = None,
        revoke_anyway: str | None = None,
        tick: bool = False,
    ) -> Outcome:
        """Finish (or, when it cannot go forward, roll back) the rotation the record says is unfinished.

        `revoke_anyway`: an operator's reason to revoke the old key now although consumers are not on the new key
        (`--revoke-anyway --reason`); the revoke's report and notification name who breaks. `tick`: a scheduler's
        resume (the Lambda's tick), which publishes nothing when it only meets the same wait (rotation/repeat_gate)."""
        ctx = self.context(name, skip_grace=skip_grace or bool(revoke_anyway), confirm_revoked=confirm_revoked)
        return self._resume(ctx, revoke_anyway=revoke_anyway, tick=tick)

    def _resume(self, ctx: RotationContext, *, revoke_anyway: str | None = None, tick: bool = False) -> Outcome:
        """`resume` of the credential of `ctx` (built by the caller, who may have read the record to decide)."""
        name = ctx.cred.name
        with self._keeper(ctx) as keeper:
            record = keeper.read(store=ctx.primary.name)
            if record is None or record.phase.terminal:
                if revoke_anyway:
                    raise ConfigError(f"{name}: --revoke-anyway: no rotation is waiting for consumers. Nothing changed")
                return Outcome(name, ExitCode.OK, f"{name}: nothing to resume", record)
            ctx.skip_grace = ctx.skip_grace or record.emergency
            ctx.emergency = record.emergency
            driver = Driver(ctx, keeper, RepeatGate(self.bus, record.waiting_on) if tick else self.bus)
            if revoke_anyway:
                overrides = reverse.override if record.phase is Phase.ROLLING_BACK else override_consumers
                record = overrides(ctx, record, driver, revoke_anyway)
            reloads = self.runtime.reload_tick
            if reloads is None or not reloads.continues(name, record.token):  # not the tick's own second pass
                message = f"resuming rotation {record.token[:8]} of {name} from {record.phase.value}"
                driver.publish(EventKind.RESUMED, record, "resume", message)
            return driver.run(record)

    def step(self, name: str, step: str, *, token: str, new_pair: StoredKey | None = None) -> Outcome:
        """Advance the rotation `token` of `name` by the one named step (AWS's four names work too).

        `create` starts the rotation under `token` when none is unfinished. A step already done is a no-op; a step
        not reached yet is refused. This is how a Lambda (or any orchestrator) drives a rotation one call at a time.
        """
        wanted = machine.STEP_NAMES.get(step)
        if wanted is None:
            raise ConfigError(f"unknown step {step!r}; use one of: {', '.join(machine.STEP_NAMES)}")
        ctx = self.context(name, new_pair=new_pair)
        self._check_request(ctx, emergency=False, reason=None, dry_run=wanted is not Step.CREATE, token=token)
        with self._keeper(ctx) as keeper:
            driver = Driver(ctx, keeper, self.bus)
            record = keeper.read(store=ctx.primary.name)
            if record is None or record.token != token:
                if wanted is not Step.CREATE:
                    raise ConfigError(
                        f"{name}: there is no rotation {token[:8]} (the record names "
                        f"{'none' if record is None else record.token[:8]}); start it with step create. "
                        "Nothing was changed"
                    )
                if record is not None and not record.phase.terminal:
                    raise RotationInProgress(
                        f"{name}: rotation {record.token[:8]} is unfinished (phase {record.phase.value}); finish it "
                        f"with `rotator resume {name}` before rotation {token[:8]} can start. Nothing was changed"
                    )
                orchestrated = "a rotation started by an orchestrator (`step create`: Secrets Manager's createSecret)"
                say_paused(
                    ctx, self.bus, pause_rule.in_force(keeper.pause, self.runtime.clock()), started_by=orchestrated
                )
                record = self._start(ctx, keeper, driver, emergency=False, reason=None, token=token)
            ctx.emergency = ctx.skip_grace = record.emergency
            return driver.advance(record, wanted)

    def rollback(self, name: str) -> Outcome:
        """Undo the last rotation while the old key still exists (until it is revoked): rotation/rollback_command.py."""
        from rotator.rotation.rollback_command import rollback

        ctx = self.context(name)
        return rollback(ctx, partial(self._keeper, ctx), self.bus)

    def pause(self, name: str, *, reason: str | None, until: str | None = None) -> Outcome:
        """Pause `name`'s scheduled rotations (`rotator.rotation.pausing`), in its ledger."""
        from rotator.rotation.pausing import pause

        ctx = self._ledger_context(name)
        return pause(ctx, partial(self._keeper, ctx), self.bus, reason=reason, until=until)

    def unpause(self, name: str) -> Outcome:
        """End `name`'s pause: the schedulers rotate it again when it is due."""
        from rotator.rotation.pausing import unpause

        ctx = self._ledger_context(name)
        return unpause(ctx, partial(self._keeper, ctx), self.bus)

    def revoke_leaked(self, name: str, *, leaked: str, reason: str) -> Outcome:
        """A leak report named `name`'s old key in its grace window: revoke it now (rotation/leaked_previous.py)."""
        from rotator.rotation.leaked_previous import revoke_leaked_previous

        ctx = self.context(name)
        return revoke_leaked_previous(ctx, partial(self._keeper, ctx), self.bus, leaked=leaked, reason=reason)

    def run_due(self, name: str) -> Outcome:
        """One scheduler tick for one credential: finish what is unfinished, rotate what is due.

        Never waits on a person: a manual credential that is due is reported (exit 4) with what to do.
        """
        ctx = self.context(name, scheduled=True)
        # to decide; the rotation or the resume reads it again under the lease
        record, paused = self.runtime.read_ledger(ctx.cred)
        if record is not None and not record.phase.terminal:
            # a pause stops new starts only: an unfinished rotation is finished (I1, I4)
            return self._resume(ctx, tick=True)
        if record is None and ctx.cred.seeded_key_age == "count":
            from rotator.rotation.seeded import count_seeded_key

            record = count_seeded_key(ctx, partial(self._keeper, ctx))
        held = scheduling.held_back(ctx, record, paused)
        if held is not None:
            return held
        return self._rotate(ctx, record, only_if_due=True)

    def verify(self, name: str) -> Outcome:
        """Every target holds the same current key, and Bluum accepts it."""
        from rotator.rotation.verify import verify

        return verify(self.context(name))

    def sweep(
        self, *, revoke: bool = False, include_foreign: bool = False, only: Collection[str] | None = None
    ) -> list[SweepFinding]:
        """Active keys at Bluum that no store knows (I3), and credentials with too many active keys (I4)."""
        from rotator.rotation.sweep import sweep

        return sweep(self.runtime, revoke=revoke, include_foreign=include_foreign, only=only)

    def status(self) -> list[CredentialStatus]:
        """One row per credential: environment, current key, age, next due, stage, what waits on whom."""
        from rotator.rotation.status import status

        return status(self.runtime)
