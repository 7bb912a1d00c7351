"""What every `rotator` command shares: the global options (`Settings`), the exit-code epilog, and how a
RotatorError ends a command (its message on stderr, its exit code).

Why a module of its own: the command modules (`rotation_commands`, `view_commands`, `tick_commands`,
`local_commands`) and the group in `rotator.cli.commands` all need these, and the command modules cannot import the
group (it loads them by name when their command runs, `rotator.cli.lazy_group`). The app (`rotator.ops.app`: the
service and its bus) a command works with is opened through `Settings.app` or `Settings.service`, whose opener the
group sets when it runs: the command modules never import the assembly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

from rotator.core.errors import ExitCode, RotatorError

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.ops.app import App
    from rotator.rotation.service import RotationService

__all__ = ["CONTEXT", "EXIT_CODES_HELP", "Settings", "fail", "json_lines", "log_level", "pass_settings"]

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

AppOpener = Callable[..., AbstractContextManager["App"]]
"""`opener(quiet=False)`: the app (service and bus) for one command, closed on exit; a RotatorError ends the
command."""


class Settings:
    """Options of the `rotator` group, handed to every command."""

    def __init__(self, config_path: str | None, verbose: int, log_format: str, quiet: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self.log_format = log_format
        self.quiet = quiet
        self.opener: AppOpener | None = None
        """Set by the `rotator` group (`rotator.cli.commands`), which assembles the service."""

    def load(self) -> Config:
        from rotator.config.loader import find_config_path, load_config

        return load_config(find_config_path(self.config_path))

    def app(self, *, quiet: bool = False) -> AbstractContextManager[App]:
        """The app for this command: events to the log, the history, the sinks and, unless `quiet` (or -q), step
        lines."""
        if self.opener is None:
            raise RuntimeError("Settings.app needs the rotator group to have run (it sets the opener)")
        return self.opener(quiet=quiet)

    @contextmanager
    def service(self, *, quiet: bool = False) -> Iterator[RotationService]:
        """The rotation service of `app`, for the commands that need only it."""
        with self.app(quiet=quiet) as app:
            yield app.service


pass_settings = click.make_pass_decorator(Settings)


def log_level(verbose: int, quiet: bool, *, show: bool = False) -> int:
    """-q: warnings only. Otherwise info when nobody watches stderr (cron keeps a JSON record of every call and
    step), warnings at a terminal (the step lines already say what happens); -v info, -vv debug. A `show` (the
    demo) is for a person wherever its output goes (`make demo 2>&1 | cat`): warnings only unless -v."""
    import logging  # not at the top: `rotator --help` needs none of it

    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    if quiet or show or sys.stderr.isatty():
        return logging.WARNING
    return logging.INFO


def json_lines(log_format: str, *, show: bool = False) -> bool | None:
    """--log-format: None lets the stream decide (JSON unless a terminal). A `show` (the demo) is read by a person
    wherever it goes (`rotator -v demo 2>&1 | cat`, `make demo > f`): text unless --log-format json."""
    if log_format == "auto":
        return False if show else None
    return log_format == "json"


def fail(exc: RotatorError) -> NoReturn:
    """End the command: the error's message on stderr, its exit code."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(int(exc.exit_code))
