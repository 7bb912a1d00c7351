"""The one way to print a duration (`rotator.core.durations.format_duration`) and a moment
(`rotator.core.timestamps.format_timestamp`), and that no other spelling is left in the tree."""

from __future__ import annotations

import ast
import calendar
import itertools
import time
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.core.durations import format_duration, parse_duration
from rotator.core.timestamps import format_timestamp

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (0, "0s"),
        (timedelta(days=90), "90d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=1, minutes=30, milliseconds=5), "1h30m0.005s"),
        (timedelta(milliseconds=500), "0.5s"),
        (12.0, "12s"),
        (90.25, "1m30.25s"),
        (900, "15m"),
        (241, "4m1s"),
        (-5, "-5s"),
        (timedelta(days=-1), "-1d"),
    ],
)
def test_a_duration_is_printed_largest_unit_first(value: timedelta | float, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize(
    "value",
    [timedelta(0), timedelta(days=90), timedelta(hours=1, minutes=30, milliseconds=5), timedelta(seconds=59.999)],
)
def test_what_is_printed_parses_back_to_the_same_duration(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(("seconds", "text"), [(0.1434, "0.14s"), (1.3, "1.3s"), (2.0, "2s"), (61.996, "1m2s")])
def test_a_measured_time_keeps_two_places(seconds: float, text: str) -> None:
    assert format_duration(seconds, places=2) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (5400, "90m"),
        (7200, "2h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (12.4 * 86400, "12d"),
    ],
)
def test_an_age_at_a_glance_is_one_rounded_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds, coarse=True) == text


def test_a_moment_is_utc_iso_to_the_second() -> None:
    at = calendar.timegm((2026, 12, 7, 2, 3, 20)) + 0.25
    assert format_timestamp(at) == "2026-12-07T02:03:20Z"
    assert format_timestamp(at, milliseconds=True) == "2026-12-07T02:03:20.250Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"


def test_now_is_the_default_moment() -> None:
    before = time.time()
    printed = calendar.timegm(time.strptime(format_timestamp(), "%Y-%m-%dT%H:%M:%SZ"))
    assert int(before) <= printed <= time.time()


def _formatting_calls(path: Path) -> list[str]:
    """strftime calls and f-string seconds (`{x:.1f}s`, `{x:g}s`) in one source file."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "strftime":
            found.append(f"{path}:{node.lineno} strftime")
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for value, after in itertools.pairwise(parts):
                if (
                    isinstance(value, ast.FormattedValue)
                    and value.format_spec is not None
                    and isinstance(after, ast.Constant)
                    and isinstance(after.value, str)
                    and after.value.startswith("s")
                    and not after.value[1:2].isalpha()
                ):
                    found.append(f"{path}:{node.lineno} seconds")
    return found


def test_no_other_way_to_print_a_duration_or_a_moment_is_left() -> None:
    """Every duration goes through format_duration and every moment through format_timestamp. The simulator is
    Bluum's stand-in and prints what Bluum prints; the two formatters themselves are where the spelling lives."""
    own = {ROOT / "rotator/core/timestamps.py", ROOT / "rotator/core/durations.py"}
    files = [
        p
        for p in [*ROOT.glob("rotator/**/*.py"), *ROOT.glob("backends/**/*.py")]
        if p not in own and "simulator" not in p.parts
    ]
    assert [hit for path in files for hit in _formatting_calls(path)] == []


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (150, "2m30s"), (3900, "1h5m")])
def test_a_fleets_wait_reads_like_any_other_duration(seconds: float, text: str) -> None:
    """`rotator.ops.fleet`'s progress line printed its own spelling ("1h05m") before; now the one of the tree."""
    assert format_duration(round(seconds)) == text
