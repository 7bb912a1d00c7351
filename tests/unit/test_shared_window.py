"""The rate window shared by the rotator processes of one host (`[bluum] shared_budget_dir`): two handles on one file
stand for two processes; wall-clock times are passed in, so nothing here sleeps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rotator.bluum.shared_window import SharedWindow, check_budget_dir
from rotator.config.loader import MINIMAL_EXAMPLE, ConfigProblems, parse_config
from rotator.core.errors import ConfigError

GUARD = 0.05


def wait(window: SharedWindow, now: float, limit: int) -> float:
    """`admit`, for a window that can be used (None would mean it could not)."""
    result = window.admit(now, limit)
    assert result is not None
    return result


def test_two_processes_share_one_window(tmp_path: Path) -> None:
    daemon, operator = SharedWindow(tmp_path / "k.window", GUARD), SharedWindow(tmp_path / "k.window", GUARD)
    for n in range(5):  # each answered at once (one not yet answered counts as sent now: test_shared_window_in_flight)
        assert daemon.admit(100.0 + n * 0.01, limit=10) == 0.0
        daemon.answered(100.0 + n * 0.01, 100.0 + n * 0.01)
        assert operator.admit(100.005 + n * 0.01, limit=10) == 0.0
        operator.answered(100.005 + n * 0.01, 100.005 + n * 0.01)
    # Ten sends in the window, five from each: the eleventh waits until the first leaves, whoever sends it.
    wait = operator.admit(100.2, limit=10)
    assert wait == pytest.approx(100.0 + 1.0 + GUARD - 100.2)
    assert daemon.admit(100.0 + 1.0 + GUARD + 0.001, limit=10) == 0.0


def test_a_refused_send_is_not_counted(tmp_path: Path) -> None:
    window = SharedWindow(tmp_path / "k.window", GUARD)
    assert window.admit(50.0, limit=1) == 0.0
    window.answered(50.0, 50.0)
    for _ in range(3):
        assert wait(window, 50.5, limit=1) > 0
    assert window.admit(51.06, limit=1) == 0.0  # only the first send was ever counted


def test_times_from_a_clock_stepped_back_are_dropped_and_no_wait_is_longer_than_the_window(tmp_path: Path) -> None:
    path = tmp_path / "k.window"
    path.write_text("\n".join(str(1000.0 + n * 0.01) for n in range(10)))  # written before the clock went back
    window = SharedWindow(path, GUARD)
    assert window.admit(900.0, limit=10) == 0.0
    path.write_text("\n".join(str(899.99) for _ in range(10)))
    assert 0 < wait(window, 900.0, limit=10) <= 1.0 + GUARD


def test_a_garbled_file_counts_as_empty_and_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "k.window"
    path.write_bytes(b"\xff\xfe not times")
    assert SharedWindow(path, GUARD).admit(10.0, limit=3) == 0.0
    assert path.read_text() == "+10.000000"  # in flight since 10.0


def test_the_folder_is_made_and_an_unusable_one_is_refused_with_the_fix(tmp_path: Path) -> None:
    assert check_budget_dir(tmp_path / "run" / "bluum-rotator").is_dir()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"shared_budget_dir .*a-file: .* Fix: name a folder every rotator process"):
        check_budget_dir(tmp_path / "a-file")


MINIMAL = textwrap.dedent(MINIMAL_EXAMPLE) + "\n"
"""The smallest valid rotator.toml (the one error messages show)."""


def test_the_setting_is_optional_and_relative_to_rotator_toml(tmp_path: Path) -> None:
    assert parse_config(MINIMAL, base_dir=tmp_path).bluum.shared_budget_dir is None
    config = parse_config(MINIMAL + '[bluum]\nshared_budget_dir = "budget"\n', base_dir=tmp_path)
    assert config.bluum.shared_budget_dir == tmp_path / "budget"
    with pytest.raises(ConfigProblems, match=r"bluum.shared_budget_dir: is empty"):
        parse_config(MINIMAL + '[bluum]\nshared_budget_dir = " "\n', base_dir=tmp_path)


def test_a_window_that_cannot_be_used_hands_pacing_back_to_the_process(tmp_path: Path) -> None:
    window = SharedWindow(tmp_path / "gone" / "k.window", GUARD)  # its folder was removed (a /tmp cleaner)
    assert window.admit(10.0, limit=3) is None
