"""Which key a stored pair is, and whether a key may be revoked: pure decisions, walked case by case."""

from __future__ import annotations

import pytest

from rotator.core.model import ApiKeyInfo, Environment, Stage, StoredKey
from rotator.core.secret import Secret
from rotator.rules import identity
from rotator.rules.identity import Holding

SECRET = "sk_test_" + "s" * 40


def info(key_id: str, public_key: str, status: str = "active") -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key_id, status=status, environment=Environment.SANDBOX, name="n", public_key=public_key, created=1
    )


def stored(api_key: str, key_id: str | None = None, secret: str = SECRET) -> StoredKey:
    return StoredKey(api_key=api_key, api_secret=Secret(secret), key_id=key_id)


KEYS = [info("apk_aaa", "pk_a"), info("apk_bbb", "pk_b"), info("apk_old", "pk_old", status="revoked")]


class TestListedKey:
    def test_found_by_public_key_whatever_the_id_line_says(self):
        found = identity.listed_key(KEYS, stored("pk_a", key_id="apk_bbb"))
        assert found is not None
        assert found.id == "apk_aaa"

    def test_a_pair_bluum_does_not_list(self):
        assert identity.listed_key(KEYS, stored("pk_elsewhere", key_id="apk_aaa")) is None


class TestIdLine:
    def test_absent_or_agreeing_id_lines_are_fine(self):
        assert identity.id_line_problem(stored("pk_a"), KEYS[0], where="app.env", scope="investor inv_1") is None
        assert (
            identity.id_line_problem(stored("pk_a", "apk_aaa"), KEYS[0], where="app.env", scope="investor inv_1")
            is None
        )

    def test_an_id_line_naming_another_key_names_both_and_the_fix(self):
        problem = identity.id_line_problem(stored("pk_a", "apk_bbb"), KEYS[0], where="app.env", scope="investor inv_1")
        assert problem is not None
        assert "apk_bbb" in problem
        assert "apk_aaa" in problem
        assert "Fix the key id line to apk_aaa" in problem

    def test_an_id_line_for_a_pair_bluum_does_not_list(self):
        problem = identity.id_line_problem(stored("pk_x", "apk_xxx"), None, where="app.env", scope="investor inv_1")
        assert problem is not None
        assert "apk_xxx" in problem
        assert "inv_1" in problem
        assert "delete the key id line" in problem

    def test_an_id_line_holding_a_pasted_secret_is_not_echoed(self):
        problem = identity.id_line_problem(stored("pk_a", SECRET), KEYS[0], where="app.env", scope="investor inv_1")
        assert problem is not None
        assert SECRET not in problem
        assert "not a key id" in problem
        assert stored("pk_a", SECRET).label.startswith("key#")


class TestValues:
    def test_a_plain_pair_is_fine(self):
        assert identity.value_problems(stored("pk_test_abc"), where="app.env") == []

    @pytest.mark.parametrize(
        ("api_key", "secret", "expect"),
        [
            ("", SECRET, "API key is empty"),
            ("pk", "", "API secret is empty"),
            ("p" * 257, SECRET, "257 characters long"),
            ("pk", "s" * 1025, "1025 characters long"),
            ("pk:1", SECRET, "contains ':'"),
            ("pk", "sk abc", "position 3"),
            ("pk", "sk\tabc", "position 3"),
            ("pk", "skü", "position 3"),
            ("p\nk", SECRET, "position 2"),
        ],
    )
    def test_values_http_basic_auth_cannot_carry(self, api_key: str, secret: str, expect: str):
        problems = identity.value_problems(stored(api_key, secret=secret), where="app.env")
        assert len(problems) == 1
        assert expect in problems[0]
        assert problems[0].startswith("app.env")
        if len(secret) > 3:
            assert secret not in problems[0]

    def test_limits_are_inclusive(self):
        at_limit = stored("p" * identity.MAX_API_KEY_LENGTH, secret="s" * identity.MAX_API_SECRET_LENGTH)
        assert identity.value_problems(at_limit, where="x") == []


class TestSharedWithOthers:
    def test_a_key_only_this_credential_holds_is_not_shared(self):
        holdings = [
            Holding("trading", "app", Stage.CURRENT, "pk_a"),
            Holding("trading", "mirror", Stage.CURRENT, "pk_a"),
        ]
        assert identity.shared_with_others(stored("pk_a"), holdings, "trading") is None

    def test_a_key_another_credential_or_an_unused_store_holds_is_named(self):
        holdings = [
            Holding("reports", "reports", Stage.PREVIOUS, "pk_a"),
            Holding("(none)", "spare", Stage.CURRENT, "pk_a"),
        ]
        shared = identity.shared_with_others(stored("pk_a"), holdings, "trading")
        assert shared is not None
        assert "store 'reports'" in shared
        assert "store 'spare'" in shared


class TestRevokeRefusal:
    HOLDINGS = (
        Holding("trading", "app", Stage.CURRENT, "pk_new"),
        Holding("trading", "app", Stage.PREVIOUS, "pk_a"),
        Holding("trading", "mirror", Stage.PREVIOUS, "pk_a"),
        Holding("reports", "reports", Stage.CURRENT, "pk_b"),
    )

    def test_the_old_key_may_go_while_only_its_own_previous_holds_it(self):
        assert identity.revoke_refusal(KEYS[0], self.HOLDINGS, allowed=identity.old_key_of("trading")) is None

    def test_another_credentials_current_key_is_never_revoked(self):
        refusal = identity.revoke_refusal(KEYS[1], self.HOLDINGS, allowed=identity.old_key_of("trading"))
        assert refusal is not None
        assert "store 'reports'" in refusal
        assert "CURRENT of credential 'reports'" in refusal

    def test_previous_of_another_credential_is_not_this_rotations_old_key(self):
        holdings = [Holding("reports", "reports", Stage.PREVIOUS, "pk_a")]
        assert identity.revoke_refusal(KEYS[0], holdings, allowed=identity.old_key_of("trading")) is not None

    @pytest.mark.parametrize("stage", list(Stage))
    def test_an_orphan_may_be_revoked_only_when_no_stage_anywhere_holds_it(self, stage: Stage):
        assert identity.revoke_refusal(KEYS[0], [], allowed=identity.held_nowhere) is None
        holdings = [Holding("kiosk", "kiosk", stage, "pk_a")]
        refusal = identity.revoke_refusal(KEYS[0], holdings, allowed=identity.held_nowhere)
        assert refusal is not None
        assert stage.value.upper() in refusal

    def test_the_current_key_of_the_same_credential_is_never_its_old_key(self):
        refusal = identity.revoke_refusal(
            info("apk_new", "pk_new"), self.HOLDINGS, allowed=identity.old_key_of("trading")
        )
        assert refusal is not None
        assert "CURRENT of credential 'trading'" in refusal
