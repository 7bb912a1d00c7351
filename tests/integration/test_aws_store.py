"""The AWS store against moto in server mode (real HTTP): the shared contract suites, then what only AWS has.

Stage labels are asserted through `describe_secret()["VersionIdsToStages"]`, and values always read with an explicit
version (moto's default-version pointer is stale after a label move, see ../shared/test-infra.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends.aws.store import AwsStore
from backends.base import SecretStore, load_store_factories
from backends.ledger import Lease, held_lease
from rotator.core.errors import ConfigError, LeaseLost, RotationInProgress, StoreConflict, StoreError, StoreNotFound
from rotator.core.model import Stage, StoredKey
from tests.aws_fixtures import Moto
from tests.store_contract import LEASE_TTL, StoreContract, assert_holds, make_key

MakeStore = Callable[..., AwsStore]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def token(n: int) -> str:
    """A Secrets Manager version id (32 characters) that reads as rotation n."""
    return f"rotation-{n:04d}-" + "0" * 18


def value(key: StoredKey, **extra: str) -> str:
    fields = {"api_key": key.api_key, "api_secret": key.api_secret.reveal(), **extra}
    if key.key_id:
        fields["key_id"] = key.key_id
    return json.dumps(fields)


def labels(moto: Moto, name: str) -> dict[str, set[str]]:
    """Version id → AWS labels, as Secrets Manager reports them."""
    answer = moto.client("secretsmanager").describe_secret(SecretId=name)
    return {version: set(carried) for version, carried in answer["VersionIdsToStages"].items() if carried}


def current_value(moto: Moto, name: str) -> dict[str, Any]:
    """What an application reads: AWSCURRENT, named explicitly."""
    answer = moto.client("secretsmanager").get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    parsed: dict[str, Any] = json.loads(answer["SecretString"])
    return parsed


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(moto_server: Moto, secret_name: str, clock: Clock) -> Iterator[MakeStore]:
    made: list[AwsStore] = []

    def make(**options: Any) -> AwsStore:
        options.setdefault("secret_id", secret_name)
        store = AwsStore(
            "aws-app",
            secretsmanager=moto_server.client("secretsmanager"),
            dynamodb=moto_server.client("dynamodb"),
            clock=clock,
            **options,
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def seed(moto: Moto, name: str, key: StoredKey, **extra: str) -> None:
    moto.client("secretsmanager").create_secret(Name=name, SecretString=value(key, **extra))


class TestAwsStoreContract(StoreContract):
    """Every promise of `backends.base.SecretStore` and `backends.ledger.Ledger`, on Secrets Manager and DynamoDB."""

    @pytest.fixture
    def store(self, moto_server: Moto, secret_name: str, seed_key: StoredKey, make_store: MakeStore) -> SecretStore:
        seed(moto_server, secret_name, seed_key)
        return make_store()

    @pytest.fixture
    def twin(self, store: SecretStore, make_store: MakeStore) -> SecretStore:
        return make_store()

    @pytest.fixture
    def take_over(self, clock: Clock) -> Callable[[SecretStore, Lease], None]:
        def take_over(store: SecretStore, lease: Lease) -> None:
            clock.now = lease.expires_at + 1

        return take_over


# --------------------------------------------------------------------------------------------- AWS's own terms


def test_stages_are_aws_labels_and_the_token_is_the_version_id(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    seed(moto_server, secret_name, make_key(0), investor_id="inv_123")
    store = make_store()
    store.put_pending(make_key(1, token=token(1)))
    assert labels(moto_server, secret_name)[token(1)] == {"AWSPENDING"}
    assert current_value(moto_server, secret_name)["api_key"] == make_key(0).api_key
    store.promote(token(1))
    found = labels(moto_server, secret_name)
    assert found[token(1)] == {"AWSCURRENT"}
    assert {"AWSPREVIOUS"} in found.values()
    shown = current_value(moto_server, secret_name)
    assert shown["api_key"] == make_key(1).api_key
    assert shown["investor_id"] == "inv_123", "other fields are carried into the new version"
    assert_holds(store.read(Stage.PREVIOUS), make_key(0))
    store.clear_previous(token(1))
    assert list(labels(moto_server, secret_name).values()) == [{"AWSCURRENT"}]


def test_a_promote_interrupted_between_two_label_moves_is_finished_by_calling_again(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    seed(moto_server, secret_name, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token=token(1)))
    sm = moto_server.client("secretsmanager")
    old = next(v for v, c in labels(moto_server, secret_name).items() if "AWSCURRENT" in c)
    sm.update_secret_version_stage(
        SecretId=secret_name, VersionStage="AWSCURRENT", MoveToVersionId=token(1), RemoveFromVersionId=old
    )  # the first of the two moves, then a crash
    assert labels(moto_server, secret_name)[token(1)] == {"AWSCURRENT", "AWSPENDING"}
    store.promote(token(1))
    assert labels(moto_server, secret_name)[token(1)] == {"AWSCURRENT"}


def test_a_pending_left_by_a_crashed_rotation_does_not_block_the_next(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    """AWS's samples leave AWSPENDING behind and every later rotation then fails; here a new token replaces it."""
    seed(moto_server, secret_name, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token=token(1)))
    staged = store.put_pending(make_key(2, token=token(2)))
    assert staged.replaced is not None
    assert staged.replaced.same_key(make_key(1))
    assert labels(moto_server, secret_name)[token(2)] == {"AWSPENDING"}
    assert token(1) not in labels(moto_server, secret_name)


def test_the_same_token_with_another_key_is_refused(moto_server: Moto, secret_name: str, make_store: MakeStore) -> None:
    seed(moto_server, secret_name, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token=token(1)))
    with pytest.raises(StoreConflict):
        store.put_pending(make_key(2, token=token(1)))


def test_a_short_token_is_refused_before_anything_is_written(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    seed(moto_server, secret_name, make_key(0))
    with pytest.raises(StoreError, match="32 to 64 characters"):
        make_store().put_pending(make_key(1, token="short"))
    assert len(labels(moto_server, secret_name)) == 1


def test_a_lease_taken_over_cannot_write_the_record(
    moto_server: Moto, secret_name: str, make_store: MakeStore, clock: Clock
) -> None:
    seed(moto_server, secret_name, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("stale", LEASE_TTL)
    clock.now = lease.expires_at + 1
    taken = fresh.acquire("fresh", LEASE_TTL)
    with pytest.raises(LeaseLost):
        stale.write_record({"phase": "late"}, lease=lease, version=0)
    assert fresh.write_record({"phase": "fresh"}, lease=taken, version=0) == 1
    fresh.release(taken)


def test_a_secret_configured_by_arn_and_by_name_shares_one_ledger(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    seed(moto_server, secret_name, make_key(0))
    arn = moto_server.client("secretsmanager").describe_secret(SecretId=secret_name)["ARN"]
    by_name, by_arn = make_store(), make_store(secret_id=arn)
    with held_lease(by_name, "cli", LEASE_TTL), pytest.raises(RotationInProgress):
        by_arn.acquire("lambda", LEASE_TTL)


def test_a_missing_secret_and_a_missing_table_are_named(moto_server: Moto, make_store: MakeStore) -> None:
    missing = f"bluum/missing/{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreNotFound, match="ResourceNotFoundException"):
        make_store(secret_id=missing).read(Stage.CURRENT)
    moto_server.client("secretsmanager").create_secret(Name=missing, SecretString=value(make_key(0)))
    with pytest.raises(StoreNotFound, match="create-table"):
        make_store(secret_id=missing, ledger_table="no-such-table").acquire("x", LEASE_TTL)


def test_a_value_that_is_not_json_is_named_with_the_fix(
    moto_server: Moto, secret_name: str, make_store: MakeStore
) -> None:
    moto_server.client("secretsmanager").create_secret(Name=secret_name, SecretString="pk_plain:sk_plain_value")
    with pytest.raises(StoreError, match="is not a JSON object"):
        make_store().read(Stage.CURRENT)


def test_the_aws_type_is_built_in() -> None:
    assert "aws" in load_store_factories()
    with pytest.raises(ConfigError, match="secret_id"):
        AwsStore("bad", secret_id="", secretsmanager=object(), dynamodb=object())
