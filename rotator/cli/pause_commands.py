"""`rotator pause` and `rotator unpause`: hold back (and let go) the schedulers' rotations of one credential.

The pause is kept in the credential's ledger (`rotator.rules.pause` says why), so every runner on every host sees it.
"""

from __future__ import annotations

import click

from rotator.cli.completion import credential_argument
from rotator.cli.render import finish
from rotator.cli.rotation_commands import guarded
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, pass_settings

__all__ = ["COMMANDS"]


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@click.option(
    "--until",
    metavar="TIME",
    help="When the pause ends by itself: an ISO 8601 time (UTC unless it names a zone) or a duration from now "
    "(6h, 2d). Default: until `rotator unpause`.",
)
@click.option("--reason", metavar="TEXT", help="Why (required): shown in status, kept in the history.")
@pass_settings
def pause(settings: Settings, name: str, until: str | None, reason: str | None) -> None:
    """Stop the schedulers from starting rotations of NAME.

    run-due, the daemon and the Lambda tick start no new rotation of a paused credential; an unfinished rotation is
    still finished, a person's `rotator rotate` and an emergency still run (and say it is paused), and an overdue
    paused key still alerts. The pause is kept in the credential's ledger, where every runner on every host reads it.
    Exit 2 (nothing changed) without a reason or with a time not in the future; 3 while a rotation holds the lease.

    \b
    Examples:
      rotator pause trading --reason "quarter-end freeze" --until 2026-12-31T18:00:00Z
      rotator pause trading --reason "partner migrates their config" --until 6h
    """
    with settings.service() as engine:
        outcome = guarded(name, lambda: engine.pause(name, reason=reason, until=until))
    finish([outcome])


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@pass_settings
def unpause(settings: Settings, name: str) -> None:
    """Let the schedulers rotate NAME again.

    Ends the pause `rotator pause` set (exit 0 also when there was none); the next tick rotates NAME if it is due.
    """
    with settings.service() as engine:
        outcome = guarded(name, lambda: engine.unpause(name))
    finish([outcome])


COMMANDS = (pause, unpause)
