"""The unattended commands: run-due (one scheduler tick, for cron) and daemon (the tick on an interval).

A module of their own so that other commands and `rotator --help` do not import them (the `rotator` group in
`rotator.cli.commands` loads a command's module when that command runs).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli.render import finish, print_event
from rotator.cli.rotation_commands import progress
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, fail, pass_settings
from rotator.cli.terminal import PROMPT
from rotator.core.errors import RotatorError

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.daemon.metrics import Telemetry
    from rotator.ops.app import App

__all__ = ["daemon", "run_due"]


@click.command("run-due", epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option(
    "--metrics-textfile",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="After the tick, write Prometheus metrics (key age, next due, overdue, exit codes, rotations, steps, Bluum "
    "requests, rate budget, notifications) to PATH, e.g. /var/lib/node_exporter/textfile_collector/bluum_rotator.prom.",
)
@pass_settings
def run_due(settings: Settings, metrics_textfile: Path | None) -> None:
    """One scheduler tick, for cron.

    Resumes unfinished rotations, revokes old keys whose grace window has passed, and rotates every
    credential that is due. Never waits on a person: what needs one is reported, with exit 4. Then tells the
    notification sinks about overdue keys, stuck rotations and Bluum 5xx/429 ([alerts] in rotator.toml).
    """
    from rotator.ops.tick import run_tick

    with settings.app() as app:
        telemetry = _textfile_telemetry(app, metrics_textfile)
        total = len(app.config.credentials)
        PROMPT.many = total > 1
        outcomes = run_tick(app.service, telemetry=telemetry, on_done=progress(settings, total))
        if telemetry is not None and metrics_textfile is not None:
            try:
                telemetry.write_textfile(metrics_textfile)
            except RotatorError as exc:  # after the tick: its outcomes are still what the exit code says
                import logging

                logging.getLogger("rotator.metrics").error("metrics textfile not written: %s", exc)
                click.echo(f"error: {exc} (the tick itself ran; its outcomes follow)", err=True)
    finish(outcomes)


def _textfile_telemetry(app: App, path: Path | None) -> Telemetry | None:
    """The metrics `run-due --metrics-textfile` writes, following `app`; None without the flag (nothing to record
    for). The file's folder is checked first: refused before the tick, exit 2, nothing changed."""
    if path is None:
        return None
    from rotator.daemon.metrics import Telemetry, check_textfile

    check_textfile(path)
    telemetry = Telemetry()
    telemetry.attach(app)
    return telemetry


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option(
    "--every",
    default="15m",
    show_default=True,
    metavar="DURATION",
    help="Time from the end of one tick to the start of the next (whole seconds, at least 1s).",
)
@click.option(
    "--jitter",
    metavar="DURATION",
    help="Up to this much more each time, drawn at random, so daemons started together drift apart. "
    "Default: a tenth of --every.",
)
@click.option(
    "--metrics-listen",
    metavar="HOST:PORT",
    help="Serve /metrics (Prometheus) and /healthz there. :PORT means 127.0.0.1; a container needs 0.0.0.0:PORT.",
)
@click.option(
    "--heartbeat-file",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rewrite PATH (one JSON line; its mtime is the beat) at start and after every tick.",
)
@pass_settings
def daemon(
    settings: Settings, every: str, jitter: str | None, metrics_listen: str | None, heartbeat_file: Path | None
) -> None:
    """Run the scheduler tick (what `run-due` does) every interval, until SIGTERM or SIGINT.

    The first tick runs at start. rotator.toml is read again before each tick; an edit that does not parse is
    reported and the last good configuration stays in effect. SIGTERM/SIGINT: each rotation in hand stops after its
    current step, then exit 0; a second signal ends the process at once (resume finishes later). Two daemons on the
    same stores never rotate one credential twice. Exit 2 when the configuration or a flag is wrong at start.
    With a [leak_reports] table, a signed POST to /leak-report on --metrics-listen starts an emergency rotation of
    the credential whose current key it names (docs/leak-reports.md).

    \b
    Examples:
      rotator daemon                                          # every 15m, up to 90s of jitter
      rotator daemon --every 5m --metrics-listen 127.0.0.1:9464 --heartbeat-file /run/bluum-rotator/heartbeat
    """
    from rotator.daemon.health import parse_listen
    from rotator.daemon.loop import Daemon, parse_cadence

    try:
        cadence = parse_cadence(every, jitter)
        listen = parse_listen(metrics_listen) if metrics_listen else None
        runner = Daemon(
            load=settings.load,
            build=partial(_daemon_service, settings),
            cadence=cadence,
            say=None if settings.quiet else click.echo,
            warn=partial(click.echo, err=True),
            heartbeat_file=heartbeat_file,
            listen=listen,
        )
        PROMPT.many = True  # several credentials per tick: step lines name theirs
        code = runner.run()
    except RotatorError as exc:
        fail(exc)
    sys.exit(code)


def _daemon_service(settings: Settings, config: Config) -> App:
    """The daemon's app for `config` (`rotator.ops.app`): step lines to stdout unless -q."""
    from rotator.ops.app import assemble

    return assemble(config, echo=None if settings.quiet else print_event)
