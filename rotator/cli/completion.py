"""The one way a command takes a credential name: `@credential_argument()`, which completes it in the shell.

Why one decorator: completion was written as a lambda on some commands' NAME and forgotten on the others (`rotate`,
`resume`, `rollback`, `step`, `history` completed nothing). A test walks every command click knows and fails for a
credential argument that does not complete (tests/e2e/test_cli_completion.py), so a new command gets it by using
this decorator. The names come from the rotator.toml in effect: `--config` on the line being completed, else
$ROTATOR_CONFIG, else ./rotator.toml; a file that cannot be read completes nothing (never an error in the shell).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rotator.core.errors import RotatorError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["complete_credential", "complete_step", "credential_argument"]


def credential_argument(*, required: bool = True) -> Callable[[F], F]:
    """`@click.argument("name")` for a credential's name, with shell completion of the configured names."""
    return click.argument("name", required=required, shell_complete=complete_credential)


def complete_credential(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The configured credential names that start with `incomplete` (click's `shell_complete` callback)."""
    from click.shell_completion import CompletionItem

    from rotator.config.loader import find_config_path, load_config

    path = ctx.find_root().params.get("config_path")
    try:
        config = load_config(find_config_path(path if isinstance(path, str) else None))
    except (RotatorError, OSError):
        return []
    return [CompletionItem(name) for name in config.credentials if name.startswith(incomplete)]


def complete_step(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """`rotator step NAME <TAB>`: the step names `step` accepts (rotator.rules.machine.STEP_NAMES), AWS's four too."""
    from click.shell_completion import CompletionItem

    from rotator.rules.machine import STEP_NAMES

    return [CompletionItem(step) for step in STEP_NAMES if step.startswith(incomplete)]
