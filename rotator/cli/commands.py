"""The `rotator` command line. Each command imports what it needs when it runs, so `--help` stays fast.

Progress goes to stdout, logs to stderr (JSON lines when stderr is not a terminal), errors to stderr as
one `error:` line that says what to do. The exit code is the contract with cron and scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli import rotation_commands, view_commands
from rotator.cli.render import finish as _finish
from rotator.cli.render import print_event as _print_event
from rotator.cli.rotation_commands import progress as _progress
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, pass_settings
from rotator.cli.settings import fail as _fail
from rotator.cli.terminal import PROMPT as _PROMPT
from rotator.core.errors import RotatorError

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.daemon.metrics import Telemetry
    from rotator.ops.app import App


@click.group(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
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
        configure_logging(_log_level(verbose, quiet), json_lines=_json_lines(log_format))
    ctx.obj = Settings(config_path, verbose, log_format, quiet)
    ctx.obj.opener = partial(_app, ctx.obj)


def _log_level(verbose: int, quiet: bool, *, show: bool = False) -> int:
    """-q: warnings only. Otherwise info when nobody watches stderr (cron keeps a JSON record of every call and
    step), warnings at a terminal (the step lines already say what happens); -v info, -vv debug. A `show` (the
    demo) is for a person wherever its output goes (`make demo 2>&1 | cat`): warnings only unless -v."""
    import logging  # not at the top: `rotator --help` needs none of it

    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    if quiet or show or sys.stderr.isatty():
        return logging.WARNING
    return logging.INFO


def _json_lines(log_format: str) -> bool | None:
    """--log-format: None lets the stream decide (JSON unless a terminal)."""
    return None if log_format == "auto" else log_format == "json"


@contextmanager
def _app(settings: Settings, *, quiet: bool = False) -> Iterator[App]:
    """Load the config and assemble the rotation service and its bus (`rotator.ops.app`); any RotatorError becomes
    its message and exit code.

    Events go to the log, the history, the notification sinks and, unless `quiet`, to stdout as one line per step.
    """
    from rotator.ops.app import assemble

    try:
        config = settings.load()
        with assemble(config, echo=None if quiet or settings.quiet else _print_event) as app:
            yield app
    except RotatorError as exc:
        _fail(exc)


@cli.command("run-due", epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
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

    with _app(settings) as app:
        telemetry = _textfile_telemetry(app, metrics_textfile)
        total = len(app.config.credentials)
        _PROMPT.many = total > 1
        outcomes = run_tick(app.service, telemetry=telemetry, on_done=_progress(settings, total))
        if telemetry is not None and metrics_textfile is not None:
            try:
                telemetry.write_textfile(metrics_textfile)
            except RotatorError as exc:  # after the tick: its outcomes are still what the exit code says
                import logging

                logging.getLogger("rotator.metrics").error("metrics textfile not written: %s", exc)
                click.echo(f"error: {exc} (the tick itself ran; its outcomes follow)", err=True)
    _finish(outcomes)


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


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
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
        _PROMPT.many = True  # several credentials per tick: step lines name theirs
        code = runner.run()
    except RotatorError as exc:
        _fail(exc)
    sys.exit(code)


def _daemon_service(settings: Settings, config: Config) -> App:
    """The daemon's app for `config` (`rotator.ops.app`): step lines to stdout unless -q."""
    from rotator.ops.app import assemble

    return assemble(config, echo=None if settings.quiet else _print_event)


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@pass_settings
def demo(settings: Settings) -> None:
    """Show a real rotation against the local simulator.

    Every step with its timing, the final status, and the old key's 401. Prints no secret.
    """
    from rotator.cli.demo import run_demo
    from rotator.core.logs import configure_logging

    level = _log_level(settings.verbose, settings.quiet, show=True)
    configure_logging(level, json_lines=_json_lines(settings.log_format))

    def run_command(args: list[str]) -> int:
        try:  # `obj`: the commands run inside the demo keep the demo's logging
            cli.main(args=args, prog_name="rotator", standalone_mode=False, obj=settings)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    sys.exit(run_demo(run_command))


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback only.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks one.")
def simulator(host: str, port: int) -> None:
    """Run the local Bluum API simulator.

    Serves until SIGINT or SIGTERM.

    It prints its base URL, then serves the documented Bluum endpoints plus a /_sim control plane.
    """
    from rotator.simulator.server import run_until_signalled

    try:
        run_until_signalled(host=host, port=port)
    except RotatorError as exc:
        _fail(exc)


for command in (*rotation_commands.COMMANDS, *view_commands.COMMANDS):
    cli.add_command(command)


GLOBAL_VALUE_OPTIONS = ("--config", "--log-format")
GLOBAL_FLAGS = ("-v", "-vv", "-vvv", "--verbose", "-q", "--quiet")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Global options written after the command (`rotator status --config x.toml`) move in front of it, where
    click reads them: people type them where they think of them."""
    commands = set(cli.commands)
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


def main() -> None:
    """Console-script entry point."""
    cli(args=hoist_global_options(sys.argv[1:]), prog_name="rotator")
