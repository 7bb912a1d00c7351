"""Issue 20's figure over a simulated year (benchmarks/bench_windows_year.py): a few thousand keys that all fell due
together, under allow and deny windows in Europe/Berlin and a cap per paying key: 0 keys expire, 0 scheduled starts
inside deny windows, never more starts per window than the cap. The same checks on weaker schedules fail, so they
are not vacuous."""

from __future__ import annotations

import dataclasses

from benchmarks.bench_windows_year import CAP, DAY, SCHEDULE, simulate


def test_a_year_of_three_thousand_keys_keeps_the_windows_the_cap_and_every_expiry() -> None:
    figures = simulate(3000)
    print(figures)
    assert figures.starts > 3000 * 2  # every key rotated several times in the year
    assert figures.expired == 0
    assert figures.in_deny == 0
    assert figures.most_per_window == CAP  # the cap was reached (the fleet spread out) and never passed


def test_the_checks_catch_a_schedule_without_the_freeze_the_cap_or_enough_lead_time() -> None:
    no_freeze = dataclasses.replace(SCHEDULE, deny=SCHEDULE.deny[:1])
    assert simulate(600, schedule=no_freeze).in_deny > 0
    no_cap = dataclasses.replace(SCHEDULE, allow=(), deny=(), starts_per_window=None)
    assert simulate(600, days=60, schedule=no_cap).most_per_window > CAP
    short_lead = dataclasses.replace(SCHEDULE, expiry_lead=2 * DAY)
    assert simulate(3000, schedule=short_lead).expired > 0
