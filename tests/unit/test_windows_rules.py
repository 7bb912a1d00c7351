"""rotator/rules/windows.py: when a scheduled rotation may start (pure; every `now` is handed in).

Walked over DST changes in a named zone (Europe/Berlin springs forward at 02:00 on 2026-03-29 and falls back at
03:00 on 2026-10-25), windows across midnight, a deny window inside an allow window, the cap, expiry, and the
schedule checks the configuration runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rotator.rules.record import Phase, RotationRecord
from rotator.rules.windows import (
    Gate,
    Schedule,
    Window,
    cap_window_start,
    check_schedule,
    due_for_expiry,
    gate,
    longest_wait,
    next_allowed_start,
    next_due,
    open_since,
    reference_time,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
DAY = 86400.0


def at(*parts: int, zone: ZoneInfo = BERLIN) -> float:
    return datetime(*parts, tzinfo=zone).timestamp()  # type: ignore[misc,arg-type]


def local(moment: float | None) -> datetime | None:
    return None if moment is None else datetime.fromtimestamp(moment, BERLIN)


NIGHT = Window("0 22 * * *", 4 * HOUR, "Europe/Berlin")
"""22:00 to 02:00 local: across midnight."""


# ------------------------------------------------------------------------------------------ one window


@pytest.mark.parametrize(
    ("moment", "opened"),
    [
        (at(2026, 3, 1, 21, 59), None),
        (at(2026, 3, 1, 22, 0), at(2026, 3, 1, 22, 0)),  # the opening minute is inside
        (at(2026, 3, 1, 23, 59), at(2026, 3, 1, 22, 0)),
        (at(2026, 3, 2, 0, 30), at(2026, 3, 1, 22, 0)),  # after midnight: yesterday's occurrence
        (at(2026, 3, 2, 1, 59, 59), at(2026, 3, 1, 22, 0)),
        (at(2026, 3, 2, 2, 0), None),  # the closing instant is outside
        (at(2026, 3, 2, 12, 0), None),
    ],
)
def test_a_window_across_midnight(moment: float, opened: float | None) -> None:
    assert open_since(NIGHT, moment) == opened


def test_a_window_is_local_time_across_both_dst_changes() -> None:
    daily = Window("0 1 * * *", 2 * HOUR, "Europe/Berlin")
    # 01:00 local the day before and the day after each change: UTC offsets +1 and +2.
    assert open_since(daily, at(2026, 3, 28, 1, 30)) == at(2026, 3, 28, 1, 0)
    assert open_since(daily, at(2026, 3, 30, 1, 30)) == at(2026, 3, 30, 1, 0)
    assert at(2026, 3, 30, 1, 0) - at(2026, 3, 28, 1, 0) == 2 * DAY - HOUR  # the night that was an hour shorter
    assert open_since(daily, at(2026, 10, 26, 1, 30)) == at(2026, 10, 26, 1, 0)
    # The spring-forward night: 01:00 opens, two elapsed hours end at 04:00 local (02:00-03:00 does not exist).
    opened = at(2026, 3, 29, 1, 0)
    assert open_since(daily, at(2026, 3, 29, 3, 59)) == opened
    assert open_since(daily, at(2026, 3, 29, 4, 0)) is None


def test_a_fire_inside_the_spring_forward_gap_happens_just_after_it() -> None:
    """02:30 does not exist on 2026-03-29 in Berlin: the window opens at 03:00 local, as cron runs it."""
    gap = Window("30 2 * * *", HOUR, "Europe/Berlin")
    start = next_allowed_start(Schedule(allow=(gap,)), at(2026, 3, 29, 0, 0))
    assert local(start) == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert open_since(gap, at(2026, 3, 29, 3, 30)) == at(2026, 3, 29, 3, 0)


def test_a_fire_in_the_repeated_fall_back_hour_opens_once() -> None:
    """02:30 happens twice on 2026-10-25 in Berlin: the window opens once, not twice (no double window)."""
    repeated = Window("30 2 * * *", 30 * 60, "Europe/Berlin")
    schedule = Schedule(allow=(repeated,))
    first = next_allowed_start(schedule, at(2026, 10, 25, 0, 0))
    assert first is not None
    after = next_allowed_start(schedule, first + 30 * 60)
    assert after is not None
    assert after - first > 20 * HOUR


# ------------------------------------------------------------------------------------------ a schedule


def test_a_deny_window_inside_an_allow_window() -> None:
    freeze = Window("0 23 * * *", HOUR / 2, "Europe/Berlin")  # 23:00-23:30, inside 22:00-02:00
    schedule = Schedule(allow=(NIGHT,), deny=(freeze,))
    assert gate(schedule, at(2026, 3, 1, 22, 59)).may_start
    held = gate(schedule, at(2026, 3, 1, 23, 10))
    assert held.gate is Gate.DENY
    assert held.next_start == at(2026, 3, 1, 23, 30)  # the rest of the allow window
    assert "deny window" in held.why
    assert gate(schedule, at(2026, 3, 1, 23, 30)).may_start
    outside = gate(schedule, at(2026, 3, 2, 2, 0))
    assert outside.gate is Gate.OUTSIDE
    assert outside.next_start == at(2026, 3, 2, 22, 0)


def test_a_deny_window_over_an_allow_windows_end_moves_to_the_next_day() -> None:
    late = Window("30 1 * * *", HOUR, "Europe/Berlin")  # 01:30-02:30 covers the allow window's end (02:00)
    schedule = Schedule(allow=(NIGHT,), deny=(late,))
    assert next_allowed_start(schedule, at(2026, 3, 2, 1, 45)) == at(2026, 3, 2, 22, 0)


def test_without_allow_windows_only_deny_windows_hold_a_start() -> None:
    schedule = Schedule(deny=(Window("0 9 * * 1-5", 8 * HOUR, "Europe/Berlin"),))  # office hours
    assert gate(schedule, at(2026, 3, 2, 8, 59)).may_start  # a Monday
    assert gate(schedule, at(2026, 3, 2, 12, 0)).next_start == at(2026, 3, 2, 17, 0)
    assert gate(schedule, at(2026, 3, 7, 12, 0)).may_start  # a Saturday


def test_a_schedule_that_never_opens() -> None:
    schedule = Schedule(allow=(Window("0 1 * * *", HOUR),), deny=(Window("0 0 * * *", 3 * HOUR),))
    verdict = gate(schedule, at(2026, 3, 2, 12, 0))
    assert verdict.gate is Gate.NEVER
    assert verdict.next_start is None
    assert not verdict.may_start


def test_nothing_configured_gates_nothing() -> None:
    assert not Schedule().gated
    assert gate(Schedule(), at(2026, 3, 2, 12, 0)).may_start


def test_windows_in_two_zones_combine() -> None:
    tokyo = Window("0 3 * * *", HOUR, "Asia/Tokyo")  # 03:00 JST = 19:00 Berlin (winter)
    schedule = Schedule(allow=(NIGHT, tokyo))
    assert next_allowed_start(schedule, at(2026, 1, 10, 12, 0)) == at(2026, 1, 10, 19, 0)
    assert gate(schedule, at(2026, 1, 10, 20, 30)).gate is Gate.OUTSIDE
    assert gate(schedule, at(2026, 1, 10, 23, 0)).may_start


# ------------------------------------------------------------------------------------------ the cap


def test_the_cap_counts_in_the_open_allow_window() -> None:
    schedule = Schedule(allow=(NIGHT,), starts_per_window=3)
    now = at(2026, 3, 2, 1, 0)
    assert cap_window_start(schedule, now) == at(2026, 3, 1, 22, 0)
    assert gate(schedule, now, starts_in_window=2).may_start
    held = gate(schedule, now, starts_in_window=3)
    assert held.gate is Gate.CAP
    assert held.next_start == at(2026, 3, 2, 22, 0)  # the next window, not the rest of this one
    assert "starts_per_window = 3" in held.why


def test_without_allow_windows_the_cap_counts_in_fixed_slots() -> None:
    schedule = Schedule(starts_per_window=5, cap_window=HOUR)
    now = at(2026, 3, 2, 10, 40, zone=ZoneInfo("UTC"))
    assert cap_window_start(schedule, now) == at(2026, 3, 2, 10, 0, zone=ZoneInfo("UTC"))
    held = gate(schedule, now, starts_in_window=5)
    assert held.gate is Gate.CAP
    assert held.next_start == at(2026, 3, 2, 11, 0, zone=ZoneInfo("UTC"))


def test_a_deny_window_holds_before_the_cap_is_counted() -> None:
    schedule = Schedule(deny=(Window("0 * * * *", 600),), starts_per_window=1)
    assert gate(schedule, at(2026, 3, 2, 10, 5), starts_in_window=0).gate is Gate.DENY


# ------------------------------------------------------------------------------------------ expiry


def _record(current_since: float | None, expires_at: float | None) -> RotationRecord:
    return RotationRecord(
        credential="c",
        token="t" * 32,
        phase=Phase.COMPLETED,
        issuer="bluum",
        started_at=0.0,
        updated_at=0.0,
        current_since=current_since,
        expires_at=expires_at,
    )


def test_a_key_with_an_expiry_is_due_a_lead_time_before_it() -> None:
    lead = 7 * DAY
    expires = at(2026, 6, 1, 0, 0)
    assert not due_for_expiry(expires, lead, expires - lead - 1)
    assert due_for_expiry(expires, lead, expires - lead)
    assert not due_for_expiry(None, lead, expires)
    # whatever rotate_every says: a key made yesterday that expires in 5 days is due now
    since = expires - 6 * DAY
    assert next_due(_record(since, expires), timedelta(days=90), lead) == expires - lead
    assert next_due(_record(since, None), timedelta(days=90), lead) == since + 90 * DAY
    assert next_due(_record(None, None), timedelta(days=90), lead) is None


# ------------------------------------------------------------------------------------------ checks


def test_longest_wait_of_a_weekday_night_window() -> None:
    weekdays = Schedule(allow=(Window("0 1 * * 1-5", 4 * HOUR, "Europe/Berlin"),))
    wait = longest_wait(weekdays, reference_time(), 30 * DAY)
    assert wait == 3 * DAY - 4 * HOUR  # Friday 05:00 to Monday 01:00


def test_check_schedule_names_a_wait_longer_than_the_lead_time() -> None:
    weekly = Schedule(allow=(Window("0 1 * * 0", HOUR),), expiry_lead=3 * DAY)
    problems = check_schedule(weekly, rotate_every=90 * DAY, reference=reference_time())
    assert len(problems) == 1
    what, fix = problems[0]
    assert "longer than expiry_lead" in what
    assert 'expiry_lead = "8d"' in fix


def test_check_schedule_names_a_schedule_that_never_opens() -> None:
    never = Schedule(allow=(Window("0 1 * * *", HOUR),), deny=(Window("0 0 * * *", 3 * HOUR),))
    (what, fix), *_ = check_schedule(never, rotate_every=90 * DAY, reference=reference_time())
    assert "can ever start" in what
    assert "deny window" in fix


def test_check_schedule_accepts_a_nightly_window() -> None:
    nightly = Schedule(allow=(NIGHT,), deny=(Window("0 0 24 12 *", 2 * DAY, "Europe/Berlin"),))
    assert check_schedule(nightly, rotate_every=90 * DAY, reference=reference_time()) == []
