"""The stage rules of `backends.stages`, branch by branch, without a store around them.

Both stores delegate every stage move to these pure functions, so each case here states the exact stages that come
out (and what the caller is told to log), not only that "something happened".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from backends import stages
from backends.stages import Cleared, Promotion, Rollback, Staged, StageLog, Stages
from rotator.core.errors import StoreConflict
from rotator.core.model import StoredKey
from tests.store_contract import make_key

WHERE = "the test place"
STORE = "app"
LOGGER = "rotator.store.test"

K0 = make_key(0)
K1 = make_key(1, token="tok-1")
K2 = make_key(2, token="tok-2")
K3 = make_key(3, token="tok-3")


def same(actual: StoredKey | None, expected: StoredKey | None) -> bool:
    """Same pair and token (or both empty)."""
    if actual is None or expected is None:
        return actual is expected
    return actual.same_key(expected) and actual.token == expected.token


def assert_stages(actual: Stages, *, current: StoredKey | None, pending: StoredKey | None, previous: StoredKey | None):
    assert same(actual.current, current), actual.current
    assert same(actual.pending, pending), actual.pending
    assert same(actual.previous, previous), actual.previous


def never_called() -> StoredKey | None:
    raise AssertionError("`shown` must not be read when no promotion happens")


def shows(key: StoredKey | None) -> Callable[[], StoredKey | None]:
    return lambda: key


def conflict_text(caught: pytest.ExceptionInfo[StoreConflict]) -> str:
    assert caught.value.store == STORE
    text = str(caught.value)
    prefix = f"store {STORE!r}: "
    assert text.startswith(prefix), text
    assert WHERE in text
    assert "nothing was changed" in text
    return text.removeprefix(prefix)


# --------------------------------------------------------------------------------------------------- Stages


def test_empty_stages() -> None:
    assert_stages(Stages(), current=None, pending=None, previous=None)
    assert Stages().holder_of("tok-1") is None


def test_holder_of_finds_each_stage_and_prefers_pending() -> None:
    assert Stages(current=K1).holder_of("tok-1") is K1
    assert Stages(pending=K1).holder_of("tok-1") is K1
    assert Stages(previous=K1).holder_of("tok-1") is K1
    assert Stages(current=K0, pending=K2, previous=K1).holder_of("tok-3") is None
    assert Stages(current=K0, previous=K1).holder_of("tok-1") is K1
    other = make_key(4, token="tok-1")
    assert Stages(current=other, pending=K1).holder_of("tok-1") is K1
    assert Stages(current=other, previous=K1).holder_of("tok-1") is other


def test_holder_of_ignores_keys_without_a_token() -> None:
    assert Stages(current=K0, previous=make_key(5)).holder_of("") is None


def test_stages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Stages().current = K0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------- require_token


def test_require_token() -> None:
    assert stages.require_token(K1) == "tok-1"
    for tokenless in (K0, make_key(6, token="")):
        with pytest.raises(ValueError, match=f"needs a key with a rotation token; {tokenless.label} has none"):
            stages.require_token(tokenless)


# --------------------------------------------------------------------------------------------------- put_pending


def test_put_pending_into_empty_pending() -> None:
    before = Stages(current=K0, previous=make_key(9))
    staged = stages.put_pending(before, K1, where=WHERE, store=STORE)
    assert staged == Staged(Stages(current=K0, pending=K1, previous=before.previous), K1, changed=True, replaced=None)
    assert staged.stages.pending is K1
    assert before.pending is None  # the input is left alone


def test_put_pending_into_an_empty_store() -> None:
    staged = stages.put_pending(Stages(), K1, where=WHERE, store=STORE)
    assert_stages(staged.stages, current=None, pending=K1, previous=None)
    assert staged.changed
    assert staged.replaced is None


def test_put_pending_replaces_a_pending_of_another_token() -> None:
    staged = stages.put_pending(Stages(current=K0, pending=K2), K1, where=WHERE, store=STORE)
    assert_stages(staged.stages, current=K0, pending=K1, previous=None)
    assert staged.changed
    assert staged.replaced is K2


@pytest.mark.parametrize("stage", ["pending", "current", "previous"])
def test_put_pending_same_token_same_key_is_a_no_op(stage: str) -> None:
    held = make_key(1, token="tok-1")  # an equal key, not the same object
    before = Stages(**{stage: held})
    staged = stages.put_pending(before, K1, where=WHERE, store=STORE)
    assert staged.stages is before
    assert staged.changed is False
    assert staged.replaced is None
    assert staged.key is K1


def test_put_pending_same_token_same_key_is_a_no_op_even_with_another_pending() -> None:
    before = Stages(current=K1, pending=K2)
    staged = stages.put_pending(before, K1, where=WHERE, store=STORE)
    assert staged.stages is before
    assert not staged.changed
    assert staged.replaced is None


@pytest.mark.parametrize("stage", ["pending", "current", "previous"])
def test_put_pending_same_token_other_key_conflicts(stage: str) -> None:
    before = Stages(**{stage: K1})
    with pytest.raises(StoreConflict) as caught:
        stages.put_pending(before, make_key(3, token="tok-1"), where=WHERE, store=STORE)
    text = conflict_text(caught)
    assert text.startswith(f"token tok-1 already stages apk_contract0001 in {WHERE}, not apk_contract0003; ")
    assert "start a new rotation for a new key" in text


def test_put_pending_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        stages.put_pending(Stages(), K0, where=WHERE, store=STORE)


# --------------------------------------------------------------------------------------------------- promote


def test_promote_moves_pending_to_current_and_shown_to_previous() -> None:
    shown = make_key(0, token="tok-0")
    promotion = stages.promote(Stages(current=K0, pending=K1), "tok-1", shown=shows(shown), where=WHERE, store=STORE)
    assert promotion == Promotion(Stages(current=K1, pending=None, previous=shown), K1, changed=True, dropped=None)
    assert promotion.previous is shown  # what readers saw, not the stored CURRENT


def test_promote_into_an_empty_current_keeps_previous() -> None:
    promotion = stages.promote(Stages(pending=K1, previous=K0), "tok-1", shown=shows(None), where=WHERE, store=STORE)
    assert_stages(promotion.stages, current=K1, pending=None, previous=K0)
    assert promotion.changed
    assert promotion.dropped is None


def test_promote_into_an_empty_store() -> None:
    promotion = stages.promote(Stages(pending=K1), "tok-1", shown=shows(None), where=WHERE, store=STORE)
    assert_stages(promotion.stages, current=K1, pending=None, previous=None)
    assert promotion.previous is None
    assert promotion.dropped is None


def test_promote_when_readers_already_see_the_pending_key_keeps_previous() -> None:
    """A hand-copied key or a crashed promote: the key readers see is PENDING's, so it must not become PREVIOUS."""
    before = Stages(current=K0, pending=K1, previous=K2)
    promotion = stages.promote(before, "tok-1", shown=shows(make_key(1)), where=WHERE, store=STORE)
    assert_stages(promotion.stages, current=K1, pending=None, previous=K2)
    assert promotion.dropped is None


def test_promote_drops_an_uncleared_previous() -> None:
    before = Stages(current=K0, pending=K1, previous=K2)
    promotion = stages.promote(before, "tok-1", shown=shows(K0), where=WHERE, store=STORE)
    assert_stages(promotion.stages, current=K1, pending=None, previous=K0)
    assert promotion.dropped is K2


def test_promote_does_not_report_a_previous_replaced_by_its_own_key() -> None:
    before = Stages(current=K3, pending=K1, previous=make_key(0, token="tok-0"))
    promotion = stages.promote(before, "tok-1", shown=shows(K0), where=WHERE, store=STORE)
    assert_stages(promotion.stages, current=K1, pending=None, previous=K0)
    assert promotion.dropped is None


def test_promote_is_idempotent_when_current_carries_the_token() -> None:
    before = Stages(current=K1, pending=K2, previous=K0)
    promotion = stages.promote(before, "tok-1", shown=never_called, where=WHERE, store=STORE)
    assert promotion.stages is before
    assert promotion.key is K1
    assert promotion.changed is False
    assert promotion.dropped is None


@pytest.mark.parametrize(
    "before",
    [
        Stages(),
        Stages(current=K0),
        Stages(current=K0, pending=K2),
        Stages(current=K0, previous=K1),  # PREVIOUS carrying the token does not count
    ],
    ids=["empty", "no-pending", "other-token", "token-in-previous"],
)
def test_promote_conflicts_when_neither_pending_nor_current_carries_the_token(before: Stages) -> None:
    with pytest.raises(StoreConflict) as caught:
        stages.promote(before, "tok-1", shown=never_called, where=WHERE, store=STORE)
    text = conflict_text(caught)
    assert text.startswith(f"neither PENDING nor CURRENT carries token tok-1 in {WHERE}; nothing was changed. ")
    assert "run `rotator status`" in text


def test_promote_lets_a_failing_shown_through() -> None:
    def broken() -> StoredKey | None:
        raise RuntimeError("cannot read what readers see")

    with pytest.raises(RuntimeError, match="cannot read"):
        stages.promote(Stages(pending=K1), "tok-1", shown=broken, where=WHERE, store=STORE)


# --------------------------------------------------------------------------------------------------- restore_previous


def test_restore_brings_previous_back() -> None:
    rollback = stages.restore_previous(Stages(current=K1, previous=K0), "tok-1", where=WHERE, store=STORE)
    assert rollback == Rollback(Stages(current=K0, pending=None, previous=None), restored=K0, replaced=K1, dropped=None)
    assert rollback.changed


def test_restore_keeps_a_pending_of_another_token() -> None:
    rollback = stages.restore_previous(Stages(current=K1, pending=K2, previous=K0), "tok-1", where=WHERE, store=STORE)
    assert_stages(rollback.stages, current=K0, pending=K2, previous=None)
    assert rollback.restored is K0
    assert rollback.replaced is K1
    assert rollback.dropped is None


def test_restore_drops_a_pending_of_the_same_token_too() -> None:
    pending = make_key(3, token="tok-1")
    rollback = stages.restore_previous(
        Stages(current=K1, pending=pending, previous=K0), "tok-1", where=WHERE, store=STORE
    )
    assert_stages(rollback.stages, current=K0, pending=None, previous=None)
    assert rollback.restored is K0
    assert rollback.dropped is pending


def test_restore_of_an_unpromoted_rotation_only_drops_its_pending() -> None:
    rollback = stages.restore_previous(Stages(current=K0, pending=K1, previous=K2), "tok-1", where=WHERE, store=STORE)
    assert rollback == Rollback(Stages(current=K0, pending=None, previous=K2), restored=None, replaced=None, dropped=K1)
    assert rollback.changed


def test_restore_with_an_empty_current_only_drops_the_pending() -> None:
    rollback = stages.restore_previous(Stages(pending=K1, previous=K0), "tok-1", where=WHERE, store=STORE)
    assert_stages(rollback.stages, current=None, pending=None, previous=K0)
    assert rollback.restored is None
    assert rollback.dropped is K1


@pytest.mark.parametrize(
    "before",
    [
        Stages(),
        Stages(current=K0, previous=K1),  # the token is PREVIOUS: an older rotation, not this one's to undo
        Stages(current=K2, pending=K3, previous=K0),
    ],
    ids=["empty", "token-in-previous", "other-tokens"],
)
def test_restore_leaves_stages_alone_when_no_stage_of_the_token_can_move(before: Stages) -> None:
    rollback = stages.restore_previous(before, "tok-1", where=WHERE, store=STORE)
    assert rollback.stages == before
    assert rollback.restored is None
    assert rollback.replaced is None
    assert rollback.dropped is None
    assert rollback.changed is False


def test_restore_conflicts_when_previous_is_empty() -> None:
    with pytest.raises(StoreConflict) as caught:
        stages.restore_previous(
            Stages(current=K1, pending=make_key(3, token="tok-1")), "tok-1", where=WHERE, store=STORE
        )
    text = conflict_text(caught)
    assert text.startswith(f"CURRENT carries token tok-1 but PREVIOUS is empty in {WHERE}, so there is no older key")
    assert "Keep CURRENT, or deploy a working key with a new rotation" in text


# --------------------------------------------------------------------------------------------------- clear_previous


def test_clear_previous_forgets_previous_only() -> None:
    cleared = stages.clear_previous(Stages(current=K1, pending=K2, previous=K0), "tok-1")
    assert cleared == Cleared(Stages(current=K1, pending=K2, previous=None), cleared=K0)


def test_clear_previous_of_an_empty_previous() -> None:
    cleared = stages.clear_previous(Stages(current=K1), "tok-1")
    assert cleared == Cleared(Stages(current=K1), cleared=None)


@pytest.mark.parametrize("current", [None, K0, K2], ids=["no-current", "current-without-token", "other-token"])
def test_clear_previous_of_another_rotation_changes_nothing(current: StoredKey | None) -> None:
    before = Stages(current=current, previous=K0)
    assert stages.clear_previous(before, "tok-1") == Cleared(before, cleared=None)


# --------------------------------------------------------------------------------------------------- StageLog


@pytest.fixture
def stage_log() -> StageLog:
    return StageLog(logging.getLogger(LOGGER), STORE, WHERE)


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, dict[str, object]]]:
    return [(r.levelname, r.getMessage(), getattr(r, "fields", {})) for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def caplog_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def test_log_of_a_put_pending_no_op(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    staged = stages.put_pending(Stages(current=K1), K1, where=WHERE, store=STORE)
    stage_log.staging(staged)
    assert logged(caplog_debug) == [("DEBUG", f"{WHERE} already holds apk_contract0001 under token tok-1", {})]


def test_log_of_a_put_pending(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    staged = stages.put_pending(Stages(current=K0), K1, where=WHERE, store=STORE)
    stage_log.staging(staged)
    stage_log.staged(staged)
    assert logged(caplog_debug) == [
        (
            "INFO",
            f"staged apk_contract0001 as PENDING in {WHERE}",
            {"store": STORE, "key": "apk_contract0001", "token": "tok-1"},
        )
    ]


def test_log_of_a_put_pending_replacing_an_abandoned_one(
    stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture
) -> None:
    staged = stages.put_pending(Stages(current=K0, pending=K2), K1, where=WHERE, store=STORE)
    stage_log.staging(staged)
    assert logged(caplog_debug) == [
        (
            "WARNING",
            f"replacing abandoned PENDING apk_contract0002 (token tok-2) with apk_contract0001 in {WHERE}; "
            "the engine revokes the abandoned key",
            {"store": STORE, "dropped": "apk_contract0002", "token": "tok-1"},
        )
    ]


def test_log_of_already_current(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    stage_log.already_current("promote", K1)
    assert logged(caplog_debug) == [("DEBUG", f"promote: apk_contract0001 is already current in {WHERE}", {})]


def test_log_of_a_promotion(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    promotion = stages.promote(Stages(current=K0, pending=K1), "tok-1", shown=shows(K0), where=WHERE, store=STORE)
    stage_log.promoting(promotion)
    stage_log.promoted(promotion, "tok-1")
    assert logged(caplog_debug) == [
        (
            "INFO",
            f"promoted apk_contract0001 to CURRENT in {WHERE}; PREVIOUS is apk_contract0000",
            {"store": STORE, "key": "apk_contract0001", "token": "tok-1", "previous": "apk_contract0000"},
        )
    ]


def test_log_of_a_promotion_with_an_empty_previous(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    promotion = stages.promote(Stages(pending=K1), "tok-1", shown=shows(None), where=WHERE, store=STORE)
    stage_log.promoted(promotion, "tok-1")
    assert logged(caplog_debug) == [
        (
            "INFO",
            f"promoted apk_contract0001 to CURRENT in {WHERE}; PREVIOUS is empty",
            {"store": STORE, "key": "apk_contract0001", "token": "tok-1", "previous": None},
        )
    ]


def test_log_of_a_promotion_dropping_previous(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    promotion = stages.promote(
        Stages(current=K0, pending=K1, previous=K2), "tok-1", shown=shows(K0), where=WHERE, store=STORE
    )
    stage_log.promoting(promotion)
    assert logged(caplog_debug) == [
        (
            "WARNING",
            f"PREVIOUS apk_contract0002 in {WHERE} was never cleared and is now replaced; if it is still active at "
            "Bluum, `rotator sweep` revokes it",
            {"store": STORE, "dropped": "apk_contract0002"},
        )
    ]


def test_log_of_a_restore(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    rollback = stages.restore_previous(
        Stages(current=K1, pending=make_key(3, token="tok-1"), previous=K0), "tok-1", where=WHERE, store=STORE
    )
    stage_log.rolled_back(rollback, "tok-1")
    assert logged(caplog_debug) == [
        (
            "INFO",
            f"restored apk_contract0000 as CURRENT in {WHERE}, replacing apk_contract0001",
            {"store": STORE, "key": "apk_contract0000", "replaced": "apk_contract0001", "token": "tok-1"},
        )
    ]


def test_log_of_a_dropped_pending(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    rollback = stages.restore_previous(Stages(current=K0, pending=K1), "tok-1", where=WHERE, store=STORE)
    stage_log.rolled_back(rollback, "tok-1")
    assert logged(caplog_debug) == [
        (
            "INFO",
            f"dropped PENDING apk_contract0001 of an abandoned rotation from {WHERE}",
            {"store": STORE, "key": "apk_contract0001", "token": "tok-1"},
        )
    ]


def test_log_of_a_clear(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    stage_log.cleared(stages.clear_previous(Stages(current=K1, previous=K0), "tok-1"))
    assert logged(caplog_debug) == [
        ("INFO", f"cleared PREVIOUS apk_contract0000 from {WHERE}", {"store": STORE, "key": "apk_contract0000"})
    ]


def test_moves_that_change_nothing_log_nothing(stage_log: StageLog, caplog_debug: pytest.LogCaptureFixture) -> None:
    stage_log.promoting(stages.promote(Stages(current=K1), "tok-1", shown=never_called, where=WHERE, store=STORE))
    stage_log.promoting(stages.promote(Stages(pending=K1), "tok-1", shown=shows(K0), where=WHERE, store=STORE))
    stage_log.rolled_back(stages.restore_previous(Stages(current=K0), "tok-1", where=WHERE, store=STORE), "tok-1")
    stage_log.cleared(stages.clear_previous(Stages(current=K0), "tok-0"))
    assert logged(caplog_debug) == []
