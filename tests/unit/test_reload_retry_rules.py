"""rotator/rules/reload_retry.py: when a failed reload is retried, which actions run, when a run stands for another;
and the record fields that carry it (older records parse, the fields survive a JSON round trip)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from rotator.rules import reload_retry
from rotator.rules.record import Phase, RotationRecord


def deployed(**changes: object) -> RotationRecord:
    record = RotationRecord("trading", "t" * 32, Phase.DEPLOYED, "bluum", started_at=1000.0, updated_at=1000.0)
    return record.advance(Phase.DEPLOYED, 1000.0, **changes)


@pytest.mark.parametrize(
    ("failures", "minutes"), [(0, 0), (1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (6, 60), (400, 60)]
)
def test_the_wait_doubles_from_five_minutes_to_at_most_an_hour(failures: int, minutes: int):
    assert reload_retry.retry_delay(failures) == timedelta(minutes=minutes)


def test_the_scheduler_waits_out_the_backoff_and_a_person_never_does():
    record = deployed(reload_failures=2, reload_failed_at=5000.0)
    retry_at = 5000.0 + 600
    assert reload_retry.next_retry(record) == retry_at
    assert reload_retry.retry_wait(record, retry_at - 1, scheduled=True) == retry_at
    assert reload_retry.retry_wait(record, retry_at, scheduled=True) is None
    assert reload_retry.retry_wait(record, retry_at - 1, scheduled=False) is None


def test_no_failure_no_wait_and_an_emergency_does_not_wait():
    assert reload_retry.retry_wait(deployed(), 1000.0, scheduled=True) is None
    leaked = deployed(reload_failures=3, reload_failed_at=5000.0, emergency=True)
    assert reload_retry.retry_wait(leaked, 5001.0, scheduled=True) is None


def test_only_the_actions_not_done_for_this_key_run():
    assert reload_retry.pending(["app:a", "mirror:b", "mirror:c"], {"app:a"}) == [False, True, True]


def test_a_run_stands_for_another_only_when_it_succeeded_after_that_key_was_in_place():
    assert reload_retry.run_stands_for(ran_ok=True, started=10.0, promoted=9.0)
    assert not reload_retry.run_stands_for(ran_ok=True, started=9.0, promoted=10.0), "it loaded the old key"
    assert not reload_retry.run_stands_for(ran_ok=False, started=10.0, promoted=9.0)
    assert not reload_retry.run_stands_for(ran_ok=True, started=10.0, promoted=None), "promoted elsewhere"


def test_the_record_fields_round_trip_through_json_and_older_records_parse():
    record = deployed(reload_failures=1, reload_failed_at=5000.0, reloads_done=("app:0123456789abcdef",))
    back = RotationRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back == record
    older = record.to_dict()
    for field in ("reload_failures", "reload_failed_at", "reloads_done"):
        del older[field]
    parsed = RotationRecord.from_dict(older)
    assert (parsed.reload_failures, parsed.reload_failed_at, parsed.reloads_done) == (0, None, ())
