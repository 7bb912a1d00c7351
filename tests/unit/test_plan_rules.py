"""rotator/rules/plan.py: whether a paying key's budget rotates its fleet inside its windows (pure, no clock)."""

from __future__ import annotations

from rotator.rules.plan import CALLS_PER_ROTATION, age_findings, fleet_fit, windows_in
from rotator.rules.windows import Schedule, Window

DAY = 86400.0
NOW = 1_800_000_000.0  # a fixed moment: the rules are handed `now`
NIGHTLY = Window("0 22 * * *", 4 * 3600.0)


def test_no_windows_no_cap_always_fits() -> None:
    assert fleet_fit("tenant", 10_000, rate=25, schedule=Schedule(), rotate_every=90 * DAY, now=NOW) is None


def test_a_window_too_short_for_its_starts_says_how_many_fit() -> None:
    short = Schedule(allow=(Window("0 * * * *", 60.0),))
    fit = fleet_fit("tenant", 1000, rate=10, schedule=short, rotate_every=90 * DAY, now=NOW)
    assert fit is not None
    assert "too big for its window" in fit.problem
    assert f"starts_per_window = {60 * 10 // CALLS_PER_ROTATION}" in fit.fix


def test_the_cap_spreads_the_fleet_when_the_period_holds_enough_windows() -> None:
    capped = Schedule(allow=(NIGHTLY,), starts_per_window=200)
    assert fleet_fit("tenant", 3000, rate=25, schedule=capped, rotate_every=90 * DAY, now=NOW) is None


def test_a_cap_too_low_for_the_period_lets_keys_fall_overdue() -> None:
    capped = Schedule(allow=(NIGHTLY,), starts_per_window=10)
    fit = fleet_fit("tenant", 3000, rate=25, schedule=capped, rotate_every=90 * DAY, now=NOW)
    assert fit is not None
    assert "fall overdue" in fit.problem
    assert "starts_per_window to 34" in fit.fix  # 3000 keys over the 90 nightly windows of one period


def test_windows_in_counts_openings_and_cap_slots() -> None:
    assert windows_in(Schedule(allow=(NIGHTLY,)), NOW, 10 * DAY) == 10
    assert windows_in(Schedule(starts_per_window=5, cap_window=3600.0), NOW, DAY) == 24
    assert windows_in(Schedule(allow=(Window("* * * * *", 30.0),)), NOW, 90 * DAY, enough=7) == 7


def test_age_line_says_due_now_and_a_pause() -> None:
    from rotator.rules.pause import Pause

    paused = Pause(by="ops@host pid 1", since=NOW - 60, reason="freeze", until=None)
    found = age_findings("apk_x", None, paused, now=NOW, rotate_every=90 * DAY, expiry_lead=7 * DAY, name="trading")
    assert "age unknown" in found[0].problem
    assert any("freeze" in f.problem and "rotator unpause trading" in f.fix for f in found)
