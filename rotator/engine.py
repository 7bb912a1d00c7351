"""The rotation engine: observes stores and Bluum, asks rotator.machine what to do, and does it.

All I/O of a rotation happens here, in small step methods that each end with a record write and a
fault point. Every step is idempotent for the rotation token, so `resume` simply runs the loop again
from the record in the primary store, on whatever machine it runs.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rotator import identity, machine
from rotator.errors import (
    BluumAuthError,
    BluumError,
    BluumForbidden,
    BluumRateLimited,
    BluumServerError,
    BluumUnavailable,
    BluumUnexpectedResponse,
    ConfigError,
    EnvironmentMismatch,
    ExitCode,
    RollbackFailed,
    RotationFailed,
    RotationIncomplete,
    RotatorError,
    StoreError,
    StoreNotFound,
)
from rotator.faultpoints import reached
from rotator.identity import Holding
from rotator.machine import Judgement, Step, Verdict
from rotator.model import ApiKeyInfo, KeyPair, Stage, StoredKey, printable_id
from rotator.record import Phase, RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore, StoreFactory
    from rotator.bluum import BluumClient, CheckResult
    from rotator.config import Config, CredentialConfig
    from rotator.status import CredentialStatus
    from rotator.sweep import SweepFinding

log = logging.getLogger("rotator.engine")

LOCK_TTL_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Event:
    """A line of progress for people: which step, what happened, how long it took."""

    credential: str
    step: str
    message: str
    seconds: float | None = None


Reporter = Callable[[Event], None]
ConfirmRevoked = Callable[[str], bool]
"""Asks a person to revoke a key in Bluum's dashboard; returns False when nobody can answer."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did to one credential, and the exit code that says so."""

    credential: str
    exit_code: ExitCode
    message: str
    record: RotationRecord | None = None


@dataclass
class RunContext:
    """What one command knows about one credential while it works on it."""

    cred: CredentialConfig
    stores: list[SecretStore]
    client: BluumClient
    emergency: bool = False
    skip_grace: bool = False
    new_pair: StoredKey | None = None
    confirm_revoked: ConfirmRevoked | None = None
    new: StoredKey | None = None
    step_seconds: float = 0.0
    """Time this command spent in forward steps, and how much of it was waiting (for the done line)."""
    step_waited: float = 0.0

    @property
    def primary(self) -> SecretStore:
        return self.stores[0]


def new_token() -> str:
    return uuid.uuid4().hex


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


class Engine:
    """Runs rotations for the credentials of one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self._report = reporter or (lambda event: None)
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic  # elapsed time of waits and steps; injected together with `sleep`
        self._owner = owner or default_owner()
        self._stores: dict[str, SecretStore] = {}
        self._factories: dict[str, StoreFactory] | None = None
        self._clients: dict[str, BluumClient] = {}
        self.waited = 0.0
        """Seconds spent sleeping so far: verification polls, retry back-off and the rate-limit throttle."""

    # ----------------------------------------------------------------- plumbing

    def now(self) -> float:
        """Wall-clock seconds, as the records keep them (injectable for tests)."""
        return self._clock()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store(self, name: str, cred: CredentialConfig) -> SecretStore:
        """The store `name`, built once; it learns the credential's environment and base URL as fallbacks."""
        if name not in self._stores:
            from backends.base import load_store_factories

            spec = self.config.stores[name]
            if self._factories is None:
                self._factories = load_store_factories()
            factories = self._factories
            if spec.type not in factories:
                raise ConfigError(f"store {name!r}: unknown type {spec.type!r}; known: {', '.join(sorted(factories))}")
            try:
                self._stores[name] = factories[spec.type](
                    name, environment=cred.environment, base_url=cred.base_url, **dict(spec.options)
                )
            except TypeError as exc:  # a third-party store's options are not checked by config.py
                raise ConfigError(f"store {name!r} (type {spec.type!r}) rejects its options: {exc}") from exc
        return self._stores[name]

    def client(self, cred: CredentialConfig) -> BluumClient:
        if cred.name not in self._clients:
            from rotator.bluum import BluumClient, RetryPolicy

            settings = self.config.bluum
            self._clients[cred.name] = BluumClient(
                cred.base_url,
                timeout=settings.timeout,
                retry=RetryPolicy(max_attempts=settings.max_attempts, total_budget=settings.retry_budget),
                rate_limits=settings.rate_limits,
                check_path=cred.check_path,
                api_keys_path=cred.api_keys_path,
                sleep=self._sleep_counted,
            )
        return self._clients[cred.name]

    def context(self, name: str, **kwargs: Any) -> RunContext:  # noqa: ANN401 - RunContext fields
        cred = self.config.credential(name)
        stores = [self.store(target, cred) for target in cred.targets]
        return RunContext(cred=cred, stores=stores, client=self.client(cred), **kwargs)

    def _emit(self, run: RunContext, step: str, message: str, seconds: float | None = None) -> None:
        self._report(Event(run.cred.name, step, message, seconds))
        log.info(message, extra={"fields": {"credential": run.cred.name, "step": step}})

    def _save(self, run: RunContext, record: RotationRecord, point: str) -> RotationRecord:
        run.primary.write_record(record.to_dict())
        reached(point)
        return record

    def read_record(self, run: RunContext) -> RotationRecord | None:
        data = run.primary.read_record()
        return None if data is None else RotationRecord.from_dict(data, store=run.primary.name)

    def manager_pair(self, cred: CredentialConfig) -> KeyPair:
        """The key that creates and revokes `cred`'s keys: the manager credential's CURRENT."""
        if cred.manager is None:
            raise ConfigError(f"credentials.{cred.name}: issuer 'bluum' needs `manager`")
        manager = self.config.credential(cred.manager)
        stored = self.store(manager.store, manager).read(Stage.CURRENT)
        if stored is None:
            raise ConfigError(
                f"manager credential {manager.name!r} has no current key in store {manager.store!r}: "
                "put the tenant key there first"
            )
        self._guard_environment(cred, stored, f"manager key {stored.label} (credential {manager.name!r})")
        self._guard_values(cred, stored, f"the manager key in store {manager.store!r} (credential {manager.name!r})")
        return self._pair(cred, stored)

    @staticmethod
    def _pair(cred: CredentialConfig, stored: StoredKey) -> KeyPair:
        return KeyPair(
            api_key=stored.api_key,
            api_secret=stored.api_secret,
            environment=stored.environment or cred.environment,
            key_id=stored.key_id,
        )

    @staticmethod
    def _guard_environment(cred: CredentialConfig, key: StoredKey, what: str) -> None:
        problem = machine.environment_violation(cred.environment, key.environment, what)
        if problem:
            raise EnvironmentMismatch(
                f"{cred.name}: {problem}. Nothing was changed. Check which key is in that store, "
                "and that `environment` in rotator.toml is right"
            )

    def _sleep_counted(self, seconds: float) -> None:
        self.waited += seconds
        self._sleep(seconds)

    @contextmanager
    def locked(self, run: RunContext) -> Iterator[None]:
        with run.primary.lock(self._owner, LOCK_TTL_SECONDS):
            yield

    # ----------------------------------------------------------------- reading the world

    def _read_current(self, run: RunContext) -> StoredKey:
        """The primary's CURRENT, after checking every target's CURRENT for environment (I7) and usable values."""
        current = run.primary.read(Stage.CURRENT)
        if current is None:
            raise ConfigError(
                f"{run.cred.name}: store {run.primary.name!r} ({run.primary.describe()}) holds no current key; "
                "put the key that applications use there first"
            )
        for store in run.stores:
            found = current if store is run.primary else store.read(Stage.CURRENT)
            if found is None:
                continue
            self._guard_environment(run.cred, found, f"the current key {found.label} in {store.name!r}")
            self._guard_values(run.cred, found, f"the current key in store {store.name!r} ({store.describe()})")
        return current

    @staticmethod
    def _guard_values(cred: CredentialConfig, key: StoredKey, where: str) -> None:
        problems = identity.value_problems(key, where=where)
        if problems:
            raise ConfigError(f"{cred.name}: " + "; ".join(problems))

    def _identify_current(self, run: RunContext, current: StoredKey, keys: list[ApiKeyInfo] | None) -> str | None:
        """The key id of the current pair as Bluum lists it (by public key); every target's id line must agree.

        Without a key list (issuer manual: tenant keys are not listed) the id line is all there is to go by.
        """
        if keys is None:
            return printable_id(current.key_id)
        cred = run.cred
        assert cred.investor_id is not None
        for store in run.stores:
            found = current if store is run.primary else store.read(Stage.CURRENT)
            if found is None:
                continue
            listed = identity.listed_key(keys, found)
            where = f"store {store.name!r} ({store.describe()})"
            problem = identity.id_line_problem(found, listed, where=where, investor=cred.investor_id)
            if problem:
                raise ConfigError(f"{cred.name}: {problem}. Nothing was changed")
            if listed is not None:
                self._guard_environment(cred, replace(found, environment=listed.environment), f"{listed.id} in {where}")
        listed = identity.listed_key(keys, current)
        return None if listed is None else listed.id

    def holdings(self) -> list[Holding]:
        """Every stage of every configured store, by public key: the keys some application may be using.

        A stage that is missing holds nothing; a store that cannot be read stops the caller (with that store's own
        exit code), since what it holds cannot be ruled out. Stores no credential uses are read too.
        """
        users = {target: cred for cred in self.config.credentials.values() for target in reversed(cred.targets)}
        fallback = next(iter(self.config.credentials.values()), None)
        found: list[Holding] = []
        for name in self.config.stores:
            cred = users.get(name, fallback)
            if cred is None:
                continue
            owner = cred.name if name in users else "(none)"
            for stage in Stage:
                try:
                    key = self.store(name, cred).read(stage)
                except StoreNotFound:
                    continue
                except StoreError as exc:
                    wrapped = StoreError(
                        f"{exc} (it was read to make sure no key it holds gets revoked; nothing was revoked)"
                    )
                    wrapped.exit_code = exc.exit_code
                    raise wrapped from exc
                if key is not None:
                    found.append(Holding(owner, name, stage, key.api_key))
        return found

    def list_keys(self, run: RunContext) -> list[ApiKeyInfo]:
        cred = run.cred
        assert cred.investor_id is not None  # config guarantees it for issuer bluum
        with self._manager_refusals(cred):
            return run.client.list_investor_keys(self.manager_pair(cred), cred.investor_id)

    def revoke_key(self, run: RunContext, key_id: str) -> ApiKeyInfo:
        """Revoke `key_id` at Bluum with the manager key. Callers have checked that no store holds it."""
        cred = run.cred
        assert cred.investor_id is not None
        with self._manager_refusals(cred):
            return run.client.revoke_investor_key(self.manager_pair(cred), cred.investor_id, key_id)

    @contextmanager
    def _manager_refusals(self, cred: CredentialConfig) -> Iterator[None]:
        """A 401/403 on a manager call blames the manager key: say which credential and store hold it."""
        try:
            yield
        except (BluumAuthError, BluumForbidden) as exc:
            assert cred.manager is not None
            manager = self.config.credential(cred.manager)
            store = self.store(manager.store, manager)
            raise type(exc)(
                f"{exc.detail}. That is the manager key of {cred.name}: credential {manager.name!r}, kept in store "
                f"{store.name!r} ({store.describe()}). Put a working tenant key there (Bluum's dashboard, "
                "Settings → API Keys), then run the command again",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                trace_id=exc.trace_id,
            ) from exc

    def resolve_key_id(self, key: StoredKey, keys: list[ApiKeyInfo] | None) -> str | None:
        """The id of `key` at Bluum, found by its public key; the id line only when there is no list to ask."""
        if keys is None:
            return key.key_id
        listed = identity.listed_key(keys, key)
        return None if listed is None else listed.id

    def check(self, run: RunContext, pair: KeyPair) -> CheckResult:
        return run.client.check(pair)

    @staticmethod
    def _outcome(result: CheckResult) -> str:
        return result.outcome.name.lower()

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
    ) -> Outcome:
        """Rotate one credential: generate, deploy, verify, then revoke when the grace window allows."""
        run = self.context(
            name, emergency=emergency, skip_grace=emergency, new_pair=new_pair, confirm_revoked=confirm_revoked
        )
        cred = run.cred
        if emergency and not reason:
            raise ConfigError("--emergency needs --reason TEXT: the reason goes into the rotation record")
        if cred.issuer == "manual" and new_pair is None and not dry_run:
            raise ConfigError(
                f"{cred.name} is minted in Bluum's dashboard (issuer manual): create the new pair there, then "
                f"run `rotator rotate {cred.name} --new-key-file FILE` (JSON with api_key, api_secret, key_id)"
            )
        if cred.issuer == "bluum" and new_pair is not None:
            raise ConfigError(f"{cred.name} is minted through Bluum's API (issuer bluum): --new-key-file is not used")
        if dry_run:
            return self._plan(run)
        with self.locked(run):
            current, old_id, previous_record = self._preflight(run)
            if cred.issuer == "manual":
                assert new_pair is not None
                if new_pair.same_key(current):
                    raise ConfigError(
                        f"{cred.name}: the pair in --new-key-file is the current pair; create a new one in Bluum's "
                        "dashboard first. Nothing was changed"
                    )
                self._precheck_manual_pair(run, new_pair)
            now = self._clock()
            token = new_token()
            record = RotationRecord(
                credential=cred.name,
                token=token,
                phase=Phase.STARTED,
                issuer=cred.issuer,
                started_at=now,
                updated_at=now,
                emergency=emergency,
                reason=reason,
                old_key_id=old_id,
                old_key_label=old_id or current.label,
                current_since=previous_record.current_since if previous_record else None,
            )
            record = self._save(run, record, "started.record")
            kind = "emergency rotation" if emergency else "rotation"
            self._emit(run, "start", f"{kind} {token[:8]} of {cred.name} started; current key {record.old_key_label}")
            return self._drive(run, record)

    def resume(self, name: str, *, skip_grace: bool = False, confirm_revoked: ConfirmRevoked | None = None) -> Outcome:
        """Finish (or, when it cannot go forward, roll back) the rotation the record says is unfinished."""
        run = self.context(name, skip_grace=skip_grace, confirm_revoked=confirm_revoked)
        with self.locked(run):
            record = self.read_record(run)
            if record is None or record.phase.terminal:
                return Outcome(name, ExitCode.OK, f"{name}: nothing to resume", record)
            run.skip_grace = skip_grace or record.emergency
            self._emit(run, "resume", f"resuming rotation {record.token[:8]} of {name} from {record.phase.value}")
            return self._drive(run, record)

    def rollback(self, name: str) -> Outcome:
        """Undo the last rotation while the old key still exists (until it is revoked)."""
        run = self.context(name)
        with self.locked(run):
            record = self.read_record(run)
            if record is None or record.phase is Phase.ROLLED_BACK:
                return Outcome(name, ExitCode.OK, f"{name}: nothing to roll back", record)
            if record.phase is Phase.REVOKING:
                raise RotationIncomplete(
                    f"{name}: rotation {record.token[:8]} has started revoking the old key {record.old_key_label} "
                    "(the revoke may or may not have reached Bluum), so there is no going back to it. "
                    f"Finish the rotation with `rotator resume {name}`"
                )
            if not machine.can_roll_back(record):
                raise ConfigError(
                    f"{name}: rotation {record.token[:8]} is {record.phase.value}: the old key "
                    f"{record.old_key_label} is already revoked at Bluum, so there is nothing to go back to. "
                    + (
                        f"Finish it with `rotator resume {name}`"
                        if not record.phase.terminal
                        else f"If the current key is bad, rotate again: `rotator rotate {name} --emergency`"
                    )
                )
            previous = run.primary.read(Stage.PREVIOUS)
            if previous is not None and record.phase is not Phase.STARTED:
                result = self.check(run, self._pair(run.cred, previous))
                if self._outcome(result) == "rejected":
                    raise RotationIncomplete(
                        f"{name}: the old key {record.old_key_label} is already rejected by Bluum ({result.reason}); "
                        f"rolling back would leave no working key. Finish forward with `rotator resume {name}`"
                    )
            record = self._roll_back(run, record, "rollback requested by the operator")
            return Outcome(name, ExitCode.OK, f"{name}: rolled back. " + self._after_rollback(run, record), record)

    def _preflight(self, run: RunContext) -> tuple[StoredKey, str | None, RotationRecord | None]:
        """Everything that can refuse a rotation before anything changes.

        Returns the current key, its key id at Bluum (found by public key) and the last record. A normal rotation
        starts only from a current key Bluum is seen to accept; an emergency never calls the (maybe leaked and
        hammered) current key at all: Bluum's key list, asked with the manager key, says which key it is.
        """
        cred = run.cred
        record = self.read_record(run)
        current = self._read_current(run)
        keys: list[ApiKeyInfo] | None = None
        if cred.issuer == "bluum":
            keys = self.list_keys(run)
        current_id = self._identify_current(run, current, keys)
        holdings = self.holdings()
        shared = identity.shared_with_others(current, holdings, cred.name)
        if shared:
            raise ConfigError(
                f"{cred.name}: its current key {current_id or current.label} is also held by {shared}. Two "
                "credentials must not share a key: rotating one would have to revoke the key the other still uses. "
                "Give each credential its own key (or one credential several stores: `also_deploy_to`). "
                "Nothing was changed."
            )
        own_active = [info for info in keys or [] if machine.owned_by(info, cred.name) and info.active]
        held = {
            info.id: refusal
            for info in own_active
            if (refusal := identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere))
        }
        blockers = machine.start_blockers(record, own_active, current_id, held)
        if blockers:
            message = f"{cred.name}: " + "; ".join(blockers) + ". Nothing was changed."
            if record is not None and not record.phase.terminal:
                raise RotationIncomplete(message)
            raise ConfigError(message)
        if not run.emergency:
            result = self.check(run, self._pair(cred, current))
            outcome = self._outcome(result)
            refusal = machine.start_refusal(
                outcome, result.code, result.reason, key=current_id or current.label, credential=cred.name
            )
            if refusal and outcome == "inconclusive" and machine.transient_status(result.status):
                raise BluumUnavailable(
                    f"{cred.name}: Bluum did not answer the check of the current key {current_id or current.label} "
                    f"({result.reason}). Nothing was changed; run the command again later"
                )
            if refusal:
                raise ConfigError(f"{cred.name}: {refusal}. Nothing was changed.")
        return current, current_id, record

    def _precheck_manual_pair(self, run: RunContext, pair: StoredKey) -> None:
        """I7 for hand-made pairs: the new pair must work against this credential's Bluum before deploying."""
        cred = run.cred
        self._guard_environment(cred, pair, "the new pair from --new-key-file")
        self._guard_values(cred, pair, "the new pair from --new-key-file")
        judgement, _ = self._poll(run, self._pair(cred, pair), new_key=True)
        if judgement.verdict is Verdict.FAILED:
            raise ConfigError(
                f"{cred.name}: the new pair is not accepted by {cred.environment.value} Bluum at {cred.base_url} "
                f"({judgement.reason}). Is it a key of another environment, or mistyped? Nothing was changed."
            )

    def _poll(self, run: RunContext, pair: KeyPair, *, new_key: bool) -> tuple[Judgement, int]:
        """Call Bluum with `pair` until machine.judge_* says PASSED or FAILED (within verify_timeout).

        new_key: the pair must start working (propagation); otherwise it must stop working (revocation).
        Returns the verdict and how many calls it took.
        """
        started = self._monotonic()
        timeout = run.cred.verify_timeout.total_seconds()
        attempt = 0
        while True:
            result = self.check(run, pair)
            elapsed = self._monotonic() - started
            outcome = self._outcome(result)
            judgement = (
                machine.judge_new_key(outcome, result.code, result.reason, elapsed=elapsed, timeout=timeout)
                if new_key
                else machine.judge_old_key(outcome, result.reason, elapsed=elapsed, timeout=timeout)
            )
            if judgement.verdict is not Verdict.RETRY:
                return judgement, attempt + 1
            self._sleep_counted(machine.poll_delay(attempt))
            attempt += 1

    def _plan(self, run: RunContext) -> Outcome:
        """--dry-run: every read-only check a real rotation would make, and the plan, changing nothing."""
        cred = run.cred
        current, current_id, _ = self._preflight(run)
        grace = "0s (emergency)" if run.emergency else f"{cred.grace}"
        source = (
            f"create a new {cred.environment.bluum_name} key for {cred.investor_id} with {cred.manager}'s key"
            if cred.issuer == "bluum"
            else "take the new pair from --new-key-file"
        )
        lines = [
            f"{cred.name}: dry run, nothing will change",
            f"  1. generate: {source}; store it as PENDING in {run.primary.name}",
            f"  2. deploy:   make it CURRENT in {', '.join(s.name for s in run.stores)} (old key stays PREVIOUS)",
            f"  3. verify:   call {cred.check_path} with the new key, for up to {cred.verify_timeout}",
            f"  4. revoke:   after grace {grace}, revoke {current_id or current.label} and prove it gets 401",
        ]
        return Outcome(cred.name, ExitCode.OK, "\n".join(lines), self.read_record(run))

    # ----------------------------------------------------------------- the loop

    def _drive(self, run: RunContext, record: RotationRecord) -> Outcome:
        cred = run.cred
        while True:
            step = machine.next_step(
                record, now=self._clock(), has_new_pair=run.new_pair is not None, skip_grace=run.skip_grace
            )
            if step is Step.DONE:
                return self._finished(run, record)
            if step is Step.WAIT_GRACE:
                assert record.revoke_after is not None
                when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(record.revoke_after))
                message = (
                    f"{cred.name}: new key {record.new_key_label} is current and verified; the old key "
                    f"{record.old_key_label} stays active until the grace window ends at {when}. "
                    f"`rotator resume {cred.name}` after that time (or the next scheduled run) revokes it; "
                    f"`rotator resume {cred.name} --now` revokes it at once"
                )
                record = self._save(run, record.advance(record.phase, self._clock(), waiting_on=message), "wait.record")
                self._emit(run, "grace", message)
                return Outcome(cred.name, ExitCode.OK, message, record)
            if step is Step.ROLLBACK:
                record = self._roll_back(run, record, record.failure or "interrupted before the new key was stored")
                return self._finished(run, record)
            try:
                if step is Step.AWAIT_OPERATOR_REVOKE:
                    record, done = self._operator_revoke(run, record)
                    if not done:
                        return Outcome(cred.name, ExitCode.INCOMPLETE, record.waiting_on or "", record)
                    continue
                record = self._forward(run, step, record)
            except _StepFailed as failure:
                record = self._roll_back(run, failure.record, failure.reason, cause=failure.__cause__)
                raise RotationFailed(
                    f"{cred.name}: rotation failed and was rolled back: {failure.reason}. "
                    + self._after_rollback(run, record)
                ) from failure.__cause__
            except RotatorError as exc:
                if exc.exit_code not in (ExitCode.BAD_INPUT, ExitCode.UNAVAILABLE):
                    raise
                # Something was already changed (the record exists): "nothing changed" would be a lie.
                latest = self.read_record(run) or record
                raise RotationIncomplete(
                    f"{cred.name}: {exc}. The rotation stopped at phase {latest.phase.value}; fix the cause, then "
                    f"run `rotator resume {cred.name}` (or `rotator rollback {cred.name}` to undo it)"
                ) from exc

    def _after_rollback(self, run: RunContext, record: RotationRecord) -> str:
        """What is true after a rollback, checked rather than assumed, and what a person still has to do."""
        old = run.primary.read(Stage.CURRENT)
        parts = [f"The old key {record.old_key_label} is current again"]
        if old is not None and record.emergency:
            parts.append(" (not checked: it is the leaked key of an emergency, which is never called)")
        elif old is not None:
            result = self.check(run, self._pair(run.cred, old))
            outcome = self._outcome(result)
            if outcome == "works":
                parts.append(" and Bluum accepts it")
            elif outcome == "rejected":
                parts.append(f", but Bluum rejects it too ({result.reason}, {result.code}): a person must act")
            else:
                parts.append(
                    f"; whether Bluum accepts it could not be checked ({result.reason}): "
                    f"`rotator verify {run.cred.name}` checks again"
                )
        if record.issuer == "manual":
            parts.append(
                f". The new pair {record.new_key_label} was made in Bluum's dashboard and is not in use: "
                "revoke it there"
            )
        elif record.new_key_id:
            parts.append(f"; the new key {record.new_key_label} was revoked")
        return "".join(parts) + "."

    def _forward(self, run: RunContext, step: Step, record: RotationRecord) -> RotationRecord:
        handlers: dict[Step, Callable[[RunContext, RotationRecord], RotationRecord]] = {
            Step.CREATE_KEY: self._create,
            Step.STORE_PENDING: self._store_manual_pair,
            Step.DEPLOY: self._deploy,
            Step.VERIFY: self._verify,
            Step.REVOKE_OLD: self._revoke_old,
            Step.CLEAR_PREVIOUS: self._clear_previous,
        }
        started = self._monotonic()
        waited_before = self.waited
        record = handlers[step](run, record)
        run.step_seconds += self._monotonic() - started
        run.step_waited += self.waited - waited_before
        return record

    def _finished(self, run: RunContext, record: RotationRecord) -> Outcome:
        if record.phase is Phase.COMPLETED:
            total, waited = run.step_seconds, run.step_waited
            message = (
                f"{run.cred.name}: rotation complete; {record.new_key_label} is current everywhere, "
                f"{record.old_key_label} is revoked ({total:.2f}s of steps, {waited:.2f}s of it waiting)"
            )
            log.info(message, extra={"fields": {"credential": run.cred.name, "step": "done"}})
            return Outcome(run.cred.name, ExitCode.OK, message, record)
        message = f"{run.cred.name}: rolled back ({record.failure}). " + self._after_rollback(run, record)
        return Outcome(run.cred.name, ExitCode.ROLLED_BACK, message, record)

    # ----------------------------------------------------------------- forward steps

    def _create(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        """Create the key (idempotent by token), and store it as PENDING before anything else (I3)."""
        cred = run.cred
        assert cred.investor_id is not None
        started = self._monotonic()
        stored = run.primary.read(Stage.PENDING)
        if stored is not None and stored.token == record.token:
            # A crash after storing it: the key we need is already safe; never create a second one.
            run.new = stored
            record = record.advance(record.phase, self._clock(), new_key_id=stored.key_id, new_key_label=stored.label)
            return self._save(run, record.advance(Phase.PENDING_STORED, self._clock()), "pending.record")
        idempotency_key = record.token
        if self._clock() - record.started_at > machine.IDEMPOTENCY_TRUST_SECONDS:
            # Bluum forgets an Idempotency-Key after 24 h: a key made under this token then cannot be fetched
            # again (its secret is lost), and creating anew would make a third active key (I4). Revoke it first,
            # and create under a fresh key: a replay of the old one might hand back the key just revoked.
            self._revoke_rotation_keys(
                run, record, why="its secret was lost with a crashed run", point="revoke_token.bluum"
            )
            idempotency_key = new_token()
        manager = self.manager_pair(cred)
        try:
            created = run.client.create_investor_key(
                manager,
                cred.investor_id,
                name=machine.key_name(cred.name, record.token),
                environment=cred.environment,
                idempotency_key=idempotency_key,
            )
        except BluumUnexpectedResponse as exc:
            # The key may exist (wrong environment, no secret): roll back, which revokes it by id or token.
            failed = record.advance(record.phase, self._clock(), new_key_id=exc.key_id, new_key_label=exc.key_id)
            raise _StepFailed(failed, f"Bluum's answer to the create is unusable: {exc}") from exc
        except (BluumUnavailable, BluumServerError, BluumRateLimited) as exc:
            raise RotationIncomplete(
                f"{cred.name}: Bluum did not answer the create of the new key ({exc}); it may or may not exist. "
                f"Nothing was deployed. Run `rotator resume {cred.name}` when Bluum is reachable: it finishes "
                "with the same key, or cleans it up"
            ) from exc
        except BluumError as exc:
            # Refused (4xx). An earlier attempt of this call may still have created it: rollback revokes by token.
            raise _StepFailed(
                record, f"Bluum refused to create the new key: {exc}; check the manager credential {cred.manager!r}"
            ) from exc
        reached("create.bluum")
        pending = StoredKey(
            api_key=created.pair.api_key,
            api_secret=created.pair.api_secret,
            key_id=created.info.id,
            environment=created.pair.environment,
            base_url=cred.base_url,
            token=record.token,
        )
        record = record.advance(record.phase, self._clock(), new_key_id=created.info.id, new_key_label=created.info.id)
        problem = machine.environment_violation(
            cred.environment, created.pair.environment, f"new key {created.info.id}"
        )
        if problem:
            raise _StepFailed(record, problem)
        try:
            run.primary.put_pending(pending)
        except StoreError as exc:
            raise _StepFailed(record, f"could not store the new key as PENDING: {exc}") from exc
        reached("pending.store")
        run.new = pending
        record = self._save(run, record.advance(Phase.PENDING_STORED, self._clock()), "pending.record")
        self._emit(
            run,
            "generate",
            f"created {created.info.id} at Bluum, stored as PENDING in {run.primary.name}",
            self._monotonic() - started,
        )
        # Should Bluum not honour Idempotency-Key here (undocumented), a resumed create made a second key.
        self._revoke_rotation_keys(
            run, record, why="a duplicate of this rotation's key", point="revoke_token.bluum", keep=created.info.id
        )
        return record

    def _revoke_rotation_keys(
        self, run: RunContext, record: RotationRecord, *, why: str, point: str, keep: str | None = None
    ) -> None:
        """Revoke every active key of this rotation (its recorded new key id, or the token in its name) except
        `keep`. Never the old key, whatever its name says, nor a key some store holds (I1, I3, I4)."""
        holdings: list[Holding] | None = None
        for info in self.list_keys(run):
            token = machine.token_of(info)
            # By the token in its name; by the recorded id only when no other rotation's token says otherwise.
            ours = token == record.token or (info.id == record.new_key_id and token is None)
            if not info.active or not ours or info.id in (keep, record.old_key_id):
                continue
            holdings = self.holdings() if holdings is None else holdings
            refusal = identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere)
            if refusal:
                raise RotationIncomplete(
                    f"{run.cred.name}: {info.id} ({why}) was NOT revoked: {refusal}. Once no application uses it, "
                    f"remove it from there and run `rotator resume {run.cred.name}`"
                )
            self.revoke_key(run, info.id)
            reached(point)
            self._emit(run, "rollback" if point == "revoke_new.bluum" else "cleanup", f"revoked {info.id} ({why})")

    def _store_manual_pair(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        assert run.new_pair is not None
        pending = StoredKey(
            api_key=run.new_pair.api_key,
            api_secret=run.new_pair.api_secret,
            key_id=run.new_pair.key_id,
            environment=run.cred.environment,
            base_url=run.cred.base_url,
            token=record.token,
        )
        run.primary.put_pending(pending)
        reached("pending.store")
        run.new = pending
        self._emit(run, "generate", f"stored the operator's new pair {pending.label} as PENDING in {run.primary.name}")
        return self._save(
            run,
            record.advance(Phase.PENDING_STORED, self._clock(), new_key_id=pending.key_id, new_key_label=pending.label),
            "pending.record",
        )

    def _pending(self, run: RunContext, record: RotationRecord) -> StoredKey:
        """The new key, from memory or (after a crash) from the primary store, where it is PENDING or CURRENT."""
        if run.new is not None:
            return run.new
        for stage in (Stage.PENDING, Stage.CURRENT):
            found = run.primary.read(stage)
            if found is not None and found.token == record.token:
                run.new = found
                return found
        raise _StepFailed(record, f"the new key of rotation {record.token[:8]} is no longer in {run.primary.name!r}")

    def _deploy(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        """PENDING → CURRENT in every target, old CURRENT → PREVIOUS; then read every target back (I1)."""
        started = self._monotonic()
        new = self._pending(run, record)
        if record.phase is Phase.PENDING_STORED:
            # Applications get the key only once Bluum accepts it, so none of them runs on a key still
            # propagating, and a key that never works is rolled back before any store saw it.
            judgement, calls = self._poll(run, self._pair(run.cred, new), new_key=True)
            if judgement.verdict is Verdict.FAILED:
                raise _StepFailed(record, f"verification failed before deploying: {judgement.reason}")
            self._emit(run, "verify", f"Bluum accepts {new.label} (after {calls} call(s))", self._monotonic() - started)
            started = self._monotonic()  # the deploy's own time is reported apart from the wait above
        try:
            for store in run.stores:
                if store is not run.primary:
                    store.put_pending(new)
                    reached(f"stage.{store.name}")
                store.promote(record.token)
                reached(f"promote.{store.name}")
            observed = {store.name: store.read(Stage.CURRENT) for store in run.stores}
        except StoreError as exc:
            raise _StepFailed(record, f"deploy failed: {exc}") from exc
        mismatched = machine.readback_mismatches(new, observed)
        if mismatched:
            raise _StepFailed(record, f"read-back after deploy does not show the new key in {', '.join(mismatched)}")
        record = self._save(run, record.advance(Phase.DEPLOYED, self._clock(), waiting_on=None), "deployed.record")
        self._emit(
            run,
            "deploy",
            f"{new.label} is CURRENT in {', '.join(observed)}; old key kept as PREVIOUS (overlap)",
            self._monotonic() - started,
        )
        return record

    def _verify(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        """Call Bluum with the new key until it works, telling propagation delay from rejection (I2)."""
        cred = run.cred
        new = self._pending(run, record)
        started = self._monotonic()
        judgement, calls = self._poll(run, self._pair(cred, new), new_key=True)
        if judgement.verdict is Verdict.FAILED:
            raise _StepFailed(record, f"verification failed: {judgement.reason}")
        observed = {store.name: store.read(Stage.CURRENT) for store in run.stores}
        mismatched = machine.readback_mismatches(new, observed)
        if mismatched:
            raise _StepFailed(record, f"verification failed: the new key is no longer in {', '.join(mismatched)}")
        now = self._clock()
        grace = 0.0 if run.emergency or record.emergency else cred.grace.total_seconds()
        record = self._save(
            run, record.advance(Phase.VERIFIED, now, verified_at=now, revoke_after=now + grace), "verified.record"
        )
        self._emit(
            run,
            "confirm",
            f"every store reads back {new.label} and Bluum accepts it (after {calls} call(s))",
            self._monotonic() - started,
        )
        return record

    def _confirm_new_key(self, run: RunContext, record: RotationRecord) -> None:
        """Before the old key goes: the new one must still be current everywhere and still work (I1, I2).

        A grace window is long; in it the new key can expire or be revoked, or someone can edit a store.
        """
        cred = run.cred
        new = self._pending(run, record)
        observed = {store.name: store.read(Stage.CURRENT) for store in run.stores}
        mismatched = machine.readback_mismatches(new, observed)
        if mismatched:
            raise RotationIncomplete(
                f"{cred.name}: the new key {new.label} is no longer in {', '.join(mismatched)}, so the old key "
                f"{record.old_key_label} was NOT revoked. Put the new key back, or undo the rotation with "
                f"`rotator rollback {cred.name}`"
            )
        result = self.check(run, self._pair(cred, new))
        outcome = self._outcome(result)
        if outcome == "rejected":
            raise _StepFailed(
                record,
                f"the new key {new.label} stopped working before the old one was revoked "
                f"({result.reason}, {result.code})",
            )
        if outcome != "works":
            raise RotationIncomplete(
                f"{cred.name}: could not confirm the new key still works ({result.reason}); the old key was NOT "
                f"revoked. Run `rotator resume {cred.name}` when Bluum answers"
            )

    def _start_revoking(
        self, run: RunContext, record: RotationRecord, waiting_on: str | None = None, *, confirmed: bool = False
    ) -> RotationRecord:
        """Write ahead that the old key is about to go: from here on there is no rollback to it (I1).
        `confirmed`: the caller has just run `_confirm_new_key`."""
        if record.phase is Phase.REVOKING:
            return record
        if not confirmed:
            self._confirm_new_key(run, record)
        return self._save(run, record.advance(Phase.REVOKING, self._clock(), waiting_on=waiting_on), "revoking.record")

    def _revoke_old(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        """Revoke the old key at Bluum and prove it is rejected; only then is PREVIOUS forgotten.

        The key to revoke is the one whose public key PREVIOUS holds, as Bluum lists it, whatever id the record
        or an id line says, and only when no store holds it anywhere but in this credential's PREVIOUS (I1).
        """
        cred = run.cred
        started = self._monotonic()
        if record.phase is not Phase.REVOKING:
            # First: when a store no longer shows the new key, "put it back" is the advice, not the guard's.
            self._confirm_new_key(run, record)
        old = run.primary.read(Stage.PREVIOUS)
        keys = self.list_keys(run)
        if old is not None:
            target = identity.listed_key(keys, old)
        else:
            # PREVIOUS was removed by hand: the id the record took from Bluum's list (by public key) at the start.
            target = next((info for info in keys if info.id == record.old_key_id), None)
        if target is None:
            # Not a key Bluum's API manages (seeded by hand, another investor's): only a person can revoke it.
            self._emit(run, "revoke", f"Bluum's key list has no key for the old pair {record.old_key_label}")
            return self._save(run, record.advance(record.phase, self._clock(), old_key_id=None), "old_unlisted.record")
        if target.id != record.old_key_id:
            self._emit(run, "revoke", f"the old pair is {target.id} at Bluum (the record said {record.old_key_id})")
            record = record.advance(record.phase, self._clock(), old_key_id=target.id)
        refusal = identity.revoke_refusal(target, self.holdings(), allowed=identity.old_key_of(cred.name))
        if refusal:
            way_back = (
                "" if record.phase is Phase.REVOKING else f", or undo the rotation with `rotator rollback {cred.name}`"
            )
            raise RotationIncomplete(
                f"{cred.name}: the old key was NOT revoked: {refusal}. Once no application uses it, remove it from "
                f"there and run `rotator resume {cred.name}`{way_back}"
            )
        record = self._start_revoking(run, record, confirmed=True)
        if target.active:
            try:
                self.revoke_key(run, target.id)
            except BluumError as exc:
                raise RotationIncomplete(
                    f"{cred.name}: the revoke of the old key {target.id} failed ({exc}); it may or may not have "
                    f"taken effect. The new key is current everywhere and verified. Run `rotator resume {cred.name}` "
                    "to retry"
                ) from exc
            reached("revoke.bluum")
            done = f"revoked {target.id}"
        else:
            done = f"{target.id} was already {target.status} at Bluum"
        if old is not None:
            self._prove_rejected(run, record, old)
            done += "; Bluum now rejects it"
        else:
            done += " (its pair is in no store any more, so Bluum's list is the proof)"
        record = self._save(
            run, record.advance(Phase.OLD_REVOKED, self._clock(), waiting_on=None), "old_revoked.record"
        )
        self._emit(run, "revoke", done, self._monotonic() - started)
        return record

    def _prove_rejected(self, run: RunContext, record: RotationRecord, old: StoredKey) -> None:
        judgement, _ = self._poll(run, self._pair(run.cred, old), new_key=False)
        if judgement.verdict is Verdict.FAILED:
            raise RotationIncomplete(
                f"{run.cred.name}: {judgement.reason}. The old key {record.old_key_label} is still kept as "
                f"PREVIOUS; run `rotator resume {run.cred.name}` to check again"
            )

    def _operator_revoke(self, run: RunContext, record: RotationRecord) -> tuple[RotationRecord, bool]:
        """A person revokes the old pair in the dashboard (manual issuer, or a key Bluum's API does not list);
        we prove Bluum rejects it before forgetting it."""
        cred = run.cred
        ask = f"Revoke the old key {record.old_key_label} of {cred.name} in Bluum's dashboard (Settings → API Keys)"
        waiting = f"{cred.name}: waiting on the operator: {ask}, then run `rotator resume {cred.name}`"
        record = self._start_revoking(run, record, waiting_on=waiting)
        old = run.primary.read(Stage.PREVIOUS)
        if old is not None:
            result = self.check(run, self._pair(cred, old))
            if self._outcome(result) != "rejected":
                if run.confirm_revoked is None or not run.confirm_revoked(ask):
                    self._emit(run, "revoke", waiting)
                    return record, False
                self._prove_rejected(run, record, old)
        record = self._save(
            run, record.advance(Phase.OLD_REVOKED, self._clock(), waiting_on=None), "old_revoked.record"
        )
        if old is None:
            self._emit(run, "revoke", f"the old pair {record.old_key_label} is in no store any more: nothing to check")
        else:
            self._emit(run, "revoke", f"Bluum now rejects the old key {record.old_key_label}")
        return record, True

    def _clear_previous(self, run: RunContext, record: RotationRecord) -> RotationRecord:
        started = self._monotonic()
        for store in run.stores:
            store.clear_previous()
            reached(f"clear.{store.name}")
        now = self._clock()
        record = self._save(
            run,
            record.advance(Phase.COMPLETED, now, completed_at=now, current_since=record.verified_at or now),
            "completed.record",
        )
        self._emit(
            run,
            "cleanup",
            f"forgot the old key in {', '.join(s.name for s in run.stores)}",
            self._monotonic() - started,
        )
        return record

    # ----------------------------------------------------------------- rollback

    def _roll_back(
        self, run: RunContext, record: RotationRecord, reason: str, cause: BaseException | None = None
    ) -> RotationRecord:
        """Restore the old key everywhere, then revoke the new one. The old key is never revoked here."""
        cred = run.cred
        started = self._monotonic()
        try:
            if record.phase is not Phase.ROLLING_BACK:
                record = self._save(
                    run, record.advance(Phase.ROLLING_BACK, self._clock(), failure=reason), "rolling_back.record"
                )
            self._emit(run, "rollback", f"rolling back: {reason}")
            for store in run.stores:
                store.restore_previous(record.token)
                reached(f"restore.{store.name}")
            if record.issuer == "bluum":
                self._revoke_rotation_keys(
                    run, record, why="the new key of a rolled-back rotation", point="revoke_new.bluum"
                )
            record = self._save(
                run, record.advance(Phase.ROLLED_BACK, self._clock(), waiting_on=None), "rolled_back.record"
            )
        except RotatorError as exc:
            raise RollbackFailed(
                f"{cred.name}: rollback failed ({exc}) after: {reason}. Run `rotator resume {cred.name}` to retry "
                "the rollback; the old key was not revoked",
                original=cause or exc,
            ) from exc
        self._emit(run, "rollback", f"{record.old_key_label} is current again", self._monotonic() - started)
        return record

    # ----------------------------------------------------------------- read-only commands

    def run_due(self, name: str) -> Outcome:
        """One scheduler tick for one credential: finish what is unfinished, rotate what is due.

        Never waits on a person: a manual credential that is due is reported (exit 4) with what to do.
        """
        run = self.context(name)
        record = self.read_record(run)
        if record is not None and not record.phase.terminal:
            return self.resume(name)
        since = record.current_since if record is not None else None
        if not machine.is_due(since, run.cred.rotate_every, self._clock()):
            due = machine.next_due(since, run.cred.rotate_every)
            when = time.strftime("%Y-%m-%d", time.gmtime(due)) if due else "unknown"
            return Outcome(name, ExitCode.OK, f"{name}: not due (next rotation {when})", record)
        if run.cred.issuer == "manual":
            return Outcome(
                name,
                ExitCode.INCOMPLETE,
                f"{name}: rotation is due and waits on a person: create a new pair in Bluum's dashboard, then "
                f"`rotator rotate {name} --new-key-file FILE`",
                record,
            )
        return self.rotate(name)

    def verify(self, name: str) -> Outcome:
        """Every target holds the same current key, and Bluum accepts it."""
        run = self.context(name)
        current = self._read_current(run)
        observed = {store.name: store.read(Stage.CURRENT) for store in run.stores}
        mismatched = machine.readback_mismatches(current, observed)
        if mismatched:
            return Outcome(
                name,
                ExitCode.INCOMPLETE,
                f"{name}: {', '.join(mismatched)} hold a different current key "
                f"than {run.primary.name}; run `rotator resume {name}` or fix the store by hand",
            )
        result = self.check(run, self._pair(run.cred, current))
        outcome = self._outcome(result)
        if outcome == "works":
            return Outcome(
                name, ExitCode.OK, f"{name}: {current.label} works at Bluum and is current in {', '.join(observed)}"
            )
        detail = f"{result.reason}" + (f" ({result.code})" if result.code else "")
        return Outcome(name, ExitCode.INCOMPLETE, f"{name}: current key {current.label} does not work: {detail}")

    def sweep(self, *, revoke: bool = False, include_foreign: bool = False) -> list[SweepFinding]:
        """Active keys at Bluum that no store knows (I3), and credentials with too many active keys (I4)."""
        from rotator.sweep import sweep

        return sweep(self, revoke=revoke, include_foreign=include_foreign)

    def status(self) -> list[CredentialStatus]:
        """One row per credential: environment, current key, age, next due, stage, what waits on whom."""
        from rotator.status import status

        return status(self)


class _StepFailed(Exception):
    """A forward step failed in a way that rollback repairs. Internal: turned into RotationFailed."""

    def __init__(self, record: RotationRecord, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason
