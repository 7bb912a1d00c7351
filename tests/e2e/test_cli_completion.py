"""Every command that takes a credential name completes it in the shell (issue 20, "found when tried as a new user
would": only `enroll`, `verify`, `deploy`, `pause` and `unpause` did).

The commands are found by click's own introspection (every command of the group, every argument), not listed here:
a new command whose credential argument does not complete fails this test. Completion runs through click's real
machinery: in-process with `click.shell_completion`'s bash completer for each command, and once through the console
entry point with `_ROTATOR_COMPLETE=bash_complete`, `COMP_WORDS` and `COMP_CWORD`, with `--config` on the line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete

from rotator.cli.commands import cli
from tests.e2e.conftest import Workspace

CREDENTIAL_PARAMETERS = frozenset({"name", "names", "credential", "credentials"})
"""How an argument that names a credential is called (what `rotator CMD --help` shows as NAME)."""


def commands_with_a_credential_argument() -> list[tuple[str, click.Argument]]:
    """(command, its credential argument) for every command of the `rotator` group."""
    context = click.Context(cli)
    found = []
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None, name
        for param in command.params:
            if isinstance(param, click.Argument) and param.name in CREDENTIAL_PARAMETERS:
                found.append((name, param))
    return found


def test_the_commands_are_found_by_introspection() -> None:
    names = {name for name, _ in commands_with_a_credential_argument()}
    must = {"rotate", "resume", "rollback", "step", "history", "verify", "enroll", "deploy", "pause", "unpause"}
    assert must <= names, f"introspection missed {sorted(must - names)}"


@pytest.mark.parametrize("command", [name for name, _ in commands_with_a_credential_argument()])
def test_every_credential_argument_completes_the_configured_names(ws: Workspace, command: str) -> None:
    completer = BashComplete(cli, {}, "rotator", "_ROTATOR_COMPLETE")
    offered = [item.value for item in completer.get_completions(["--config", str(ws.config), command], "tr")]
    assert offered == ["trading"], f"`rotator {command} tr<TAB>` offered {offered}"
    offered = [item.value for item in completer.get_completions(["--config", str(ws.config), command], "")]
    assert sorted(offered) == ["tenant", "trading"], f"`rotator {command} <TAB>` offered {offered}"


@pytest.mark.parametrize("line", ["rotator --config {config} rollback t", "rotator rollback --config {config} t"])
def test_the_console_entry_point_completes_with_the_config_named_on_the_line(
    ws: Workspace, tmp_path: Path, line: str
) -> None:
    """--config before the command or after it (global options may follow the command, README "Using it")."""
    elsewhere = tmp_path / "elsewhere"  # no ./rotator.toml here, no $ROTATOR_CONFIG: only --config names the file
    elsewhere.mkdir()
    environ = {key: value for key, value in os.environ.items() if key != "ROTATOR_CONFIG"}
    completed = subprocess.run(
        [sys.executable, "-m", "rotator"],
        env={
            **environ,
            "_ROTATOR_COMPLETE": "bash_complete",
            "COMP_WORDS": line.format(config=ws.config),
            "COMP_CWORD": "4",
        },
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    ws.guard.check(completed.stdout + completed.stderr, "completion output")
    assert completed.stdout.splitlines() == ["plain,tenant", "plain,trading"], completed.stdout + completed.stderr


def test_step_completes_the_step_names_after_the_credential(ws: Workspace) -> None:
    """`rotator step trading <TAB>` offers the names `step` accepts (the rotator's and AWS's four), not nothing."""
    from rotator.rules.machine import STEP_NAMES

    completer = BashComplete(cli, {}, "rotator", "_ROTATOR_COMPLETE")
    offered = [item.value for item in completer.get_completions(["--config", str(ws.config), "step", "trading"], "")]
    assert offered == list(STEP_NAMES)
    offered = [item.value for item in completer.get_completions(["--config", str(ws.config), "step", "trading"], "fi")]
    assert offered == ["finishSecret"]
