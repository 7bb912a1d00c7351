"""The pure half of staggered reloads (rotator/rules/rollout.py): the batch split, which batch is next, what a
rollback leaves alone, the health back-off, and `reload_batch` as written; and the record's `healthy` field."""

from __future__ import annotations

import json

import pytest

from rotator.rules.record import Phase, RotationRecord
from rotator.rules.rollout import (
    HEALTH_MAX_DELAY,
    BatchSize,
    health_delay,
    next_batch,
    parse_batch,
    passed,
    split,
    untouched,
)

KEYS = ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (BatchSize(), [("a", "b", "c", "d", "e", "f")]),
        (BatchSize(count=2), [("a", "b"), ("c", "d"), ("e", "f")]),
        (BatchSize(count=4), [("a", "b", "c", "d"), ("e", "f")]),
        (BatchSize(count=10), [("a", "b", "c", "d", "e", "f")]),
        (BatchSize(count=1), [(k,) for k in KEYS]),
        (BatchSize(percent=50), [("a", "b", "c"), ("d", "e", "f")]),
        (BatchSize(percent=25), [("a", "b"), ("c", "d"), ("e", "f")]),  # 1.5 rounded up
        (BatchSize(percent=1), [(k,) for k in KEYS]),  # at least one
        (BatchSize(percent=100), [("a", "b", "c", "d", "e", "f")]),
    ],
)
def test_split_keeps_the_declared_order(size: BatchSize, expected: list[tuple[str, ...]]):
    assert split(KEYS, size) == expected
    assert [key for batch in split(KEYS, size) for key in batch] == KEYS


def test_no_actions_no_batches():
    assert split([], BatchSize(count=2)) == []
    assert split([], BatchSize()) == []


def test_which_batch_is_next_and_what_a_rollback_leaves_alone():
    batches = split(KEYS, BatchSize(count=2))
    assert next_batch(batches, ()) == 0
    assert untouched(batches, ()) == ("c", "d", "e", "f")
    assert next_batch(batches, ("a", "b")) == 1
    assert untouched(batches, ("a", "b")) == ("e", "f"), "batch 2 was reached: it is reloaded back"
    assert next_batch(batches, ("a", "b", "c")) == 1, "a batch passes only whole"
    assert next_batch(batches, KEYS) is None
    assert untouched(batches, KEYS) == (), "every batch was reached"
    assert passed(("a", "b"), {"b", "a", "z"})
    assert not passed(("a", "b"), {"a"})


def test_a_batch_size_edited_after_a_crash_keeps_what_passed():
    """Passed actions are remembered by key: with batches of 3 instead of 2, the first batch still has one action
    left to prove, and nothing after it was reached."""
    batches = split(KEYS, BatchSize(count=3))
    assert next_batch(batches, ("a", "b")) == 0
    assert untouched(batches, ("a", "b")) == ("d", "e", "f")


def test_health_back_off_doubles_to_its_ceiling():
    delays = [health_delay(n) for n in range(8)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == HEALTH_MAX_DELAY
    assert delays == sorted(delays)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, BatchSize(count=2)),
        (1, BatchSize(count=1)),
        ("25%", BatchSize(percent=25)),
        (" 100 % ", BatchSize(percent=100)),
    ],
)
def test_reload_batch_as_written(value: object, expected: BatchSize):
    assert parse_batch(value) == expected


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (0, "at least 1"),
        (-3, "at least 1"),
        ("0%", "1% to 100%"),
        ("150%", "1% to 100%"),
        ("25", "neither a whole number"),
        ("half", "neither a whole number"),
        (2.5, "expected a number of actions"),
        (True, "expected a number of actions"),
        ([2], "expected a number of actions"),
    ],
)
def test_a_wrong_reload_batch_says_why(value: object, said: str):
    problem = parse_batch(value)
    assert isinstance(problem, str)
    assert said in problem


def test_batch_size_words():
    assert BatchSize().describe() == "all at once"
    assert not BatchSize().staggered
    assert BatchSize(count=2).describe() == "2 at a time"
    assert BatchSize(percent=25).describe() == "25% at a time"
    assert BatchSize(percent=25).staggered


def test_the_record_keeps_healthy_through_json_and_older_records_parse():
    record = RotationRecord("trading", "t" * 32, Phase.DEPLOYED, "bluum", 1.0, 2.0, healthy=("app:1", "app:2"))
    again = RotationRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    older = record.to_dict()
    del older["healthy"]
    assert RotationRecord.from_dict(older).healthy == ()
