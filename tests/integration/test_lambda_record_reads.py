"""Issue 18: a Secrets Manager step reads the credential's rotation record once under its lease.

Counted from outside the service: a wrapper on the DynamoDB ledger (`read_record`, the one way the service reads a
record, and `acquire`/`release`, to tell a read under the lease from one without) records what each of createSecret,
setSecret, testSecret and finishSecret reads, with the handler in this process, moto (server mode) as Secrets Manager
and DynamoDB, and the Bluum simulator behind it.

Before issue 18 createSecret read the record twice under its lease (once to decide, once more to start). testSecret
asks for it once more, without a lease, before it takes one: whether a rotation under the token exists at all
decides whether this is Secrets Manager testing the configuration, which must take no lease and leave no ledger item
(test_trust_lambda.py). The ledger takes its lease on the item as read then, and answers the read under the lease from
it (no request): test_lambda_ledger_requests.py counts DynamoDB's reads, one per step.
"""

from __future__ import annotations

import pytest

from backends.aws.ledger import DynamoLedger
from backends.ledger import Lease, VersionedRecord
from rotator.aws_lambda import entry as aws_lambda
from tests.integration.test_aws_lambda import STEPS, Lambda, function

__all__ = ["function"]  # the fixture, shared with test_aws_lambda.py


@pytest.fixture
def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every record read by a DynamoDB ledger while the test runs: "leased" when that ledger held a lease."""
    reads: list[str] = []
    held: set[int] = set()
    read_record, acquire, release = DynamoLedger.read_record, DynamoLedger.acquire, DynamoLedger.release

    def counted_read(self: DynamoLedger) -> VersionedRecord:
        reads.append("leased" if id(self) in held else "unleased")
        return read_record(self)

    def counted_acquire(self: DynamoLedger, owner: str, ttl_seconds: float) -> Lease:
        lease = acquire(self, owner, ttl_seconds)
        held.add(id(self))
        return lease

    def counted_release(self: DynamoLedger, lease: Lease) -> None:
        held.discard(id(self))
        release(self, lease)

    monkeypatch.setattr(DynamoLedger, "read_record", counted_read)
    monkeypatch.setattr(DynamoLedger, "acquire", counted_acquire)
    monkeypatch.setattr(DynamoLedger, "release", counted_release)
    return reads


def test_each_step_reads_the_record_once_under_its_lease(function: Lambda, record_reads: list[str]) -> None:
    token = function.start_rotation()
    per_step = {}
    for step in STEPS:
        record_reads.clear()
        result = aws_lambda.handler(function.event(token, step))
        assert result["outcome"] == "ok", result
        per_step[step] = list(record_reads)
    assert function.labels()[token] == {"AWSCURRENT"}, "the rotation went through"
    assert per_step == {
        "createSecret": ["leased"],  # before issue 18: ["leased", "leased"]
        "setSecret": ["leased"],
        "testSecret": ["unleased", "leased"],  # the first tells a rotation from Secrets Manager's configuration test
        "finishSecret": ["leased"],
    }


def test_secrets_managers_configuration_test_reads_it_once_and_takes_no_lease(
    function: Lambda, record_reads: list[str]
) -> None:
    token = function.start_rotation(immediately=False)
    assert aws_lambda.handler(function.event(token, "testSecret"))["outcome"] == "configuration test"
    assert record_reads == ["unleased"]


def test_a_repeated_step_reads_it_once_too(function: Lambda, record_reads: list[str]) -> None:
    """createSecret sent again (Secrets Manager retries a step whose answer it lost): done already, read once."""
    token = function.start_rotation()
    aws_lambda.handler(function.event(token, "createSecret"))
    record_reads.clear()
    assert aws_lambda.handler(function.event(token, "createSecret"))["outcome"] == "ok"
    assert record_reads == ["leased"]
