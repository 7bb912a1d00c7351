"""The pure decisions behind the late-write fences of the AWS store (issue 17): where a rollback copies the old key
(backends/aws/fence.py) and which PENDING a sweep takes off (rotator/rotation/stale_pending.py). The behaviour itself is
tests/e2e/test_fencing_late_writes.py; these pin the cases a crash in the middle or a finished record gives."""

from __future__ import annotations

import pytest

from backends.aws import fence as aws_fence
from backends.stages import CURRENT_LABEL, PENDING_LABEL, PREVIOUS_LABEL, LabelMove, Labels
from rotator.core.model import StoredKey
from rotator.core.secret import Secret
from rotator.rotation.stale_pending import is_stale
from rotator.rules.record import Phase, RotationRecord

NEW = "n" * 32
OLD = "o" * 32
PRIOR = "p" * 32
FENCE = aws_fence.fence_version(NEW)


def labels(**carried: str) -> Labels:
    """version=label,label → Labels."""
    return {version: frozenset(x for x in names.split(",") if x) for version, names in carried.items()}


def test_the_fence_version_is_a_valid_version_id_made_from_the_token():
    assert 32 <= len(FENCE) <= 64
    assert aws_fence.fence_version(NEW) == FENCE
    assert aws_fence.fence_version(OLD) != FENCE


def test_a_rollback_before_promote_copies_current_and_keeps_previous_where_it_was():
    fence = aws_fence.plan(labels(**{OLD: CURRENT_LABEL, NEW: PENDING_LABEL, PRIOR: PREVIOUS_LABEL}), NEW)
    assert fence == aws_fence.Fence(source=OLD, off=OLD, version=FENCE, previous=PRIOR)
    assert fence.moves() == [LabelMove(CURRENT_LABEL, FENCE, OLD), LabelMove(PREVIOUS_LABEL, PRIOR, OLD)]


def test_a_rollback_after_promote_copies_previous_and_empties_previous():
    fence = aws_fence.plan(labels(**{NEW: CURRENT_LABEL, OLD: PREVIOUS_LABEL}), NEW)
    assert fence == aws_fence.Fence(source=OLD, off=NEW, version=FENCE, previous=None)


def test_a_rollback_run_again_after_the_copy_moves_current_onto_it():
    """The copy was made (under its own label), the move did not happen: the plan is the same again."""
    carried = labels(**{NEW: CURRENT_LABEL, OLD: PREVIOUS_LABEL, FENCE: aws_fence.FENCE_LABEL})
    assert aws_fence.plan(carried, NEW) == aws_fence.Fence(source=OLD, off=NEW, version=FENCE, previous=None)
    assert aws_fence.cleanup(carried, NEW) == [], "the fence's label stays until AWSCURRENT is there"


@pytest.mark.parametrize(
    "carried",
    [
        {FENCE: f"{CURRENT_LABEL},{aws_fence.FENCE_LABEL}", NEW: PREVIOUS_LABEL},
        {FENCE: CURRENT_LABEL},
        {OLD: CURRENT_LABEL},  # nothing of the token staged: nothing can move late
        {OLD: CURRENT_LABEL, "m" * 32: PENDING_LABEL},  # another rotation's PENDING
    ],
)
def test_nothing_to_copy_once_fenced_or_when_nothing_of_the_token_is_staged(carried: dict[str, str]):
    assert aws_fence.plan(labels(**carried), NEW) is None


def test_the_fence_label_comes_off_once_current_is_there():
    carried = labels(**{FENCE: f"{CURRENT_LABEL},{aws_fence.FENCE_LABEL}"})
    assert aws_fence.cleanup(carried, NEW) == [LabelMove(aws_fence.FENCE_LABEL, None, FENCE)]


def test_a_current_of_the_token_with_no_older_key_is_left_to_the_refusal():
    assert aws_fence.plan(labels(**{NEW: f"{CURRENT_LABEL},{PREVIOUS_LABEL}"}), NEW) is None


def _key(token: str) -> StoredKey:
    return StoredKey(api_key="apk_public", api_secret=Secret("s3cret-value"), token=token)


def _record(token: str, phase: Phase) -> RotationRecord:
    return RotationRecord("trading", token, phase, "bluum", 0.0, 0.0)


def test_a_pending_of_a_finished_rotation_is_stale():
    assert is_stale(_key(NEW), _key(OLD), _record(NEW, Phase.ROLLED_BACK))
    assert is_stale(_key(NEW), _key(OLD), None)


def test_a_pending_of_the_rotation_in_flight_is_not_stale():
    assert not is_stale(_key(NEW), _key(OLD), _record(NEW, Phase.STARTED))


def test_a_pending_of_another_token_than_the_rotation_in_flight_is_stale():
    assert is_stale(_key(NEW), _key(OLD), _record(PRIOR, Phase.STARTED))


def test_a_pending_that_current_carries_too_is_not_stale():
    """A promote between its two label moves: the key is current; taking PENDING off is the promote's job."""
    assert not is_stale(_key(NEW), _key(NEW), _record(NEW, Phase.COMPLETED))
