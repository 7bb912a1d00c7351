"""The DynamoDB ledger takes a lease on the item as its handle last read it (no second read), and the record read
then is the record under the lease only while nothing changed in between (issue 18).

Why these cases: the shortcut is safe only because the lease write is conditional on the item being exactly as read.
So whatever another runner does between the read and the lease write must refuse it and be decided on afresh: a
record written by a runner whose clock still calls its lease held (our clock calls it expired), a renewal of a lease
that was expired when read, and the item deleted by an operator. Before the conditions named the lease as read and
the record version, the first would start a rotation from a record that was no longer there and the second would
take over a lease that had just been renewed. (A lost answer to the lease write on this path is
test_store_faults.py's "taking the lease" case: the command line reads the record before it takes the lease.)
moto in server mode.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backends.aws.store import AwsStore
from rotator.core.errors import RotationInProgress
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.fault_proxy import FaultProxy
from tests.integration.test_aws_store import Clock, seed
from tests.store_contract import LEASE_TTL, make_key

Make = Callable[[Clock], AwsStore]


@pytest.fixture
def make(moto_server: Moto, secret_name: str) -> Make:
    """A handle on the test's secret whose ledger runs on `clock` (each runner its own)."""
    seed(moto_server, secret_name, make_key(0))

    def make(clock: Clock) -> AwsStore:
        return AwsStore(
            "aws-app",
            secret_id=secret_name,
            secretsmanager=moto_server.client("secretsmanager"),
            dynamodb=moto_server.client("dynamodb"),
            clock=clock,
        )

    return make


def lagging(clock: Clock, seconds: float) -> Clock:
    behind = Clock()
    behind.now = clock.now - seconds
    return behind


def test_a_lease_taken_after_a_read_reads_nothing_more(moto_server: Moto, secret_name: str) -> None:
    seed(moto_server, secret_name, make_key(0))
    with FaultProxy(moto_server.url) as proxy:
        import boto3

        from tests.aws_fixtures import FAKE_CREDENTIALS, REGION

        dynamodb = boto3.session.Session().client(
            "dynamodb", region_name=REGION, endpoint_url=proxy.url, **FAKE_CREDENTIALS
        )
        store = AwsStore(
            "aws-app", secret_id=secret_name, secretsmanager=moto_server.client("secretsmanager"), dynamodb=dynamodb
        )
        assert store.read_record().record is None  # to decide
        lease = store.acquire("runner", LEASE_TTL)
        assert store.read_record().version == 0  # under the lease
        assert store.write_record({"phase": "started"}, lease=lease, version=0) == 1
        assert store.read_record().record == {"phase": "started"}
        store.release(lease)
        assert store.read_record().record == {"phase": "started"}  # no lease: read again
        operations = [operation for operation, _ in proxy.log]
    assert operations == ["GetItem", "UpdateItem", "UpdateItem", "UpdateItem", "GetItem"]


def test_a_record_written_after_the_read_is_the_one_under_the_lease(make: Make) -> None:
    clock = Clock()
    behind = lagging(clock, 100)
    late, runner = make(behind), make(clock)
    held = late.acquire("late runner", 50)  # expired 50 s ago on `clock`, held 50 s more on its own
    assert runner.read_record().record is None  # sees that lease expired
    late.write_record({"phase": "started", "by": "late runner"}, lease=held, version=0)
    lease = runner.acquire("runner", LEASE_TTL)  # takes it over: expired it is, but not as it was read
    assert lease.fence == held.fence + 1
    assert runner.read_record().record == {"phase": "started", "by": "late runner"}
    assert runner.read_record().version == 1
    runner.release(lease)


def test_a_lease_renewed_after_the_read_is_not_taken_over(make: Make, moto_server: Moto, secret_name: str) -> None:
    clock = Clock()
    behind = lagging(clock, 100)
    holder, runner = make(behind), make(clock)
    held = holder.acquire("holder", 50)
    assert runner.read_record().record is None  # sees that lease expired
    holder.renew(held, 150)  # live again, 50 s on `clock`
    with pytest.raises(RotationInProgress, match="holder"):
        runner.acquire("runner", LEASE_TTL)
    item = moto_server.client("dynamodb").get_item(
        TableName=LEDGER_TABLE, Key={"ledger_id": {"S": holder._ledger_id()}}, ConsistentRead=True
    )["Item"]
    assert (item["owner"]["S"], int(item["fence"]["N"])) == ("holder", held.fence)


def test_an_item_deleted_after_the_read_is_read_again(make: Make, moto_server: Moto) -> None:
    clock = Clock()
    first, runner = make(clock), make(clock)
    lease = first.acquire("first", LEASE_TTL)
    first.write_record({"phase": "completed"}, lease=lease, version=0)
    first.release(lease)
    assert runner.read_record().record == {"phase": "completed"}
    moto_server.client("dynamodb").delete_item(TableName=LEDGER_TABLE, Key={"ledger_id": {"S": runner._ledger_id()}})
    taken = runner.acquire("runner", LEASE_TTL)
    assert taken.fence == 1
    assert runner.read_record().record is None, "the record under the lease is the one there now"
    runner.release(taken)
