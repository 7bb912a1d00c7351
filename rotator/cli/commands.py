"""The `rotator` command line. Each command imports what it needs when it runs, so `--help` stays fast.

Progress goes to stdout, logs to stderr (JSON lines when stderr is not a terminal), errors to stderr as
one `error:` line that says what to do. The exit code is the contract with cron and scripts.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from rotator.core.errors import ExitCode, RotatorError, most_severe

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.core.events import RotationEvent
    from rotator.core.model import StoredKey
    from rotator.daemon.metrics import Telemetry
    from rotator.ops.app import App
    from rotator.rotation.driver import Outcome
    from rotator.rotation.service import RotationService

EXIT_CODES_HELP = f"""\b
Exit codes (the same for every command):
  {ExitCode.OK.value}  success
  {ExitCode.ROLLED_BACK.value}  rotation failed and was rolled back (old key still current)
  {ExitCode.BAD_INPUT.value}  bad input or configuration (nothing changed)
  {ExitCode.IN_PROGRESS.value}  another rotation of this credential is in progress (nothing changed)
  {ExitCode.INCOMPLETE.value}  left incomplete: needs `rotator resume` or a person
  {ExitCode.UNAVAILABLE.value}  Bluum or a store could not be reached (nothing changed; safe to retry)
With several credentials: the most severe of theirs (4, then 5, 3, 2, 1, 0).
"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Settings:
    """Options of the `rotator` group, handed to every command."""

    def __init__(self, config_path: str | None, verbose: int, log_format: str, quiet: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self.log_format = log_format
        self.quiet = quiet

    def load(self) -> Config:
        from rotator.config.loader import find_config_path, load_config

        return load_config(find_config_path(self.config_path))


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

    configure_logging(_log_level(verbose, quiet), json_lines=None if log_format == "auto" else log_format == "json")
    ctx.obj = Settings(config_path, verbose, log_format, quiet)


def _log_level(verbose: int, quiet: bool) -> int:
    """-q: warnings only. Otherwise info when nobody watches stderr (cron keeps a JSON record of every call and
    step), warnings at a terminal (the step lines already say what happens); -v info, -vv debug."""
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    if quiet or sys.stderr.isatty():
        return logging.WARNING
    return logging.INFO


def _fail(exc: RotatorError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


@contextmanager
def _engine(settings: Settings, *, quiet: bool = False) -> Iterator[RotationService]:
    """The rotation service of `_app`, for the commands that need only it."""
    with _app(settings, quiet=quiet) as app:
        yield app.service


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


def _print_event(event: RotationEvent) -> None:
    """A line per step for the person at the terminal; the command's outcome is printed by `_finish`."""
    from rotator.core.events import OBSERVATIONS, EventKind

    if event.kind in (EventKind.COMPLETED, EventKind.ROLLED_BACK, EventKind.STOPPED) or event.kind in OBSERVATIONS:
        return  # the outcome lines say it; a tick's findings go to the log and the notification sinks
    timing = f"  ({event.seconds:.2f}s)" if event.seconds is not None else ""
    who = f"{event.credential}: " if _PROMPT.many else ""  # several rotations at once: say whose line it is
    click.echo(f"  {who}{event.step:<9} {event.message}{timing}")


def _finish(outcomes: list[Outcome]) -> NoReturn:
    """Print each outcome's message and exit with the most serious code among them."""
    for outcome in outcomes:
        stream_err = outcome.exit_code != ExitCode.OK
        click.echo(outcome.message, err=stream_err)
    sys.exit(int(most_severe(o.exit_code for o in outcomes)))


pass_settings = click.make_pass_decorator(Settings)


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name", required=False)
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
    from rotator.core.errors import ConfigError

    if bool(name) == all_:
        _fail(ConfigError("give exactly one of NAME or --all (see `rotator status` for the names)"))
    with _engine(settings) as engine:
        new_pair = _read_new_pair(new_key_file, name) if new_key_file else None
        names = [name] if name else [c.name for c in engine.config.credentials.values() if engine.mints(c.name)]
        action = partial(
            engine.rotate,
            emergency=emergency,
            reason=reason,
            dry_run=dry_run,
            new_pair=new_pair,
            confirm_revoked=_confirm_revoked,
        )
        outcomes = _each(settings, engine, names, action)
    _finish(outcomes)


def _each(
    settings: Settings, engine: RotationService, names: list[str], action: Callable[[str], Outcome]
) -> list[Outcome]:
    """Run `action` for each name, several at once ([fleet] in rotator.toml); each error is that name's outcome."""
    from rotator.ops.fleet import run_each

    _PROMPT.many = len(names) > 1
    return run_each(engine, names, action, on_done=_progress(settings, len(names)))


def _progress(settings: Settings, total: int) -> Callable[[Outcome], None] | None:
    """A line every 10 s on how far a fleet is (not with -q, nor for one credential)."""
    from rotator.ops.fleet import FleetProgress

    return None if settings.quiet or total < 2 else FleetProgress(total, click.echo)


def _guarded(name: str, action: Callable[[], Outcome]) -> Outcome:
    """Run one credential's action; its error becomes its outcome so --all goes on with the others."""
    from rotator.rotation.driver import Outcome

    try:
        return action()
    except RotatorError as exc:
        return Outcome(name, exc.exit_code, f"error: {exc}")


class _Terminal:
    """The one person at the terminal, shared by the rotations running at once: one question at a time."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.many = False
        """Several credentials run at once: step lines name theirs."""


_PROMPT = _Terminal()


def _confirm_revoked(prompt: str) -> bool:
    """Ask a person at a terminal; unattended runs never wait on one."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    with _PROMPT.lock:
        return click.confirm(f"{prompt}. Done?", default=False)


def _read_new_pair(path: str, name: str | None) -> StoredKey:
    """Parse the operator's new pair; errors name the field, never echo a value."""
    from rotator.core.errors import ConfigError
    from rotator.core.model import StoredKey
    from rotator.core.secret import Secret

    if name is None:
        raise ConfigError("--new-key-file goes with one credential NAME, not --all")
    where = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --new-key-file {where}: {exc.strerror}") from exc
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--new-key-file {where} is not JSON (line {exc.lineno}): expected "
            '{"api_key": "...", "api_secret": "...", "key_id": "..."}'
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"--new-key-file {where} must hold a JSON object with api_key, api_secret, key_id")
    missing = [field for field in ("api_key", "api_secret") if not isinstance(data.get(field), str) or not data[field]]
    if missing:
        raise ConfigError(f"--new-key-file {where} lacks {', '.join(missing)} (non-empty strings)")
    key_id = data.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        raise ConfigError(f"--new-key-file {where}: key_id must be a string")
    from rotator.core.model import Environment

    environment = None
    if "environment" in data:
        try:
            environment = Environment.from_bluum(str(data["environment"]))
        except ValueError as exc:
            raise ConfigError(f"--new-key-file {where}: {exc}") from None
    return StoredKey(
        api_key=data["api_key"], api_secret=Secret(data["api_secret"]), key_id=key_id, environment=environment
    )


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
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
        _fail(exc)
    code = int(most_severe(ExitCode(row.exit_code) for row in rows))
    if as_json:
        click.echo(json.dumps([_row_dict(row) for row in rows], indent=2))
        sys.exit(code)
    click.echo(_status_table(rows))
    sys.exit(code)


def _row_dict(row: Any) -> dict[str, Any]:  # noqa: ANN401 - CredentialStatus, imported lazily
    from dataclasses import asdict

    data = asdict(row)
    data["next_due"] = _iso(row.next_due)
    return data


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _status_table(rows: list[Any]) -> str:
    header = ("CREDENTIAL", "ENV", "CURRENT KEY", "AGE", "NEXT DUE", "STAGE", "WAITING ON")
    body = [
        (
            r.name,
            r.environment,
            r.current_key or "-",
            _age(r.age_seconds),
            _iso(r.next_due) or "-",
            r.stage,
            r.waiting,
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line[:-1])) + "  " + line[-1])
    return "\n".join(lines)


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--now", is_flag=True, help="Revoke the old key now instead of waiting for the grace window to end.")
@pass_settings
def resume(settings: Settings, name: str | None, now: bool) -> None:
    """Finish (or roll back) unfinished rotations.

    Picks up rotations left incomplete by a crash, a grace window or an operator step. Without NAME,
    every credential is checked. Safe to run at any time, from any machine.
    """
    with _engine(settings) as engine:
        names = [name] if name else list(engine.config.credentials)
        action = partial(engine.resume, skip_grace=now, confirm_revoked=_confirm_revoked)
        outcomes = _each(settings, engine, names, action)
    _finish(outcomes)


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name", shell_complete=lambda ctx, param, incomplete: _credential_names(incomplete))
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
    with _engine(settings) as engine:
        new_pair = _read_new_pair(new_key_file, name) if new_key_file else None
        outcome = _guarded(name, partial(engine.enroll, name, new_pair=new_pair))
    _finish([outcome])


@cli.command("step", epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name")
@click.argument("step_name", metavar="STEP")
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
    with _engine(settings) as engine:
        new_pair = _read_new_pair(new_key_file, name) if new_key_file else None
        outcome = _guarded(name, partial(engine.step, name, step_name, token=token, new_pair=new_pair))
    _finish([outcome])


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
@click.argument("name")
@pass_settings
def rollback(settings: Settings, name: str) -> None:
    """Undo a credential's last rotation.

    The old key becomes current again in every store and the new key is revoked. Possible until the
    old key is revoked at Bluum; after that there is nothing to go back to.
    """
    with _engine(settings) as engine:
        outcome = _guarded(name, lambda: engine.rollback(name))
    _finish([outcome])


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name", required=False, shell_complete=lambda ctx, param, incomplete: _credential_names(incomplete))
@click.option("--all", "all_", is_flag=True, help="Check every credential.")
@pass_settings
def verify(settings: Settings, name: str | None, all_: bool) -> None:
    """Check a credential's current key everywhere.

    Every store of NAME must hold the same current key, and Bluum must accept it: exit 0. Exit 4 when the stores
    disagree or Bluum rejects the key (a person must act); exit 5 when Bluum could not be asked (try again).
    """
    from rotator.core.errors import ConfigError

    if bool(name) == all_:
        _fail(ConfigError("give exactly one of NAME or --all (see `rotator status` for the names)"))
    with _engine(settings) as engine:
        names = [name] if name else list(engine.config.credentials)
        outcomes = _each(settings, engine, names, engine.verify)
    _finish(outcomes)


def _credential_names(incomplete: str) -> list[Any]:
    """Shell completion of credential names from the configuration in effect (nothing when it cannot be read)."""
    from click.shell_completion import CompletionItem

    try:
        config = Settings(None, 0, "auto").load()
    except RotatorError:
        return []
    return [CompletionItem(name) for name in config.credentials if name.startswith(incomplete)]


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
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

    from rotator.core.errors import ConfigError

    if include_foreign and not revoke:
        _fail(ConfigError("--include-foreign only widens --revoke: add --revoke, or drop it. Nothing was changed"))
    with _engine(settings, quiet=True) as engine:
        try:
            only = None
            if revoke and not yes:
                only = _confirmed_orphans(engine, include_foreign)
            findings = engine.sweep(revoke=revoke and only != set(), include_foreign=include_foreign, only=only)
            from rotator.ops.alerts import publish_sweep

            publish_sweep(engine, findings)  # orphans left, to the notification sinks
        except RotatorError as exc:
            _fail(exc)
    if as_json:
        click.echo(json.dumps([asdict(f) for f in findings], indent=2))
    elif not findings:
        click.echo("no orphan keys; no credential has more than two active keys")
    for finding in [] if as_json else findings:
        click.echo(f"{finding.credential}: {finding.kind:<9} {finding.key_id or '-'}  {finding.message}")
    left = [f for f in findings if f.kind != "revoked"]
    sys.exit(int(ExitCode.INCOMPLETE if left else ExitCode.OK))


def _confirmed_orphans(engine: RotationService, include_foreign: bool) -> set[str]:
    """At a terminal: show what --revoke would revoke and ask. Without one: refuse (revoking is for good)."""
    from rotator.core.errors import ConfigError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
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


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list.")
@pass_settings
def history(settings: Settings, name: str, as_json: bool) -> None:
    """Show what the rotations of NAME did: when, which keys, why, and who ran them.

    An append-only record kept per credential ([history] dir in rotator.toml, default `rotator-history`
    beside it), for as long as [history] keep says (default 400d). It holds no secret.
    """
    with _app(settings, quiet=True) as app:
        try:
            app.config.credential(name)
            found = app.history.read_checked(name)
        except RotatorError as exc:
            _fail(exc)
    history = app.history
    entries = found.entries
    report = found.damage_report(history.path(name))
    if report is not None:  # on stderr, so `--json` stays one JSON document on stdout
        click.echo(report, err=True)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        sys.exit(0)
    if not entries:
        click.echo(f"{name}: no history yet (kept in {history.path(name)})")
        sys.exit(0)
    for entry in entries:
        token = str(entry.get("token") or "")[:8]
        click.echo(f"{entry.get('time', '?')}  {token:<8}  {entry.get('event', '?'):<11} {entry.get('message', '')}")
        if entry.get("event") == "started":
            reason = f"; reason: {entry['reason']}" if entry.get("reason") else ""
            click.echo(f"{'':32}by {entry.get('actor', '?')}{reason}")
    sys.exit(0)


@cli.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
def demo() -> None:
    """Show a real rotation against the local simulator.

    Every step with its timing, the final status, and the old key's 401. Prints no secret.
    """
    from rotator.cli.demo import run_demo

    def run_command(args: list[str]) -> int:
        try:
            cli.main(args=args, prog_name="rotator", standalone_mode=False)
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
