"""The commands that show: status (stores only), history (the record kept per credential) and sweep (keys at
Bluum that no store knows; with --revoke, the one that may revoke them after asking).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from rotator.cli.completion import credential_argument
from rotator.cli.render import history_lines, json_text, row_dict, status_table, sweep_line
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, fail, pass_settings
from rotator.cli.terminal import interactive
from rotator.core.errors import ConfigError, ExitCode, RotatorError, most_severe

if TYPE_CHECKING:
    from rotator.rotation.service import RotationService

__all__ = ["COMMANDS"]


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Show every credential's state.

    Environment, current key id, age, next due date, rotation stage, and what waits on whom. Exits 0 when every
    store could be read; otherwise with the most severe code of the rows that could not (2 or 5).
    """
    from rotator.rotation.runtime import Runtime
    from rotator.rotation.status import status as status_rows

    try:
        with Runtime(settings.load()) as runtime:  # stores only: no issuer, no client, no driver
            rows = status_rows(runtime)
    except RotatorError as exc:
        fail(exc)
    code = int(most_severe(ExitCode(row.exit_code) for row in rows))
    if as_json:
        click.echo(json_text([row_dict(row) for row in rows]))
        sys.exit(code)
    click.echo(status_table(rows))
    sys.exit(code)


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option("--revoke", is_flag=True, help="Revoke the orphans this tool made (their name says so).")
@click.option("--include-foreign", is_flag=True, help="With --revoke: also revoke orphans made by others.")
@click.option("--yes", is_flag=True, help="With --revoke: do not ask first (scripts; required without a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@pass_settings
def sweep(settings: Settings, revoke: bool, include_foreign: bool, yes: bool, as_json: bool) -> None:
    """Find keys at Bluum that no store knows.

    Lists active keys no store or rotation record knows (orphans), and credentials with more than two
    active keys. With --revoke, revokes the orphans this tool made, after showing them and asking (or with
    --yes). Keys are matched to stores by their public key, not by id lines, and a key any configured store
    holds in any stage is never revoked. Exits 0 when nothing is left to do, 4 when keys remain for a person.

    \b
    Examples:
      rotator sweep                      # list, change nothing
      rotator sweep --revoke             # list, ask, revoke what this tool made
      rotator sweep --revoke --yes       # the same, unattended
    """
    from dataclasses import asdict

    if include_foreign and not revoke:
        fail(ConfigError("--include-foreign only widens --revoke: add --revoke, or drop it. Nothing was changed"))
    with settings.service(quiet=True) as engine:
        try:
            only = None
            if revoke and not yes:
                only = _confirmed_orphans(engine, include_foreign)
            findings = engine.sweep(revoke=revoke and only != set(), include_foreign=include_foreign, only=only)
            from rotator.ops.alerts import publish_sweep

            publish_sweep(engine, findings)  # orphans left, to the notification sinks
        except RotatorError as exc:
            fail(exc)
    if as_json:
        click.echo(json_text([asdict(f) for f in findings]))
    elif not findings:
        click.echo("no orphan keys; no credential has more than two active keys")
    for finding in [] if as_json else findings:
        click.echo(sweep_line(finding))
    left = [f for f in findings if f.kind not in ("revoked", "cleared")]
    sys.exit(int(ExitCode.INCOMPLETE if left else ExitCode.OK))


def _confirmed_orphans(engine: RotationService, include_foreign: bool) -> set[str]:
    """At a terminal: show what --revoke would revoke and ask. Without one: refuse (revoking is for good)."""
    if not interactive():
        raise ConfigError(
            "sweep --revoke revokes keys for good, and there is no terminal to ask: add --yes to a script that "
            "means it, or run `rotator sweep` first to see the keys. Nothing was changed"
        )
    candidates = [
        f
        for f in engine.sweep(revoke=False)
        if f.kind == "orphan" and f.key_id and (include_foreign or "made by this tool" in f.message)
    ]
    if not candidates:
        return set()
    for finding in candidates:
        click.echo(f"  {finding.key_id}  ({finding.credential}: {finding.message})")
    if not click.confirm(f"Revoke these {len(candidates)} key(s) at Bluum? This cannot be undone", default=False):
        return set()
    return {f.key_id for f in candidates if f.key_id}


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list.")
@pass_settings
def history(settings: Settings, name: str, as_json: bool) -> None:
    """Show what the rotations of NAME did: when, which keys, why, and who ran them.

    An append-only record kept per credential ([history] dir in rotator.toml, default `rotator-history`
    beside it), for as long as [history] keep says (default 400d). It holds no secret.
    """
    with settings.app(quiet=True) as app:
        try:
            app.config.credential(name)
            found = app.history.read_checked(name)
        except RotatorError as exc:
            fail(exc)
    history = app.history
    entries = found.entries
    report = found.damage_report(history.path(name))
    if report is not None:  # on stderr, so `--json` stays one JSON document on stdout
        click.echo(report, err=True)
    if as_json:
        click.echo(json_text(entries))
        sys.exit(0)
    if not entries:
        click.echo(f"{name}: no history yet (kept in {history.path(name)})")
        sys.exit(0)
    for line in history_lines(entries):
        click.echo(line)
    sys.exit(0)


COMMANDS = (status, sweep, history)
