"""rotator.rules.spread: which targets `rotator deploy` fills, leaves, or refuses (no I/O)."""

from __future__ import annotations

from rotator.core.model import StoredKey
from rotator.core.secret import Secret
from rotator.rules.spread import spread

CURRENT = StoredKey("pk_live_current", Secret("sk_current_secret"), key_id="apk_current")


def test_an_empty_target_is_filled_the_same_key_left_and_another_key_refused_by_name() -> None:
    shown = {
        "new": None,
        "mirror": StoredKey("pk_live_current", Secret("sk_current_secret")),
        "other": StoredKey("pk_live_other", Secret("sk_other_secret"), key_id="apk_other"),
        "same_public": StoredKey("pk_live_current", Secret("sk_changed_secret")),
    }
    decision = spread(CURRENT, shown, {"other": "env file /x.env", "same_public": "secret/app"})
    assert decision.empty == ("new",)
    assert decision.holding == ("mirror",)
    assert decision.conflicting == (
        "store 'other' (env file /x.env) holds another key, apk_other",
        "store 'same_public' (secret/app) holds the same API key with another secret",
    )
    assert not any("sk_" in line for line in decision.conflicting), "never a secret in the words"


def test_nothing_to_do_when_every_target_holds_the_key() -> None:
    decision = spread(CURRENT, {"mirror": CURRENT}, {})
    assert (decision.empty, decision.conflicting) == ((), ())
