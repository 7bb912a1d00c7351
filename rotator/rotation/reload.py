"""The reload step: after the new key is CURRENT in every target, the targets' reload actions make the applications
that read them load it; a rollback that may have found them holding the new key runs them again for the old one.

Why a step of its own, before confirm: an application that holds its key in memory keeps the old key until it is
restarted, and the old key dies when the grace window ends. Running the actions before confirm means the grace
window starts only once applications hold the new key, and confirm then checks once more that every target still
shows it (a reload action that rewrote a target is caught there).

A failed action stops the rotation where it is (DEPLOYED, with the failure in `waiting_on` for `rotator status`):
nothing is revoked, `rotator resume` runs every action again (actions must be safe to repeat; a reload is), and
`rotator rollback` puts the old key back. Each action's result goes to the history as an event; what a program
printed is kept only as far as rotator/rotation/reload_runner.py judges it safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.durations import format_duration
from rotator.core.errors import RotationIncomplete
from rotator.core.faultpoints import reached
from rotator.core.model import Stage
from rotator.rotation.context import Journal, RotationContext
from rotator.rules.record import Phase, RotationRecord

if TYPE_CHECKING:
    from rotator.config.reloads import ReloadAction


def configured(ctx: RotationContext) -> list[tuple[str, ReloadAction]]:
    """The reload actions of the credential's targets, primary first, each with its store's name."""
    stores = ctx.runtime.config.stores
    return [(name, action) for name in ctx.cred.targets if name in stores for action in stores[name].reload]


def refuse_unrunnable(ctx: RotationContext) -> None:
    """ConfigError (exit 2, before anything is created) naming every reload command whose program cannot be started,
    and the fix: otherwise the rotation would stop half-way, after the new key was deployed, at every run."""
    from rotator.core.errors import ConfigError
    from rotator.rotation.reload_check import command_problem

    problems = [
        f"the reload command of store {store!r} ({action.describe()}) cannot run: {problem}"
        for store, action in configured(ctx)
        if (problem := command_problem(action)) is not None
    ]
    if problems:
        stores = sorted({store for store, action in configured(ctx) if command_problem(action) is not None})
        tables = ", ".join(f"[stores.{store}]" for store in stores)
        raise ConfigError(
            f"{ctx.cred.name}: " + "; ".join(problems) + f". Fix `reload` in {tables} of rotator.toml (the program's "
            "full path, or install it on this host), then try again. Nothing was changed"
        )


def planned(ctx: RotationContext) -> str | None:
    """The reload step of the dry-run plan, in words; None when no target has reload actions."""
    actions = configured(ctx)
    if not actions:
        return None
    listed = "; ".join(f"{store}: {action.describe()}" for store, action in actions)
    return f"run the reload actions, in order, each within its timeout ({listed}); a failure stops before any revoke"


def reload_consumers(ctx: RotationContext, record: RotationRecord, journal: Journal) -> RotationRecord:
    """Run every reload action for the new key; RotationIncomplete (the record says what failed) at the first
    failure, before anything is revoked."""
    new = ctx.new_key(record)
    started = ctx.runtime.monotonic()
    failure = run_all(ctx, record, journal, key_label=new.label, purpose="rotation")
    if failure is not None:
        name = ctx.cred.name
        message = (
            f"{name}: {failure}. The new key {new.label} is current everywhere and the old key "
            f"{record.old_key_label} is still active: nothing was revoked. Fix the reload, then `rotator resume "
            f"{name}` runs the reload actions again; or `rotator rollback {name}` puts the old key back"
        )
        journal.save(record.advance(record.phase, ctx.runtime.clock(), waiting_on=message), "reload_failed.record")
        raise RotationIncomplete(message)
    count = len(configured(ctx))
    record = journal.save(record.advance(Phase.RELOADED, ctx.runtime.clock(), waiting_on=None), "reloaded.record")
    journal.emit(
        record,
        "reload",
        f"{count} reload action(s) ran: applications were told to load {new.label}",
        ctx.runtime.monotonic() - started,
    )
    return record


def reload_back(ctx: RotationContext, record: RotationRecord, journal: Journal) -> None:
    """In a rollback, once the old key is CURRENT again and before the new key is revoked: run the reload actions so
    applications that loaded the new key load the old one. RotationIncomplete when one fails: revoking the new key
    then would leave those applications with a dead key."""
    failure = run_all(ctx, record, journal, key_label=record.old_key_label or "the old key", purpose="rollback")
    if failure is not None:
        name = ctx.cred.name
        message = (
            f"{failure}, so the new key {record.new_key_label} was NOT revoked (an application may still hold it). "
            f"Fix the reload, then `rotator resume {name}` finishes the rollback"
        )
        waiting = f"{name}: rolling back: {message}"
        journal.save(record.advance(record.phase, ctx.runtime.clock(), waiting_on=waiting), "reload_failed.record")
        raise RotationIncomplete(message)


def run_all(
    ctx: RotationContext, record: RotationRecord, journal: Journal, *, key_label: str, purpose: str
) -> str | None:
    """Run each configured action in order, each result an event; what the first failure was, or None."""
    from rotator.rotation.reload_runner import action_env, run_action

    actions = configured(ctx)
    secrets = _key_values(ctx)
    for number, (store, action) in enumerate(actions, start=1):
        journal.hold()  # renewed before each action: one action's timeout is well inside the lease
        facts = {
            "ROTATOR_CREDENTIAL": ctx.cred.name,
            "ROTATOR_STORE": store,
            "ROTATOR_KEY_ID": key_label,
            "ROTATOR_ROTATION": record.token,
            "ROTATOR_RELOAD_FOR": purpose,
        }
        result = run_action(action, action_env(action, facts), secrets)
        reached(f"reload.{store}")
        what = f"reload {number} of {len(actions)} ({store}: {action.describe()})"
        journal.emit(record, "reload", f"{what} ({format_duration(result.seconds, places=2)}): {result.describe()}")
        if not result.ok:
            return f"{what} failed: {result.describe()}"
    return None


def _key_values(ctx: RotationContext) -> list[str]:
    """Every key value a reload program could have read and printed: the pairs in the primary's stages."""
    values = []
    stored = [ctx.new, *(ctx.primary.read(stage) for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS))]
    for key in stored:
        if key is not None:
            values += [key.api_key, key.api_secret.reveal()]
    return values
