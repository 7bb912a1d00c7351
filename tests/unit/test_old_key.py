"""rotator.rules.old_key: which stores show another key than the old key a rotation recorded at its start (issue 16
#2)."""

from __future__ import annotations

import pytest

from rotator.core.model import StoredKey, fingerprint
from rotator.core.secret import Secret
from rotator.rules.old_key import OldKey, recorded, shown_instead
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord

OLD = StoredKey(api_key="pk_old_0000000000", api_secret=Secret("sk_old_secret_0000"), key_id="apk_old0000000")
OTHER = StoredKey(api_key="pk_other_00000000", api_secret=Secret("sk_other_secret_00"), key_id="apk_old0000000")


def record(**changes: object) -> RotationRecord:
    base = RotationRecord("trading", "t" * 32, Phase.ACCEPTED, "bluum", 0.0, 0.0, old_key_label="apk_old0000000")
    return base.advance(Phase.ACCEPTED, 0.0, **changes)


def test_a_record_of_an_older_version_pins_nothing() -> None:
    assert recorded(record()) is None


def test_an_enrollment_pins_no_old_key_at_all() -> None:
    pinned = recorded(record(old_key_label=ENROLLMENT))
    assert pinned == OldKey(None, ENROLLMENT)
    assert shown_instead(pinned, {"app": OLD}) == [
        f"store 'app' shows {fingerprint(OLD.api_key)} (its id line says apk_old0000000)"
    ]


def test_the_recorded_key_or_nothing_is_fine_anything_else_is_named_by_label() -> None:
    pinned = recorded(record(old_public_key=OLD.api_key))
    assert pinned is not None
    assert shown_instead(pinned, {"app": OLD, "mirror": None}) == []
    found = shown_instead(pinned, {"app": OLD, "mirror": OTHER})
    assert found == [f"store 'mirror' shows {fingerprint(OTHER.api_key)} (its id line says apk_old0000000)"]
    assert OTHER.api_key not in found[0]


@pytest.mark.parametrize(("pair", "caught"), [(OLD, True), (None, False)])
def test_the_old_api_key_with_another_secret_is_caught_when_the_pair_is_known(
    pair: StoredKey | None, caught: bool
) -> None:
    pinned = OldKey(OLD.api_key, "apk_old0000000")
    forged = StoredKey(api_key=OLD.api_key, api_secret=Secret("sk_forged_secret_0"))
    found = shown_instead(pinned, {"app": forged}, pair=pair)
    assert found == (["store 'app' shows the old key's API key with another secret"] if caught else [])
    assert "sk_forged" not in str(found)


def test_named_shows_the_fingerprint_beside_an_id() -> None:
    assert OldKey(OLD.api_key, "apk_old0000000").named == f"apk_old0000000 ({fingerprint(OLD.api_key)})"
    assert OldKey(OLD.api_key, fingerprint(OLD.api_key)).named == fingerprint(OLD.api_key)
