"""The commands that need no configuration: demo (a real rotation against the in-process simulator) and simulator
(the local Bluum API simulator as a server).

A module of their own so that other commands and `rotator --help` do not import them (the `rotator` group in
`rotator.cli.commands` loads a command's module when that command runs).
"""

from __future__ import annotations

import sys

import click

from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, fail, json_lines, log_level, pass_settings
from rotator.core.errors import RotatorError

__all__ = ["demo", "simulator"]


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@pass_settings
@click.pass_context
def demo(ctx: click.Context, settings: Settings) -> None:
    """Show a real rotation against the local simulator.

    Every step with its timing, the final status, and the old key's 401. Prints no secret.
    """
    from rotator.cli.demo import run_demo
    from rotator.core.logs import configure_logging

    level = log_level(settings.verbose, settings.quiet, show=True)
    configure_logging(level, json_lines=json_lines(settings.log_format, show=True))
    group = ctx.find_root().command  # the `rotator` group: the demo runs its commands as a person would

    def run_command(args: list[str]) -> int:
        try:  # `obj`: the commands run inside the demo keep the demo's logging
            group.main(args=args, prog_name="rotator", standalone_mode=False, obj=settings)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    sys.exit(run_demo(run_command))


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback only.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks one.")
@click.option(
    "--environment",
    type=click.Choice(["sandbox", "production", "TEST", "PRODUCTION"]),
    help="Play one of Bluum's hosts: only keys of this environment work (rotator.toml's sandbox is Bluum's TEST). "
    "Default: both.",
)
def simulator(host: str, port: int, environment: str | None) -> None:
    """Run the local Bluum API simulator.

    Serves until SIGINT or SIGTERM.

    It prints its base URL, then serves the documented Bluum endpoints plus a /_sim control plane.
    """
    from rotator.simulator.server import run_until_signalled

    try:
        run_until_signalled(host=host, port=port, serves=environment)
    except RotatorError as exc:
        fail(exc)
