"""The `rotator` command line. Each command imports what it needs when it runs, so `--help` stays fast."""

from __future__ import annotations

import sys

import click

from rotator.errors import ExitCode

EXIT_CODES_HELP = f"""\b
Exit codes (the same for every command):
  {ExitCode.OK.value}  success
  {ExitCode.ROLLED_BACK.value}  rotation failed and was rolled back (old key still current)
  {ExitCode.BAD_INPUT.value}  bad input or configuration (nothing changed)
  {ExitCode.IN_PROGRESS.value}  another rotation of this credential is in progress (nothing changed)
  {ExitCode.INCOMPLETE.value}  left incomplete: needs `rotator resume` or a person
"""


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bluum-rotator")
def cli() -> None:
    """Rotate Bluum Finance API credentials without downtime: generate, deploy, verify, revoke."""


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback only.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks one.")
def simulator(host: str, port: int) -> None:
    """Run the local Bluum API simulator until SIGINT or SIGTERM.

    It prints its base URL, then serves the documented Bluum endpoints plus a /_sim control plane.
    """
    from rotator.simulator.server import run_until_signalled

    run_until_signalled(host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="rotator")
    sys.exit(0)
