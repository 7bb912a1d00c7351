"""The label-move rules for stores that move one label per call (AWS): a crash between any two calls is repaired
by planning again from the labels as they are, and the end state is the one the stage rules describe."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backends import stages
from backends.stages import CURRENT_LABEL as CUR
from backends.stages import PENDING_LABEL as PEND
from backends.stages import PREVIOUS_LABEL as PREV
from backends.stages import LabelMove, Labels
from rotator.core.errors import StoreConflict

Plan = Callable[[Labels], list[LabelMove]]


def labels(**versions: str) -> Labels:
    """labels(v0="current", v1="pending previous") → {"v0": {"current"}, "v1": {"pending", "previous"}}."""
    return {version: frozenset(carried.split()) for version, carried in versions.items()}


def apply(state: Labels, move: LabelMove) -> Labels:
    """One call, with AWS's rules: the label must be on `off`; moving CURRENT puts PREVIOUS on the version it left."""
    new = {version: set(carried) for version, carried in state.items()}
    if move.off is not None:
        assert move.label in new[move.off], f"{move} takes {move.label} off a version that lacks it"
        new[move.off].discard(move.label)
    if move.to is not None:
        for version, carried in new.items():
            assert version == move.to or move.label not in carried, f"{move} leaves {move.label} on two versions"
        new.setdefault(move.to, set()).add(move.label)
        if move.label == CUR and move.off is not None:
            for carried in new.values():
                carried.discard(PREV)
            new[move.off].add(PREV)
    return {version: frozenset(carried) for version, carried in new.items()}


def run(state: Labels, plan: Plan) -> Labels:
    for move in plan(state):
        state = apply(state, move)
    return state


def promote(state: Labels) -> list[LabelMove]:
    return stages.moves_to_promote(state, "v1", where="secret", store="aws")


def restore(state: Labels) -> list[LabelMove]:
    return stages.moves_to_restore(state, "v1", where="secret", store="aws")


def stage(state: Labels) -> list[LabelMove]:
    return stages.moves_to_stage(state, "v1")


def clear(state: Labels) -> list[LabelMove]:
    return stages.moves_to_clear(state, "v1")


CASES = [
    ("stage a fresh secret", stage, labels(v0="current"), labels(v0="current", v1="pending")),
    (
        "stage over an abandoned PENDING",
        stage,
        labels(v0="current", v9="pending"),
        labels(v0="current", v9="", v1="pending"),
    ),
    ("promote", promote, labels(v0="current", v1="pending"), labels(v0="previous", v1="current")),
    (
        "promote over a PREVIOUS never cleared",
        promote,
        labels(vp="previous", v0="current", v1="pending"),
        labels(vp="", v0="previous", v1="current"),
    ),
    ("restore after promote", restore, labels(v0="previous", v1="current"), labels(v0="current", v1="")),
    ("restore before promote", restore, labels(v0="current", v1="pending"), labels(v0="current", v1="")),
    ("clear after promote", clear, labels(v0="previous", v1="current"), labels(v0="", v1="current")),
]


@pytest.mark.parametrize(("name", "plan", "start", "end"), CASES, ids=[case[0] for case in CASES])
def test_the_moves_reach_the_stage_rules_end_state_and_then_ask_for_nothing(name, plan, start, end):
    finished = run(start, plan)
    assert finished == end
    assert plan(finished) == []


@pytest.mark.parametrize(("name", "plan", "start", "end"), CASES, ids=[case[0] for case in CASES])
def test_a_crash_after_any_call_is_repaired_by_planning_again(name, plan, start, end):
    moves = plan(start)
    for crash_after in range(len(moves)):
        state = start
        for move in moves[: crash_after + 1]:
            state = apply(state, move)
        assert run(state, plan) == end, f"crash after call {crash_after + 1} of {len(moves)}"


def test_promote_of_a_token_no_label_carries_conflicts():
    with pytest.raises(StoreConflict, match="neither PENDING nor CURRENT carries token v1"):
        promote(labels(v0="current", v2="pending"))


def test_restore_without_an_older_version_conflicts():
    with pytest.raises(StoreConflict, match="no other version is PREVIOUS"):
        restore(labels(v1="current"))


def test_restore_leaves_a_current_of_another_token_alone():
    state = labels(v0="previous", v2="current")
    assert restore(state) == []


def test_clear_of_another_rotation_asks_for_nothing():
    assert clear(labels(v0="previous", v2="current")) == []


def test_a_label_on_two_versions_is_a_conflict():
    with pytest.raises(StoreConflict, match="on 2 versions"):
        promote(labels(v0="current", v1="pending", v2="pending"))


def test_the_simulated_store_rule_moves_previous_with_current():
    """Guards the test's own model of AWS: moving CURRENT puts PREVIOUS on the version it left, and only there."""
    state = apply(labels(vp="previous", v0="current", v1=""), LabelMove(CUR, "v1", "v0"))
    assert state == labels(vp="", v0="previous", v1="current")
    assert PEND not in state["v1"]
