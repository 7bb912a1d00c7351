"""The reload step: after the new key is CURRENT in every target, the targets' reload actions make the applications
that read them load it; a rollback that may have found them holding the new key runs them again for the old one.

Why a step of its own, before confirm: an application that holds its key in memory keeps the old key until it is
restarted, and the old key dies when the grace window ends. Running the actions before confirm means the grace
window starts only once applications hold the new key, and confirm then checks once more that every target still
shows it (a reload action that rewrote a target is caught there).

A failed action stops the rotation where it is (DEPLOYED, with the failure in `waiting_on` for `rotator status`):
nothing is revoked, and the record keeps how often it failed, when, and which actions succeeded for the new key.
`rotator resume` runs the actions that have not succeeded again, at once; the scheduler does the same once the
failure's backoff has passed (rotator/rules/reload_retry.py); `rotator rollback` puts the old key back. In a tick,
an action several credentials share runs once after all of them were promoted (rotator/rotation/reload_tick.py).
Each action's result goes to the history as an event; what a program printed is kept only as far as
rotator/rotation/reload_runner.py judges it safe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, NoReturn

from rotator.core.durations import format_duration
from rotator.core.errors import ExitCode, RotationIncomplete
from rotator.core.faultpoints import reached
from rotator.core.model import Stage
from rotator.core.timestamps import format_timestamp
from rotator.rotation.context import Journal, RotationContext
from rotator.rotation.reload_tick import ReloadTick, Run
from rotator.rules import reload_retry
from rotator.rules.record import Phase, RotationRecord

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.config.reloads import ReloadAction
    from rotator.rotation.reload_runner import ReloadResult


RELOADS_CLEARED: dict[str, Any] = {
    "reload_failures": 0,
    "reload_failed_at": None,
    "reloads_done": (),
    "healthy": (),
}
"""The record's reload fields as a rollback starts them: what was done and failed was for the new key."""


def configured(ctx: RotationContext) -> list[tuple[str, ReloadAction]]:
    """The reload actions of the credential's targets, primary first, each with its store's name."""
    stores = ctx.runtime.config.stores
    return [(name, action) for name in ctx.cred.targets if name in stores for action in stores[name].reload]


def refuse_unrunnable(ctx: RotationContext) -> None:
    """ConfigError (exit 2, before anything is created) naming every reload command, or health check command, whose
    program cannot be started, and the fix: otherwise the rotation would stop half-way, after the new key was
    deployed, at every run."""
    from rotator.core.errors import ConfigError
    from rotator.rotation.reload_check import command_problem

    problems: list[str] = []
    stores: set[str] = set()
    for store, action in configured(ctx):
        probes = [("reload command", action)]
        if action.health is not None and action.health.kind == "command":
            probes.append(("health check", action.health.probe(ctx.cred.rollout.health_timeout, action.pass_env)))
        for what, probe in probes:
            if (problem := command_problem(probe)) is not None:
                problems.append(f"the {what} of store {store!r} ({probe.describe()}) cannot run: {problem}")
                stores.add(store)
    if problems:
        tables = ", ".join(f"[stores.{store}]" for store in sorted(stores))
        raise ConfigError(
            f"{ctx.cred.name}: " + "; ".join(problems) + f". Fix `reload` in {tables} of rotator.toml (the program's "
            "full path, or install it on this host), then try again. Nothing was changed"
        )


def planned(ctx: RotationContext) -> str | None:
    """The reload step of the dry-run plan, in words; None when no target has reload actions."""
    actions = configured(ctx)
    if not actions:
        return None
    listed = "; ".join(
        f"{store}: {action.describe()}" + (f" (health: {action.health.describe()})" if action.health else "")
        for store, action in actions
    )
    if not gated(ctx):
        stops = "a failure stops before any revoke"
        return f"run the reload actions, in order, each within its timeout ({listed}); {stops}"
    rollout = ctx.cred.rollout
    return (
        f"run the reload actions in batches, {rollout.batch.describe()}, in order ({listed}); each batch's health "
        f"checks must pass within {format_duration(rollout.health_timeout)} before the next batch reloads, and a batch "
        "that fails them rolls the rotation back (the batches reached are reloaded back, the new key revoked)"
    )


def gated(ctx: RotationContext) -> bool:
    """Whether the credential's reloads roll out batch by batch (rotator/rotation/rollout.py): batches asked for, or
    a health check to pass."""
    return ctx.cred.rollout.batch.staggered or any(action.health for _, action in configured(ctx))


RunActions = Callable[["RotationContext", RotationRecord, Journal, str], tuple[str | None, RotationRecord]]
"""How the actions run for the new key: (context, record, journal, the new key's label) -> the first failure (or
None) and the record with `reloads_done` as far as it got. rotator/rotation/rollout.py brings a batched one."""


def all_at_once(
    ctx: RotationContext, record: RotationRecord, journal: Journal, key_label: str
) -> tuple[str | None, RotationRecord]:
    """Every action in order (the rollout without batches)."""
    failure, done = run_all(ctx, record, journal, key_label=key_label, purpose="rotation", done=record.reloads_done)
    return failure, record.advance(record.phase, ctx.runtime.clock(), reloads_done=done)


def reload_consumers(
    ctx: RotationContext, record: RotationRecord, journal: Journal, run: RunActions = all_at_once
) -> RotationRecord:
    """Run the reload actions for the new key; RotationIncomplete (the record says what failed, how often, and when
    the scheduler tries again) at the first failure, before anything is revoked. An action that already succeeded
    for this rotation's new key (`record.reloads_done`) is not run again, nor one an identical action of another
    credential stood in for in this tick (rotator/rotation/reload_tick.py). `run` runs them (in batches, gated by
    health checks, for rotator/rotation/rollout.py, whose failed check is a StepFailed: rolled back)."""
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    failure, record = run(ctx, record, journal, new.label)
    done = record.reloads_done
    if failure is not None:
        _failed(ctx, record, journal, failure, new.label)
    count = len(configured(ctx))
    now = ctx.runtime.clock()  # applications were told: the grace window counts from here (record.grace_from)
    reloaded = record.advance(Phase.RELOADED, now, waiting_on=None, reloads_done=done, grace_from=now)
    record = journal.save(reloaded, "reloaded.record")
    journal.emit(
        record,
        "reload",
        f"{count} reload action(s) ran: applications were told to load {new.label}",
        ctx.runtime.monotonic() - started,
    )
    return record


def _failed(ctx: RotationContext, record: RotationRecord, journal: Journal, failure: str, new_label: str) -> NoReturn:
    """Record a failed reload (how often in a row, when; `record` says what succeeded) and raise RotationIncomplete
    saying so."""
    name = ctx.cred.name
    now = ctx.runtime.clock()
    failed = record.advance(record.phase, now, reload_failures=record.reload_failures + 1, reload_failed_at=now)
    message = (
        f"{name}: {failure}. The new key {new_label} is current everywhere and the old key "
        f"{record.old_key_label} is still active: nothing was revoked. Fix the reload, then `rotator resume "
        f"{name}` runs the reload actions that have not succeeded for this key again, at once "
        f"({_retry_words(failed)}); or `rotator rollback {name}` puts the old key back"
    )
    journal.save(failed.advance(record.phase, now, waiting_on=message), "reload_failed.record")
    raise RotationIncomplete(message)


def _retry_words(failed: RotationRecord) -> str:
    """When the scheduler tries a failed reload again, in words (status shows them while it waits)."""
    when = reload_retry.next_retry(failed)
    if failed.emergency or when is None:
        return "the scheduler retries at its next tick: an emergency does not wait"
    after = format_duration(reload_retry.retry_delay(failed.reload_failures))
    return (
        f"failure {failed.reload_failures} in a row; the scheduler's next retry at {format_timestamp(when)}, "
        f"{after} after it"
    )


def not_now(ctx: RotationContext, record: RotationRecord) -> tuple[ExitCode, str] | None:
    """Why the reload step of `record` does not run in this run, with the exit code that says so; None: it runs.

    The scheduler waits out the backoff of a failed reload (rotator/rules/reload_retry.py). In a tick's first pass, a
    credential whose actions another credential shares stops here and is resumed in the second (reload_tick.py)."""
    name = ctx.cred.name
    wait = reload_retry.retry_wait(record, ctx.runtime.clock(), scheduled=ctx.scheduled)
    if wait is not None:
        return ExitCode.INCOMPLETE, (
            f"{name}: the reload failed {record.reload_failures} time(s) for the new key {record.new_key_label} (the "
            f"old key {record.old_key_label} is still active); next retry at {format_timestamp(wait)}. "
            f"`rotator status` says what failed; `rotator resume {name}` retries now"
        )
    tick = ctx.runtime.reload_tick
    if tick is not None and tick.defers(name):
        tick.defer(name, record.token)
        return ExitCode.OK, (
            f"{name}: {record.new_key_label} is current everywhere; its reload actions, shared with other credentials, "
            "run once every credential of this tick that shares them is promoted"
        )
    return None


def reload_back(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """In a rollback, once the old key is CURRENT again and before the new key is revoked: run the reload actions so
    applications that loaded the new key load the old one. RotationIncomplete when one fails: revoking the new key
    then would leave those applications with a dead key. As going forward, the record keeps the failures and the
    actions done for the old key (`roll_back` cleared them when it started), so a retry runs only the others."""
    label = record.old_key_label or "the old key"
    failure, done = run_all(ctx, record, journal, key_label=label, purpose="rollback", done=record.reloads_done)
    now = ctx.runtime.clock()
    if failure is None:
        if record.reload_failures:  # a retry that worked: what is left of the rollback does not wait on a backoff
            cleared = record.advance(record.phase, now, reload_failures=0, reload_failed_at=None, reloads_done=done)
            record = journal.save(cleared, "reloaded_back.record")
        return record
    name = ctx.cred.name
    failed = record.advance(
        record.phase, now, reload_failures=record.reload_failures + 1, reload_failed_at=now, reloads_done=done
    )
    message = (
        f"{failure}, so the new key {record.new_key_label} was NOT revoked (an application may still hold it). "
        f"Fix the reload, then `rotator resume {name}` runs the reload actions that have not succeeded for the old key "
        f"again, at once, and finishes the rollback ({_retry_words(failed)})"
    )
    waiting = f"{name}: rolling back: {message}"
    journal.save(failed.advance(record.phase, now, waiting_on=waiting), "reload_failed.record")
    raise RotationIncomplete(message)


def rollback_not_now(ctx: RotationContext, record: RotationRecord) -> str | None:
    """Why the scheduler does not retry the rollback of `record` in this run (its reload failed, and the backoff has
    not passed), or None. The old key is CURRENT again meanwhile; only the new key's revoke waits."""
    if record.phase is not Phase.ROLLING_BACK:
        return None
    wait = reload_retry.retry_wait(record, ctx.runtime.clock(), scheduled=ctx.scheduled)
    if wait is None:
        return None
    name = ctx.cred.name
    return (
        f"{name}: rolling back: the reload back to the old key {record.old_key_label} failed {record.reload_failures} "
        f"time(s); next retry at {format_timestamp(wait)}. `rotator status` says what failed; `rotator resume {name}` "
        "retries now"
    )


def run_all(
    ctx: RotationContext,
    record: RotationRecord,
    journal: Journal,
    *,
    key_label: str,
    purpose: str,
    done: Collection[str] = (),
    only: Collection[str] | None = None,
) -> tuple[str | None, tuple[str, ...]]:
    """Run each configured action in order, each result an event, skipping those in `done` (`action_key`s) and,
    with `only`, those not in it (another batch's); what the first failure was (or None), and the keys of the actions
    done for this key so far, in order."""
    actions = configured(ctx)
    secrets = key_values(ctx)
    keys = [action_key(store, action) for store, action in actions]
    runs = reload_retry.pending(keys, done)
    succeeded = [key for key in keys if key in done]
    tick = ctx.runtime.reload_tick if purpose == "rotation" else None
    for number, ((store, action), key, runs_now) in enumerate(zip(actions, keys, runs, strict=True), start=1):
        what = f"reload {number} of {len(actions)} ({store}: {action.describe()})"
        if only is not None and key not in only:
            continue
        if not runs_now:
            journal.emit(record, "reload", f"{what}: {_SKIPPED[purpose]}")
            continue
        facts = {
            "ROTATOR_CREDENTIAL": ctx.cred.name,
            "ROTATOR_STORE": store,
            "ROTATOR_KEY_ID": key_label,
            "ROTATOR_ROTATION": record.token,
            "ROTATOR_RELOAD_FOR": purpose,
        }
        if tick is None:
            result: ReloadResult | Run = _run_one(journal, action, facts, secrets)
        else:
            result = _run_in_tick(tick, journal, action, facts, secrets)
        if isinstance(result, Run):  # an identical action of another credential ran for this key in this tick
            said = f"{what}: not run again: it ran for {result.credential} in this tick, after this key was in place"
            journal.emit(record, "reload", said)
            succeeded.append(key)
            continue
        reached(f"reload.{store}")
        journal.emit(record, "reload", f"{what} ({format_duration(result.seconds, places=2)}): {result.describe()}")
        if not result.ok:
            return f"{what} failed: {result.describe()}", tuple(succeeded)
        succeeded.append(key)
    return None, tuple(succeeded)


_SKIPPED = {
    "rotation": "already succeeded for this key; not run again",
    "rollback": "its application holds the old key already (reloaded back, or never given the new key); not run",
}


def _run_one(journal: Journal, action: ReloadAction, facts: dict[str, str], secrets: list[str]) -> ReloadResult:
    from rotator.rotation.reload_runner import action_env, run_action

    journal.hold()  # renewed before each action: one action's timeout is well inside the lease
    return run_action(action, action_env(action, facts), secrets)


def _run_in_tick(
    tick: ReloadTick, journal: Journal, action: ReloadAction, facts: dict[str, str], secrets: list[str]
) -> ReloadResult | Run:
    """Run `action` in a scheduler tick, unless an identical action's run in this tick stands for it (then that run).
    Identical actions are held one at a time: one that is running is waited for, then judged."""
    same, credential, token = action_id(action), facts["ROTATOR_CREDENTIAL"], facts["ROTATOR_ROTATION"]
    with tick.running(same, journal.keepalive):
        shared = tick.stands_in(same, credential, token)
        if shared is not None:
            return shared
        started = tick.started()
        result = _run_one(journal, action, facts, secrets)
        tick.ran(same, Run(started, result.ok, credential))
        return result


def action_id(action: ReloadAction) -> str:
    """What makes two reload actions the same one (of two stores or two credentials): the same command in the same
    folder, or the same URL and method. A hash, so the record never holds a command or URL (which may carry a
    token)."""
    if action.kind == "command":
        what = ["command", list(action.command), str(action.cwd)]
    else:
        what = ["url", action.url, action.method]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def action_key(store: str, action: ReloadAction) -> str:
    """How the record names one configured action of a credential: its store and `action_id`."""
    return f"{store}:{action_id(action)}"


def shared_reloads(config: Config) -> set[str]:
    """The credentials with a reload action that another credential's targets have too (`action_id`)."""
    users: dict[str, set[str]] = {}
    for cred in config.credentials.values():
        for name in cred.targets:
            store = config.stores.get(name)
            for action in store.reload if store is not None else ():
                users.setdefault(action_id(action), set()).add(cred.name)
    return {name for names in users.values() if len(names) > 1 for name in names}


def key_values(ctx: RotationContext) -> list[str]:
    """Every key value a reload program could have read and printed: the pairs in the primary's stages."""
    values = []
    stored = [ctx.new, *(ctx.primary.read(stage) for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS))]
    for key in stored:
        if key is not None:
            values += [key.api_key, key.api_secret.reveal()]
    return values
