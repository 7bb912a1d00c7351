"""The pure half of consumer attestation (issue 19): every outcome of an answer, who counts as unmoved, the words
messages use, the back-off, and the machine's gate over every phase (Step.ATTEST before the old key may go)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from rotator.attest import fingerprint
from rotator.rules import machine
from rotator.rules.consumers import Attestation, choices, classify, describe, poll_delay, summary, unmoved
from rotator.rules.machine import Step
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord

NEW, OLD, OTHER = fingerprint("pk_new"), fingerprint("pk_old"), fingerprint("pk_other")
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("reported", "old", "outcome"),
    [(NEW, OLD, "new"), (OLD, OLD, "old"), (OTHER, OLD, "other"), (None, OLD, "malformed"), (OLD, None, "other")],
)
def test_an_answer_is_new_old_other_or_malformed(reported, old, outcome) -> None:
    assert classify(reported, new_fingerprint=NEW, old_fingerprint=old) == outcome


def test_everything_but_new_is_unmoved_in_order() -> None:
    found = [
        Attestation("a", "app", "new", NEW),
        Attestation("b", "app", "old", OLD),
        Attestation("c", "app", "unreachable", None, "timed out after 5s"),
        Attestation("d", "mirror", "malformed", None, "not a fingerprint answer"),
        Attestation("e", "app", "other", OTHER),
    ]
    assert [a.consumer for a in unmoved(found)] == ["b", "c", "d", "e"]
    assert unmoved(found[:1]) == []


@pytest.mark.parametrize(
    ("attestation", "words"),
    [
        (Attestation("t1", "app", "new", NEW), "t1 (store app): reports the new key"),
        (Attestation("t1", "app", "old", OLD), "t1 (store app): reports the old key"),
        (Attestation("t1", "app", "other", OTHER), f"t1 (store app): reports another key ({OTHER})"),
        (Attestation("t1", "app", "unreachable", None, "HTTP 503"), "t1 (store app): unreachable: HTTP 503"),
        (Attestation("t1", "app", "unreachable"), "t1 (store app): unreachable: no answer"),
        (Attestation("t1", "app", "malformed", None, "junk"), "t1 (store app): malformed answer: junk"),
    ],
)
def test_describe_says_who_where_and_what(attestation, words) -> None:
    assert describe(attestation) == words


def test_the_summary_counts_and_names_the_rest() -> None:
    found = [Attestation("a", "app", "new", NEW), Attestation("b", "app", "old", OLD)]
    assert summary(found) == "1 of 2 consumers report the new key; b (store app): reports the old key"
    assert summary(found[:1]) == "1 of 1 consumers report the new key"


def test_the_choices_name_the_three_commands() -> None:
    text = choices("trading")
    assert "`rotator resume trading`" in text
    assert "`rotator rollback trading`" in text
    assert "`rotator resume trading --revoke-anyway --reason TEXT`" in text


def test_polls_back_off_from_1s_doubling_to_30s() -> None:
    assert [poll_delay(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def record(phase: Phase, **changes: object) -> RotationRecord:
    base = RotationRecord(
        credential="trading",
        token="t" * 32,
        phase=phase,
        issuer="bluum",
        started_at=NOW - 10,
        updated_at=NOW - 5,
        old_key_id="apk_old",
        old_key_label="apk_old",
        revoke_after=NOW + 60,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


BOOLS = [True, False]


@pytest.mark.parametrize(
    ("phase", "moved", "override", "emergency", "grace_left", "skip"),
    list(itertools.product(Phase, BOOLS, BOOLS, BOOLS, BOOLS, BOOLS)),
)
def test_with_consumers_attest_comes_before_the_grace_wait_and_the_revoke(
    phase, moved, override, emergency, grace_left, skip
) -> None:
    rec = record(
        phase,
        consumers_moved_at=NOW - 1 if moved else None,
        revoked_over="ticket 7" if override else None,
        emergency=emergency,
        revoke_after=NOW + 60 if grace_left else NOW - 1,
    )
    without = machine.next_step(rec, now=NOW, mints=True, revokes=True, skip_grace=skip)
    step = machine.next_step(rec, now=NOW, mints=True, revokes=True, skip_grace=skip, consumers=True)
    gated = phase in (Phase.VERIFIED, Phase.AWAITING_CONSUMERS) and not (moved or override or emergency)
    assert step is (Step.ATTEST if gated else without)
    if phase is Phase.AWAITING_CONSUMERS and not gated:
        assert step is Step.REVOKE_OLD  # released by the consumers, an override or an emergency: no grace wait


def test_an_enrollment_has_no_old_key_to_hold() -> None:
    rec = record(Phase.VERIFIED, old_key_label=ENROLLMENT, revoke_after=NOW - 1)
    assert machine.next_step(rec, now=NOW, mints=True, revokes=True, consumers=True) is not Step.ATTEST


def test_awaiting_consumers_can_roll_back_and_reloads_on_the_way_back() -> None:
    assert machine.can_roll_back(record(Phase.AWAITING_CONSUMERS))
    rolling = record(Phase.ROLLING_BACK, rollback_from=Phase.AWAITING_CONSUMERS.value)
    assert machine.reload_on_rollback(rolling)
    assert not Phase.AWAITING_CONSUMERS.terminal


def test_the_new_fields_round_trip_and_an_old_record_parses() -> None:
    rec = record(Phase.AWAITING_CONSUMERS, unmoved=("b (store app): reports the old key",), revoked_over="why")
    data = rec.to_dict()
    assert data["unmoved"] == ["b (store app): reports the old key"]
    assert RotationRecord.from_dict(data) == rec
    plain = record(Phase.VERIFIED).to_dict()
    assert not {"consumers_moved_at", "unmoved", "revoked_over"} & set(plain)  # what a rotation always wrote
    assert RotationRecord.from_dict(plain) == record(Phase.VERIFIED)
