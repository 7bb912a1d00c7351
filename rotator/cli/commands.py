"""The `rotator` command line: the group, its global options, and where each command is defined.

A command's module is imported only when that command runs (`rotator.cli.lazy_group`), and each command imports
what it needs when it runs, so `--help` and `status` stay fast. Progress goes to stdout, logs to stderr (JSON lines
when stderr is not a terminal), errors to stderr as one `error:` line that says what to do. The exit code is the
contract with cron and scripts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import click

from rotator.cli.lazy_group import LazyCommand, LazyGroup
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, json_lines, log_level
from rotator.cli.settings import fail as _fail
from rotator.core.errors import RotatorError

if TYPE_CHECKING:
    from rotator.ops.app import App

_ROTATION = "rotator.cli.rotation_commands"
_VIEW = "rotator.cli.view_commands"
_TICK = "rotator.cli.tick_commands"
_LOCAL = "rotator.cli.local_commands"
_PAUSE = "rotator.cli.pause_commands"
_PLAN = "rotator.cli.plan_commands"

COMMANDS = {
    "daemon": LazyCommand(
        _TICK, "daemon", "Run the scheduler tick (what `run-due` does) every interval, until SIGTERM or SIGINT."
    ),
    "demo": LazyCommand(_LOCAL, "demo", "Show a real rotation against the local simulator."),
    "deploy": LazyCommand(_ROTATION, "deploy", "Copy a credential's current key into stores that hold none yet."),
    "enroll": LazyCommand(_ROTATION, "enroll", "Give a credential its first key."),
    "history": LazyCommand(
        _VIEW, "history", "Show what the rotations of NAME did: when, which keys, why, and who ran them."
    ),
    "pause": LazyCommand(_PAUSE, "pause", "Stop the schedulers from starting rotations of NAME."),
    "plan": LazyCommand(_PLAN, "plan", "Check everything a rotation will need, changing nothing."),
    "resume": LazyCommand(_ROTATION, "resume", "Finish (or roll back) unfinished rotations."),
    "rollback": LazyCommand(_ROTATION, "rollback", "Undo a credential's last rotation."),
    "rotate": LazyCommand(_ROTATION, "rotate", "Rotate one credential, or --all."),
    "run-due": LazyCommand(_TICK, "run_due", "One scheduler tick, for cron."),
    "simulator": LazyCommand(_LOCAL, "simulator", "Run the local Bluum API simulator."),
    "status": LazyCommand(_VIEW, "status", "Show every credential's state."),
    "step": LazyCommand(_ROTATION, "step", "Advance rotation TOKEN of NAME by one step, for an orchestrator."),
    "sweep": LazyCommand(_VIEW, "sweep", "Find keys at Bluum that no store knows."),
    "unpause": LazyCommand(_PAUSE, "unpause", "Let the schedulers rotate NAME again."),
    "verify": LazyCommand(_ROTATION, "verify", "Check a credential's current key everywhere."),
}
"""Every command, by the module and attribute that define it, with the first paragraph of its help (what `--help`
lists; tests/integration/test_cli_lazy_commands.py proves each equals the command's own)."""


@click.group(cls=LazyGroup, lazy=COMMANDS, epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.version_option(package_name="bluum-rotator")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="rotator.toml to use. Default: $ROTATOR_CONFIG, then ./rotator.toml.",
)
@click.option("-v", "--verbose", count=True, help="Log more: -v info, -vv debug (to stderr).")
@click.option("-q", "--quiet", is_flag=True, help="Print only each credential's outcome and errors: no step lines.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="Log line format; auto is text on a terminal, JSON lines otherwise.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool, log_format: str) -> None:
    """Rotate Bluum Finance API credentials without downtime: generate, deploy, verify, revoke.

    The old and new keys overlap until the new one is verified against Bluum and deployed everywhere;
    if verification fails, the old key is restored. A crashed rotation is finished by `rotator resume`.
    Global options may also follow the command (`rotator status --config PATH`).

    \b
    Examples:
      rotator status                                   # every credential, what waits on whom
      rotator rotate trading --dry-run                 # the plan, nothing changed
      rotator rotate trading --emergency --reason "key in a ticket"
      rotator run-due                                  # the cron tick
    """
    from rotator.core.logs import configure_logging

    if not isinstance(ctx.obj, Settings):  # a command the demo runs inside itself keeps the demo's logging
        configure_logging(log_level(verbose, quiet), json_lines=json_lines(log_format))
    ctx.obj = Settings(config_path, verbose, log_format, quiet)
    ctx.obj.opener = partial(_app, ctx.obj)


@contextmanager
def _app(settings: Settings, *, quiet: bool = False) -> Iterator[App]:
    """Load the config and assemble the rotation service and its bus (`rotator.ops.app`); any RotatorError becomes
    its message and exit code.

    Events go to the log, the history, the notification sinks and, unless `quiet`, to stdout as one line per step.
    """
    from rotator.cli.render import print_event
    from rotator.ops.app import assemble

    try:
        config = settings.load()
        with assemble(config, echo=None if quiet or settings.quiet else print_event) as app:
            yield app
    except RotatorError as exc:
        _fail(exc)


GLOBAL_VALUE_OPTIONS = ("--config", "--log-format")
GLOBAL_FLAGS = ("-v", "-vv", "-vvv", "--verbose", "-q", "--quiet")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Global options written after the command (`rotator status --config x.toml`) move in front of it, where
    click reads them: people type them where they think of them."""
    commands = set(COMMANDS)
    position = next((i for i, arg in enumerate(argv) if arg in commands), None)
    if position is None:
        return argv
    head, tail = argv[:position], argv[position:]
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest += tail[i:]
            break
        if arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(tail):
            moved += tail[i : i + 2]
            i += 2
            continue
        if arg.startswith(tuple(f"{name}=" for name in GLOBAL_VALUE_OPTIONS)) or arg in GLOBAL_FLAGS:
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return [*head, *moved, *rest]


def hoist_completion_words(environ: MutableMapping[str, str]) -> None:
    """The same for the line a shell asks to complete (`rotator rollback --config x.toml tr<TAB>`): click reads it
    from COMP_WORDS, not argv. The word being completed stays where it is; only the words before it move, so
    COMP_CWORD still points at it."""
    import shlex

    try:
        words = shlex.split(environ.get("COMP_WORDS", ""))
        cword = int(environ.get("COMP_CWORD", ""))
    except ValueError:
        return  # click reports a line it cannot read its own way
    if 1 <= cword <= len(words):
        environ["COMP_WORDS"] = shlex.join([*words[:1], *hoist_global_options(words[1:cword]), *words[cword:]])


def main() -> None:
    """Console-script entry point."""
    if "_ROTATOR_COMPLETE" in os.environ:
        hoist_completion_words(os.environ)
    cli(args=hoist_global_options(sys.argv[1:]), prog_name="rotator")
