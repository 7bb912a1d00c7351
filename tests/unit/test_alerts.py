"""The tick's alert rules, as pure functions pinned by tables; and the reminder memory that keeps cron from paging
every 15 minutes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.notifications import AlertSettings
from rotator.core.events import EventKind
from rotator.ops.alerts import (
    BLUUM_5XX,
    BLUUM_429,
    STUCK,
    TOO_MANY_KEYS,
    Finding,
    Reminders,
    Traffic,
    server_errors_alarming,
    status_findings,
    stuck,
    sweep_findings,
    traffic_findings,
)
from rotator.rotation.status import CredentialStatus
from rotator.rotation.sweep import SweepFinding

NOW = 1_800_000_000.0
HOUR = 3600.0
DEFAULTS = AlertSettings()


def row(name: str = "trading", **fields: object) -> CredentialStatus:
    values: dict[str, object] = {
        "name": name,
        "environment": "sandbox",
        "current_key": "apk_current",
        "age_seconds": 10.0,
        "next_due": NOW + 86400,
        "stage": "idle",
        "waiting": "nothing",
    }
    values.update(fields)
    return CredentialStatus(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requests", "errors", "alarming"),
    [
        (0, 0, False),
        (10, 1, False),  # one retried blip
        (4, 1, False),  # a quarter, but a single answer
        (20, 2, False),  # two of twenty: a tenth
        (8, 2, True),  # two of eight: a quarter of a quiet tick
        (100, 3, True),  # three, however many requests
    ],
)
def test_5xx_alarm_at_three_or_at_two_that_are_a_quarter(requests: int, errors: int, alarming: bool) -> None:
    traffic = Traffic(requests=requests, server_errors=errors)
    assert server_errors_alarming(traffic, DEFAULTS) is alarming
    subjects = [finding.subject for finding in traffic_findings(traffic, DEFAULTS)]
    assert subjects == ([BLUUM_5XX] if alarming else [])


def test_any_429_alarms_and_the_thresholds_are_settings() -> None:
    assert [f.subject for f in traffic_findings(Traffic(requests=50, rate_limited=1), DEFAULTS)] == [BLUUM_429]
    lenient = AlertSettings(rate_limited=5, server_errors=10, server_error_ratio=1.0)
    assert traffic_findings(Traffic(requests=8, server_errors=4, rate_limited=4), lenient) == []
    (alert,) = traffic_findings(Traffic(requests=8, rate_limited=1), DEFAULTS)
    assert (alert.kind, alert.credential) == (EventKind.ALERT, "")
    assert "429" in alert.message
    assert "rate_limit" in alert.message


def test_a_rotation_is_stuck_only_when_unfinished_out_of_grace_and_unchanged_past_the_bound() -> None:
    assert not stuck(row(), NOW, DEFAULTS)  # nothing unfinished
    assert not stuck(row(updated_at=NOW - 0.5 * HOUR), NOW, DEFAULTS)
    assert stuck(row(updated_at=NOW - 2 * HOUR), NOW, DEFAULTS)
    waiting_out_grace = row(updated_at=NOW - 20 * HOUR, grace_until=NOW + HOUR)
    assert not stuck(waiting_out_grace, NOW, DEFAULTS)
    grace_over = row(updated_at=NOW - 20 * HOUR, grace_until=NOW - HOUR)
    assert stuck(grace_over, NOW, DEFAULTS)
    assert not stuck(grace_over, NOW, AlertSettings(stuck_after=timedelta(days=2)))


def test_overdue_keys_are_announced_and_a_persons_key_needs_a_person() -> None:
    rows = [
        row("trading", next_due=NOW - 2 * 86400, waiting="due now: `rotator rotate trading`"),
        row("tenant", next_due=NOW - 86400),
        row("fresh"),
        row("broken", next_due=NOW - 86400, exit_code=2, stage="error"),  # an unreadable store says so itself
        row("slow", updated_at=NOW - 3 * HOUR, stage="deployed", waiting="unfinished at deployed"),
    ]
    found = status_findings(rows, NOW, DEFAULTS, mints=lambda name: name != "tenant")
    assert [(f.kind, f.credential, f.subject) for f in found] == [
        (EventKind.OVERDUE, "trading", None),
        (EventKind.NEEDS_PERSON, "tenant", None),
        (EventKind.ALERT, "slow", STUCK),
    ]
    assert "2.0 day(s)" in found[0].message
    assert "--new-key-file" in found[1].message
    assert "rotator resume slow" in found[2].message


def test_a_sweeps_orphans_and_surplus_keys_are_findings() -> None:
    found = sweep_findings(
        [
            SweepFinding("trading", "apk_orphan", "orphan", "active key no store knows; made by this tool"),
            SweepFinding("trading", "apk_gone", "revoked", "active key no store knew"),
            SweepFinding("trading", "apk_busy", "in-flight", "belongs to unfinished rotation"),
            SweepFinding("trading", None, "warning", "3 active keys at Bluum (expected at most 2)"),
        ]
    )
    assert [(f.kind, f.subject) for f in found] == [(EventKind.ORPHAN, "apk_orphan"), (EventKind.ALERT, TOO_MANY_KEYS)]


def test_reminders_announce_once_again_after_the_interval_and_anew_after_a_clear(tmp_path: Path) -> None:
    path = tmp_path / "history" / ".alerts-state.json"
    overdue = Finding(EventKind.OVERDUE, "trading", "overdue")
    stuck_one = Finding(EventKind.ALERT, "slow", "stuck", STUCK)
    day = 86400.0

    def tick(findings: list[Finding], at: float) -> list[Finding]:
        memory = Reminders(path)  # a new process each time, as cron runs it
        chosen = memory.due(findings, at, day)
        memory.save()
        return chosen

    assert tick([overdue, stuck_one], NOW) == [overdue, stuck_one]
    assert tick([overdue, stuck_one], NOW + 900) == []
    assert tick([overdue], NOW + 1800) == []  # stuck_one cleared: forgotten
    assert tick([overdue, stuck_one], NOW + 2700) == [stuck_one]  # and announced at once when it returns
    assert tick([overdue, stuck_one], NOW + day) == [overdue]
    assert path.stat().st_mode & 0o777 == 0o600


def test_no_memory_file_is_left_when_nothing_was_found(tmp_path: Path) -> None:
    memory = Reminders(tmp_path / ".alerts-state.json")
    assert memory.due([], NOW, 86400.0) == []
    memory.save()
    assert not (tmp_path / ".alerts-state.json").exists()


def test_a_damaged_memory_file_means_announcing_again_not_failing(tmp_path: Path) -> None:
    path = tmp_path / ".alerts-state.json"
    path.write_text("{not json")
    finding = Finding(EventKind.OVERDUE, "trading", "overdue")
    assert Reminders(path).due([finding], NOW, 86400.0) == [finding]
