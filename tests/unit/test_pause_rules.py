"""The pause rule (rotator/rules/pause.py): when a pause holds, what `--until` accepts, and how it is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rotator.core.errors import ConfigError
from rotator.rules.pause import PAUSE_KEY, Pause, check_reason, in_force, parse_until, pause_in, rotation_part

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()


def test_a_pause_holds_until_its_time_and_ends_by_itself():
    pause = Pause(by="ops@host pid 1", since=NOW, reason="freeze", until=NOW + 60)
    assert in_force(pause, NOW + 59) == pause
    assert in_force(pause, NOW + 60) is None
    assert in_force(Pause(by="a", since=NOW, reason="r"), NOW + 10**9) is not None  # until unpause
    assert in_force(None, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6h", 6 * 3600),
        ("1h30m", 5400),
        ("90s", 90),
        ("2026-12-07T18:00:00Z", 6 * 3600),
        ("2026-12-07T18:00:00", 6 * 3600),
        ("2026-12-07T19:00:00+01:00", 6 * 3600),
    ],
)
def test_until_takes_a_duration_or_an_iso_time(text: str, seconds: float):
    assert parse_until(text, NOW) == NOW + seconds


@pytest.mark.parametrize("text", ["", "0s", "-1h", "2026-12-07T11:59:59Z", "tomorrow", "6"])
def test_until_refuses_the_past_and_what_it_cannot_read(text: str):
    with pytest.raises(ConfigError, match="Nothing was changed"):
        parse_until(text, NOW)


@pytest.mark.parametrize("reason", [None, "", "   ", "two\nlines", "x" * 501])
def test_a_reason_is_required_and_one_line(reason: str | None):
    with pytest.raises(ConfigError):
        check_reason(reason)


def test_the_pause_rides_beside_the_rotation_record_in_the_ledger():
    pause = Pause(by="ops", since=NOW, reason="freeze", until=None)
    alone = {PAUSE_KEY: pause.to_json()}
    assert pause_in(alone) == pause
    assert rotation_part(alone) is None  # paused before the first rotation: no record yet
    assert rotation_part({}) is None
    record = {"phase": "completed", "version": 1, PAUSE_KEY: pause.to_json()}
    assert rotation_part(record) is record
    assert pause_in({"phase": "completed"}) is None
    assert pause_in({PAUSE_KEY: {"by": 1}}) is None  # unreadable: not paused


def test_the_schedulers_start_nothing_while_paused_and_say_how_to_lift_it():
    from rotator.rules.pause import scheduled_start

    pause = Pause(by="ops@host", since=NOW, reason="freeze", until=NOW + 60)
    said = scheduled_start("trading", pause, NOW)
    assert said is not None
    assert "freeze" in said
    assert "`rotator unpause trading`" in said
    assert scheduled_start("trading", pause, NOW + 60) is None
    assert scheduled_start("trading", None, NOW) is None
