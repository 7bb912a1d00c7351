"""rotator/rules/reverse.py: when a rollback waits for its consumers, and what counts as moved back (no I/O)."""

from __future__ import annotations

import pytest

from rotator.rules.consumers import Attestation
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord
from rotator.rules.reverse import not_back, swapped, waits_back


def rolling_back(rollback_from: str, old_key_label: str = "apk_old") -> RotationRecord:
    return RotationRecord(
        credential="trading",
        token="t" * 32,
        phase=Phase.ROLLING_BACK,
        issuer="bluum",
        started_at=0.0,
        updated_at=0.0,
        old_key_label=old_key_label,
        rollback_from=rollback_from,
    )


@pytest.mark.parametrize("phase", ["accepted", "deployed", "reloaded", "verified", "awaiting_consumers"])
def test_a_rollback_from_where_consumers_may_hold_the_new_key_waits_for_them(phase: str) -> None:
    assert waits_back(rolling_back(phase))


@pytest.mark.parametrize("phase", ["started", "pending_stored", "staged"])
def test_a_rollback_from_before_the_new_key_was_deployed_does_not_wait(phase: str) -> None:
    assert not waits_back(rolling_back(phase))


def test_an_enrollment_has_no_old_key_to_move_back_to() -> None:
    assert not waits_back(rolling_back("verified", old_key_label=ENROLLMENT))


def test_only_the_old_key_counts_as_moved_back() -> None:
    answers = [
        Attestation("back", "app", "old", "sha256:0000000000000000"),
        Attestation("still", "app", "new", "sha256:1111111111111111"),
        Attestation("third", "app", "other", "sha256:2222222222222222"),
        Attestation("silent", "app", "unreachable", None, "timed out after 1s"),
        Attestation("garbled", "app", "malformed", None, "not a fingerprint"),
    ]
    assert [a.consumer for a in not_back(answers)] == ["still", "third", "silent", "garbled"]


def test_answers_judged_against_the_old_key_are_put_back_in_the_rotations_terms() -> None:
    assert swapped(Attestation("a", "app", "new", "x")).outcome == "old"
    assert swapped(Attestation("a", "app", "old", "x")).outcome == "new"
    assert swapped(Attestation("a", "app", "unreachable")).outcome == "unreachable"
