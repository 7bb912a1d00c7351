"""`status`'s consumers line in a rollback that waits on its consumers (rotator/rules/reverse.py `progress`): from the
record alone, counting the consumers back on the old key."""

from __future__ import annotations

from rotator.rules.reverse import progress


def test_counts_the_consumers_back_on_the_old_key_and_names_the_rest() -> None:
    line = progress(("once (store app): reports the new key",), 3)
    assert line == "2 of 3 consumers report the old key; once (store app): reports the new key"


def test_before_the_rollback_first_asks() -> None:
    assert progress((), 2) == "the 2 consumer(s) have not been asked for the old key yet"
