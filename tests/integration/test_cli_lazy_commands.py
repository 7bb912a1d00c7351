"""The `rotator` group loads a command's module only when that command runs (issue 18, Performance: `rotator --help`
<= 2x a bare interpreter, `rotator status` <= 2x `--help`). `--help` lists the commands from the help paragraphs kept
in `rotator.cli.commands.COMMANDS`: these tests prove each paragraph is the command's own, that the list is the one
an eager group prints at every width, and that no command is missing from the map.

The import checks run `rotator` as `python -m rotator` does (runpy) in a fresh process, which lists the modules it
holds when it exits.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rotator.cli.commands import COMMANDS, cli

COMMAND_MODULES = sorted({where.module for where in COMMANDS.values()})
SDKS = ("httpx", "hvac", "boto3", "botocore", "schedule")


def imported_by(*args: str) -> set[str]:
    """Every module a fresh `python -m rotator ARGS` holds when it exits, whoever imported it and how."""
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print(repr(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['rotator', *{list(args)!r}]\n"
        "runpy.run_module('rotator', run_name='__main__', alter_sys=True)\n"
    )
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return set(ast.literal_eval(result.stderr.strip().splitlines()[-1]))


def test_help_imports_no_command_module() -> None:
    """The group and its options only (tests/integration/test_cli_start_imports.py lists every module of ours)."""
    loaded = imported_by("--help")
    assert "rotator.cli.lazy_group" in loaded  # the group ran
    assert [name for name in COMMAND_MODULES if name in loaded] == []
    assert not {*SDKS, "rotator.cli.render", "rotator.cli.terminal", "logging", "json", "dataclasses"} & loaded


def test_status_imports_its_own_command_module_only(tmp_path: Path) -> None:
    """`status` over env stores: the view commands, no other command's module, no Bluum client, no store SDK."""
    (tmp_path / "c.env").write_text("BLUUM_API_KEY='pk_test_0001'\nBLUUM_API_SECRET='sk_test_0001'\n")
    config = tmp_path / "rotator.toml"
    config.write_text(
        '[stores.s]\ntype = "env"\npath = "c.env"\n\n'
        '[credentials.c]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s"\n'
    )
    loaded = imported_by("--config", str(config), "status")
    assert "rotator.rotation.status" in loaded  # the command ran
    assert [name for name in COMMAND_MODULES if name in loaded] == ["rotator.cli.view_commands"]
    assert not {*SDKS, "rotator.bluum.client", "rotator.ops.app", "rotator.rotation.service"} & loaded
    # what only a rotation, a misspelt key or a crash test needs: who runs (socket, getpass), a temporary file name
    # (secrets), did-you-mean (difflib), SIGKILL (signal), the holdings a revoke checks (rules.identity), where and
    # how the dotenv file is written (backends.env.target and its rules), atomic writes (core.atomicfile), the
    # consumers line of a rotation waiting on them (rules.consumers)
    only_for_others = {"socket", "getpass", "secrets", "difflib", "signal", "rotator.rules.identity"}
    only_for_others |= {"rotator.rules.consumers"}
    writes = {"backends.env.target", "backends.env.target_rules", "rotator.core.atomicfile"}
    assert not (only_for_others | writes) & loaded


def test_the_check_sees_a_command_module_imported() -> None:
    """The control: a command that lives in another module shows up in the list the checks above read."""
    loaded = imported_by("run-due", "--help")
    assert "rotator.cli.tick_commands" in loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_help_is_the_command_s_own(name: str) -> None:
    """What `--help` lists for a command not yet loaded is what the command itself gives, at every width."""
    command = cli.load(name)
    listed = click.Command(name, help=COMMANDS[name].summary)
    assert command.name == name
    assert (command.hidden, command.deprecated) == (False, False)  # the stand-in is listed, and without a label
    for limit in range(1, 200):
        assert listed.get_short_help_str(limit) == command.get_short_help_str(limit), limit


def test_every_command_of_the_command_modules_is_in_the_map() -> None:
    """A command added to a module but not to COMMANDS would be missing from `rotator` altogether."""
    defined = {
        value.name
        for module in COMMAND_MODULES
        for value in vars(importlib.import_module(module)).values()
        if isinstance(value, click.Command)
    }
    assert defined == set(COMMANDS)


@pytest.mark.parametrize("columns", ["40", "60", "80", "100", "200"])
def test_help_lists_what_an_eager_group_lists(columns: str) -> None:
    """The lazy `rotator --help` (nothing loaded) prints what the group prints with every command loaded, at any
    terminal width (click shortens each command's help to fit). Both are fresh processes on the same terminal."""
    eager_code = "from rotator.cli.commands import COMMANDS, cli\nfor name in COMMANDS:\n    cli.load(name)\ncli()\n"
    env = {**os.environ, "COLUMNS": columns}
    lazy, eager = (
        subprocess.run([sys.executable, *args, "--help"], capture_output=True, text=True, env=env, check=True).stdout
        for args in (["-m", "rotator"], ["-c", eager_code])
    )
    assert lazy == eager.replace("Usage: -c ", "Usage: rotator ")
    assert all(f"\n  {name} " in lazy for name in COMMANDS)


@pytest.mark.parametrize("typo", ["stat", "rotat", "histroy", "nosuch"])
def test_a_misspelt_command_gets_the_suggestions_of_an_eager_group(typo: str) -> None:
    """click suggests near names from the commands a group holds: the lazy group holds them all by then."""
    eager_code = "from rotator.cli.commands import COMMANDS, cli\nfor name in COMMANDS:\n    cli.load(name)\ncli()\n"
    lazy, eager = (
        subprocess.run([sys.executable, *args, typo], capture_output=True, text=True, check=False)
        for args in (["-m", "rotator"], ["-c", eager_code])
    )
    assert (lazy.returncode, lazy.stderr) == (eager.returncode, eager.stderr.replace("-c ", "rotator "))
    assert lazy.returncode == 2
