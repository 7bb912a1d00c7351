"""The Vault store's field mapping, without a server: what applications read at a path, and what a write leaves."""

from __future__ import annotations

import pytest

from backends.key_fields import FieldMap
from rotator.core.errors import ConfigError, StoreCorrupt, StoreNotFound
from rotator.core.model import Environment, StoredKey
from rotator.core.secret import Secret
from tests.store_contract import make_key

WHERE = "secret/bluum/prod (version 3)"


def test_a_key_is_read_from_plain_fields_with_the_credentials_fallbacks() -> None:
    fields = FieldMap("v", environment=Environment.PRODUCTION, base_url="https://api.example/v1")
    key = fields.key_from({"api_key": "pk_1", "api_secret": "sk 1", "db_password": "other"}, WHERE)
    assert key.api_key == "pk_1"
    assert key.api_secret.reveal() == "sk 1"
    assert key.key_id is None
    assert key.environment is Environment.PRODUCTION
    assert key.base_url == "https://api.example/v1"


def test_the_secrets_own_environment_wins_and_bluum_spelling_is_understood() -> None:
    key = FieldMap("v", environment=Environment.PRODUCTION).key_from(
        {"api_key": "pk_1", "api_secret": "sk", "environment": "TEST"}, WHERE
    )
    assert key.environment is Environment.SANDBOX


def test_a_path_without_our_fields_holds_nothing_yet() -> None:
    with pytest.raises(StoreNotFound, match=r"has no api_key or api_secret field yet.*rotator enroll"):
        FieldMap("v").key_from({"db_password": "x"}, WHERE)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"api_key": "pk_1"}, "'api_secret' must be a non-empty string"),
        ({"api_key": "", "api_secret": "sk"}, "'api_key' must be a non-empty string"),
        ({"api_key": "pk", "api_secret": 7}, "'api_secret' must be a non-empty string"),
        ({"api_key": "pk", "api_secret": "sk", "environment": "staging"}, "must be sandbox or production"),
        ({"api_key": "pk", "api_secret": "sk", "key_id": ""}, "'key_id' must be a non-empty string"),
    ],
)
def test_a_broken_field_is_named_with_where_it_is(data: dict[str, object], problem: str) -> None:
    with pytest.raises(StoreCorrupt, match=problem) as broken:
        FieldMap("v").key_from(data, WHERE)
    assert WHERE in str(broken.value)


def test_a_write_keeps_other_fields_and_adds_optional_ones_only_when_asked() -> None:
    base = {"api_key": "pk_old", "api_secret": "sk_old", "db_password": "keep"}
    key = make_key(1)
    plain = FieldMap("v").wanted(key, base)
    assert plain == {"api_key": key.api_key, "api_secret": key.api_secret.reveal(), "db_password": "keep"}
    asked = FieldMap("v", fields=["key_id", "environment"]).wanted(key, base)
    assert asked["key_id"] == key.key_id
    assert asked["environment"] == "sandbox"
    assert "base_url" not in asked


def test_a_field_the_secret_had_is_kept_in_step_and_removed_when_the_key_lacks_it() -> None:
    base = {"api_key": "pk_old", "api_secret": "sk_old", "key_id": "apk_old0000000000"}
    hand_seeded = StoredKey("pk_new", Secret("sk_new"))  # no id known: a stale id must not stay beside it
    assert "key_id" not in FieldMap("v").wanted(hand_seeded, base)
    assert FieldMap("v").wanted(make_key(2), base)["key_id"] == make_key(2).key_id


def test_field_names_rename_what_is_read_and_written() -> None:
    fields = FieldMap("v", field_names={"api_key": "BLUUM_API_KEY", "api_secret": "BLUUM_API_SECRET"})
    written = fields.wanted(make_key(1), {})
    assert set(written) == {"BLUUM_API_KEY", "BLUUM_API_SECRET"}
    assert fields.key_from(written, WHERE).same_key(make_key(1))
    assert fields.ours({**written, "other": "x"}) == {
        "BLUUM_API_KEY": make_key(1).api_key,
        "BLUUM_API_SECRET": make_key(1).api_secret.reveal(),
        "key_id": None,
        "environment": None,
        "base_url": None,
    }


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"fields": "key_id"}, "fields may name"),
        ({"field_names": {"secret": "S"}}, "may rename"),
        ({"field_names": {"api_key": " "}}, "non-empty field name"),
        ({"field_names": ["api_key"]}, "must be a table"),
    ],
)
def test_bad_field_options_are_refused(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        FieldMap("v", **options)  # type: ignore[arg-type]
