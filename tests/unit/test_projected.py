"""The shared "stage document plus the copy readers see" helper, on a store made of two dicts: a crash between the
document write and the copy write is repaired by making the same call again (what the env store and, later, the
Vault store rely on)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Self

import pytest

from backends.projected import Projected
from backends.stages import StageLog, Stages
from rotator.core.errors import StoreNotFound
from rotator.core.model import Stage, StoredKey
from tests.store_contract import assert_holds, make_key


@dataclass(frozen=True)
class Document:
    stages: Stages = field(default_factory=Stages)
    rolled_back_token: str | None = None

    def with_stages(self, moved: Stages, *, rolled_back_token: str | None) -> Self:
        return replace(self, stages=moved, rolled_back_token=rolled_back_token)


class Crash(BaseException):
    pass


class TwoPlaces:
    """The document and the copy; `crash_before_show` plays a crash between the two writes."""

    def __init__(self, shown: StoredKey | None) -> None:
        self.document = Document()
        self.copy = shown
        self.crash_before_show = False
        self.shows = 0

    def load_document(self) -> Document:
        return self.document

    def save_document(self, document: Document) -> None:
        self.document = document

    def shown(self) -> StoredKey:
        if self.copy is None:
            raise StoreNotFound("nothing to read")
        return self.copy

    def check_show(self, key: StoredKey) -> None:
        """Two dicts can show any key."""

    def show(self, key: StoredKey) -> bool:
        if self.crash_before_show:
            self.crash_before_show = False
            raise Crash
        if self.copy is not None and self.copy.same_key(key) and self.copy.key_id == key.key_id:
            return False
        self.copy, self.shows = key, self.shows + 1
        return True


def projected(place: TwoPlaces) -> Projected:
    return Projected(place, StageLog(logging.getLogger("test.projected"), "two", "two places"))


def test_promote_then_a_crash_before_the_copy_is_repaired_by_promoting_again():
    place = TwoPlaces(shown=make_key(0))
    stages = projected(place)
    stages.put_pending(make_key(1, token="t1"), where="doc", store="two")
    place.crash_before_show = True
    with pytest.raises(Crash):
        stages.promote("t1", where="doc", store="two")
    assert place.copy is not None
    assert place.copy.same_key(make_key(0)), "readers still see the old key"
    assert_holds(stages.read(Stage.PENDING), make_key(1), token="t1")  # so a resumed rotation finds its key
    again = stages.promote("t1", where="doc", store="two")
    assert not again.changed
    assert_holds(stages.read(Stage.CURRENT), make_key(1), token="t1")
    assert_holds(stages.read(Stage.PREVIOUS), make_key(0))
    assert stages.read(Stage.PENDING) is None


def test_a_restore_that_crashed_before_the_copy_is_finished_by_restoring_again():
    place = TwoPlaces(shown=make_key(0))
    stages = projected(place)
    stages.put_pending(make_key(1, token="t1"), where="doc", store="two")
    stages.promote("t1", where="doc", store="two")
    place.crash_before_show = True
    with pytest.raises(Crash):
        stages.restore_previous("t1", where="doc", store="two")
    assert place.copy is not None
    assert place.copy.same_key(make_key(1)), "readers still see the new key"
    stages.restore_previous("t1", where="doc", store="two")
    assert_holds(stages.read(Stage.CURRENT), make_key(0))
    assert stages.read(Stage.PREVIOUS) is None


def test_promote_needs_a_readable_copy_once_readers_saw_a_key():
    place = TwoPlaces(shown=make_key(0))
    stages = projected(place)
    stages.put_pending(make_key(1, token="t1"), where="doc", store="two")
    stages.promote("t1", where="doc", store="two")
    stages.put_pending(make_key(2, token="t2"), where="doc", store="two")
    place.copy = None  # someone removed the readers' copy
    before = place.document
    with pytest.raises(StoreNotFound):
        stages.promote("t2", where="doc", store="two")
    assert place.document == before


def test_a_first_key_is_shown_where_nothing_was_shown_before():
    place = TwoPlaces(shown=None)
    stages = projected(place)
    stages.put_pending(make_key(1, token="t1"), where="doc", store="two")
    promotion = stages.promote("t1", where="doc", store="two")
    assert promotion.previous is None
    assert_holds(place.copy, make_key(1))


def test_calls_that_change_nothing_write_nothing():
    place = TwoPlaces(shown=make_key(0))
    stages = projected(place)
    stages.put_pending(make_key(1, token="t1"), where="doc", store="two")
    stages.promote("t1", where="doc", store="two")
    shows = place.shows
    stages.promote("t1", where="doc", store="two")
    stages.clear_previous("t0-older")
    assert place.shows == shows
    assert_holds(stages.read(Stage.PREVIOUS), make_key(0))
