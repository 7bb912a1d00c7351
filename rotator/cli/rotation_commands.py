"""The commands that change keys: rotate, resume, enroll, deploy, step, rollback, and verify (which asks Bluum).

Each opens the rotation service through `Settings.service` (the `rotator` group assembles it), runs its action for
each credential, several at once where [fleet] allows, and ends with the most severe exit code of theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import click

from rotator.cli.completion import complete_step, credential_argument
from rotator.cli.render import finish
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, fail, pass_settings
from rotator.cli.terminal import PROMPT, confirm_revoked
from rotator.core.errors import ConfigError, RotatorError

if TYPE_CHECKING:
    from rotator.core.model import StoredKey
    from rotator.rotation.driver import Outcome
    from rotator.rotation.service import RotationService

__all__ = ["COMMANDS", "each", "guarded", "progress"]


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument(required=False)
@click.option("--all", "all_", is_flag=True, help="Rotate every credential whose keys Bluum's API mints.")
@click.option("--emergency", is_flag=True, help="Revoke the old key as soon as the new one is verified (no grace).")
@click.option("--reason", metavar="TEXT", help="Why (required with --emergency); kept in the rotation record.")
@click.option("--dry-run", is_flag=True, help="Check everything a rotation needs and print the plan; change nothing.")
@click.option(
    "--new-key-file",
    metavar="PATH",
    help="For issuer=manual: JSON {api_key, api_secret, key_id} made in Bluum's dashboard; - reads stdin.",
)
@pass_settings
def rotate(
    settings: Settings,
    name: str | None,
    all_: bool,
    emergency: bool,
    reason: str | None,
    dry_run: bool,
    new_key_file: str | None,
) -> None:
    """Rotate one credential, or --all.

    Generates a new key, deploys it to every store, verifies it against Bluum, and revokes the old key
    after the grace window. With a grace window the old key stays active after the rotation;
    `rotator resume` (or the next scheduled run) revokes it when the window has passed.

    \b
    Examples:
      rotator rotate trading --dry-run        # every check, then the plan; nothing changed
      rotator rotate trading                  # the normal rotation, with its grace window
      rotator rotate trading --emergency --reason "secret pasted in a ticket"
      rotator rotate tenant --new-key-file new-tenant.json   # a pair made in the dashboard
    """
    if bool(name) == all_:
        fail(ConfigError("give exactly one of NAME or --all (see `rotator status` for the names)"))
    with settings.service() as engine:
        new_pair = _new_pair(new_key_file, name)
        names = [name] if name else [c.name for c in engine.config.credentials.values() if engine.mints(c.name)]
        action = partial(
            engine.rotate,
            emergency=emergency,
            reason=reason,
            dry_run=dry_run,
            new_pair=new_pair,
            confirm_revoked=confirm_revoked,
        )
        outcomes = each(settings, engine, names, action)
    finish(outcomes)


def _new_pair(path: str | None, name: str | None) -> StoredKey | None:
    """The pair of --new-key-file, when given (`rotator.cli.pair_file`, imported only then)."""
    if path is None:
        return None
    from rotator.cli.pair_file import read_new_pair

    return read_new_pair(path, name)


def each(
    settings: Settings, engine: RotationService, names: list[str], action: Callable[[str], Outcome]
) -> list[Outcome]:
    """Run `action` for each name, several at once ([fleet] in rotator.toml); each error is that name's outcome."""
    from rotator.ops.fleet import run_each

    PROMPT.many = len(names) > 1
    return run_each(engine, names, action, on_done=progress(settings, len(names)))


def progress(settings: Settings, total: int) -> Callable[[Outcome], None] | None:
    """A line every 10 s on how far a fleet is (not with -q, nor for one credential)."""
    from rotator.ops.fleet import FleetProgress

    return None if settings.quiet or total < 2 else FleetProgress(total, click.echo)


def guarded(name: str, action: Callable[[], Outcome]) -> Outcome:
    """Run one credential's action; its error becomes its outcome so --all goes on with the others."""
    from rotator.rotation.driver import Outcome

    try:
        return action()
    except RotatorError as exc:
        return Outcome(name, exc.exit_code, f"error: {exc}")


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument(required=False)
@click.option("--now", is_flag=True, help="Revoke the old key now instead of waiting for the grace window to end.")
@click.option(
    "--revoke-anyway",
    is_flag=True,
    help="Revoke the old key now although consumers are not on the new key; in a rollback, the new key although "
    "consumers are not back on the old one (they break; needs NAME and --reason).",
)
@click.option("--reason", metavar="TEXT", help="Why (required with --revoke-anyway); kept in the rotation record.")
@pass_settings
def resume(settings: Settings, name: str | None, now: bool, revoke_anyway: bool, reason: str | None) -> None:
    """Finish (or roll back) unfinished rotations.

    Picks up rotations left incomplete by a crash, a grace window, consumers not yet on the new key or an
    operator step. Without NAME, every credential is checked. Safe to run at any time, from any machine.
    """
    if revoke_anyway and not (name and reason and reason.strip()):
        fail(ConfigError("--revoke-anyway needs NAME and --reason TEXT (the reason goes into the rotation record)"))
    if reason is not None and not revoke_anyway:
        fail(ConfigError("--reason goes with --revoke-anyway only"))
    with settings.service() as engine:
        names = [name] if name else list(engine.config.credentials)
        overriding = reason if revoke_anyway else None
        action = partial(engine.resume, skip_grace=now, confirm_revoked=confirm_revoked, revoke_anyway=overriding)
        outcomes = each(settings, engine, names, action)
    finish(outcomes)


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@click.option(
    "--new-key-file",
    metavar="PATH",
    help="For issuer=manual: the first pair, made in Bluum's dashboard (JSON); - reads stdin.",
)
@pass_settings
def enroll(settings: Settings, name: str, new_key_file: str | None) -> None:
    """Give a credential its first key.

    For issuer bluum, mints it through Bluum's API; for issuer manual, takes the pair made in the dashboard and
    checks it against Bluum first. Then stores it, waits until Bluum accepts it, and writes it to every store
    (creating a dotenv file that does not exist yet, 0600, or the Vault secret). Refused if a store already holds a
    key.

    \b
    Examples:
      rotator enroll trading                              # mint the first investor key
      rotator enroll tenant --new-key-file first.json     # a tenant pair made in the dashboard
    """
    with settings.service() as engine:
        new_pair = _new_pair(new_key_file, name)
        outcome = guarded(name, partial(engine.enroll, name, new_pair=new_pair))
    finish([outcome])


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@pass_settings
def deploy(settings: Settings, name: str) -> None:
    """Copy a credential's current key into stores that hold none yet.

    For a store added to `also_deploy_to` after the credential was enrolled. The key the primary store holds is
    checked first (its environment, and Bluum must accept it), under the credential's lease; a store that holds
    another key is never overwritten (exit 2, it is named, nothing changed). Prints what it copied where.

    \b
    Examples:
      rotator deploy trading                              # after adding a store to also_deploy_to
    """
    with settings.service() as engine:
        outcome = guarded(name, partial(engine.deploy, name))
    finish([outcome])


@click.command("step", epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@click.argument("step_name", metavar="STEP", shell_complete=complete_step)
@click.option("--token", required=True, metavar="TOKEN", help="The rotation's token (1-64 letters, digits, - or _).")
@click.option(
    "--new-key-file",
    metavar="PATH",
    help="For issuer=manual, with STEP create: the pair made in Bluum's dashboard (JSON); - reads stdin.",
)
@pass_settings
def step(settings: Settings, name: str, step_name: str, token: str, new_key_file: str | None) -> None:
    """Advance rotation TOKEN of NAME by one step, for an orchestrator.

    STEP is create, stage, accept, promote, reload (only with reload actions), confirm, revoke or clear,
    or AWS Secrets Manager's createSecret, setSecret, testSecret, finishSecret (the first four, in order).
    `create` starts the rotation under TOKEN. A step already done does nothing and exits 0; a step not
    reached yet is refused (exit 2). What comes after promote is also done by `rotator resume` or the
    next `run-due`.
    """
    with settings.service() as engine:
        new_pair = _new_pair(new_key_file, name)
        outcome = guarded(name, partial(engine.step, name, step_name, token=token, new_pair=new_pair))
    finish([outcome])


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@pass_settings
def rollback(settings: Settings, name: str) -> None:
    """Undo a credential's last rotation.

    The old key becomes current again in every store and the new key is revoked. Possible until the
    old key is revoked at Bluum; after that there is nothing to go back to.
    """
    with settings.service() as engine:
        outcome = guarded(name, lambda: engine.rollback(name))
    finish([outcome])


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument(required=False)
@click.option("--all", "all_", is_flag=True, help="Check every credential.")
@pass_settings
def verify(settings: Settings, name: str | None, all_: bool) -> None:
    """Check a credential's current key everywhere.

    Every store of NAME must hold the same current key, and Bluum must accept it: exit 0. Exit 4 when the stores
    disagree or Bluum rejects the key (a person must act); exit 5 when Bluum could not be asked (try again).
    """
    if bool(name) == all_:
        fail(ConfigError("give exactly one of NAME or --all (see `rotator status` for the names)"))
    with settings.service() as engine:
        names = [name] if name else list(engine.config.credentials)
        outcomes = each(settings, engine, names, engine.verify)
    finish(outcomes)


COMMANDS = (rotate, resume, enroll, deploy, step, rollback, verify)
"""In the order `rotator --help` has always listed them among the others (click sorts them by name)."""
