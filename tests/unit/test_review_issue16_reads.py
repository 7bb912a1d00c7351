"""Reads that must never wait on a named pipe someone put where a file was (review of issue 16, item 15)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from backends.env.regular_file import NotARegularFile, read_regular_file
from rotator.core import state_files
from rotator.core.errors import StoreDenied


def finishes(action: object, seconds: float = 5) -> BaseException | None:
    """Run `action` in a thread; fail if it does not return (or raise) within `seconds`; what it raised."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            action()  # type: ignore[operator]
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail("the read waited on a named pipe")
    return caught[0] if caught else None


def test_an_old_sidecar_swapped_for_a_named_pipe_after_its_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lstat saw the rotator's own regular file; by the open, the folder's owner had put a pipe there."""
    pipe = tmp_path / "app.env.rotator.json"
    os.mkfifo(pipe)
    regular = state_files.Seen(str(pipe), os.geteuid(), stat.S_IFREG | 0o600)
    monkeypatch.setattr(state_files, "_lstat", lambda path, **_: regular)
    raised = finishes(lambda: state_files.read_own_file(pipe, setting="state_dir", check_folder=False))
    assert isinstance(raised, StoreDenied)


def test_a_dotenv_path_that_is_a_named_pipe_is_named_as_such(tmp_path: Path) -> None:
    pipe = tmp_path / "reports.env"
    os.mkfifo(pipe)
    raised = finishes(lambda: read_regular_file(pipe))
    assert isinstance(raised, NotARegularFile)
    assert raised.kind == "a named pipe"
    (tmp_path / "plain.env").write_bytes(b"A=1\n")
    assert read_regular_file(tmp_path / "plain.env") == b"A=1\n"
    assert isinstance(finishes(lambda: read_regular_file(tmp_path)), IsADirectoryError)
