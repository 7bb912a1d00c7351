"""A step line says how long the step took; one under 5 ms read "(0s)" before, as if it took no time or was skipped.

The step line is what `rotator rotate` (and every command that runs steps) prints for each step event
(`rotator.cli.render.print_event`); a step's time is now `format_measured`: two places, and "<0.01s" below them.
Every other duration keeps `format_duration`'s spelling (test_time_formats.py).
"""

from __future__ import annotations

import pytest

from rotator.cli.render import print_event
from rotator.core.durations import format_duration
from rotator.core.events import EventKind, RotationEvent


def step_line(seconds: float, capfd: pytest.CaptureFixture[str]) -> str:
    event = RotationEvent(
        kind=EventKind.STEP, credential="trading", step="stage", message="in reports", seconds=seconds
    )
    print_event(event)
    return capfd.readouterr().out.rstrip("\n")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0004, "(<0.01s)"), (0.003, "(<0.01s)"), (0.0049, "(<0.01s)"), (0.006, "(0.01s)"), (0.14, "(0.14s)")],
)
def test_a_step_line_says_how_long_even_under_five_milliseconds(
    seconds: float, shown: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert step_line(seconds, capfd) == f"  stage     in reports  {shown}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.001, "<0.01s"), (0.006, "0.01s"), (1.3, "1.3s"), (61.996, "1m2s")],
)
def test_a_measured_time_is_never_printed_as_none_when_it_was_some(seconds: float, text: str) -> None:
    from rotator.core.durations import format_measured  # new: imported here, so the step-line tests run without it

    assert format_measured(seconds) == text


def test_format_duration_itself_is_unchanged() -> None:
    """Other measured times (a reload, a rotation's total, the lease's time left) keep their spelling."""
    assert format_duration(0.003, places=2) == "0s"
    assert format_duration(0.003) == "0.003s"
