"""rotator.rotation.reload_check: a reload command's program is looked up as it will run, before anything is created."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rotator.config.reloads import ReloadAction
from rotator.rotation.reload_check import command_problem


def command(*argv: str, cwd: Path) -> ReloadAction:
    return ReloadAction(kind="command", timeout=timedelta(seconds=5), cwd=cwd, command=argv)


def test_a_program_on_the_path_the_command_gets_is_fine(tmp_path: Path) -> None:
    assert command_problem(command("true", cwd=tmp_path), {"PATH": "/usr/bin:/bin"}) is None


def test_without_a_path_the_runner_default_is_searched(tmp_path: Path) -> None:
    assert command_problem(command("sh", cwd=tmp_path), {}) is None


def test_a_program_missing_from_that_path_is_named_with_the_path(tmp_path: Path) -> None:
    problem = command_problem(command("systemctl-typo", "reload", cwd=tmp_path), {"PATH": str(tmp_path)})
    assert problem == f"the program 'systemctl-typo' is not found on the PATH a reload command gets ({tmp_path})"


def test_a_relative_path_is_taken_from_the_configuration_folder(tmp_path: Path) -> None:
    script = tmp_path / "reload.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    problem = command_problem(command("./reload.sh", cwd=tmp_path))
    assert problem is not None
    assert "is not executable" in problem
    script.chmod(0o755)
    assert command_problem(command("./reload.sh", cwd=tmp_path)) is None
    assert "does not exist" in str(command_problem(command("bin/nothing", cwd=tmp_path)))
    assert "is not a file" in str(command_problem(command(str(tmp_path), cwd=tmp_path)))


def test_a_token_shaped_program_name_is_not_shown(tmp_path: Path) -> None:
    problem = command_problem(command("abcdefghijklmnopqrstuvwxyz0123", cwd=tmp_path), {"PATH": str(tmp_path)})
    assert problem is not None
    assert "abcdefghijklmnopqrstuvwxyz0123" not in problem


def test_url_actions_are_not_called_ahead_of_time(tmp_path: Path) -> None:
    action = ReloadAction(kind="url", timeout=timedelta(seconds=5), cwd=tmp_path, url="http://127.0.0.1:9/")
    assert command_problem(action) is None
