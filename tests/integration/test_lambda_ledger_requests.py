"""Issue 18: each Secrets Manager step reads its rotation record from DynamoDB once, and the read that decides is the
one under the lease.

Counted from outside the process: the handler's boto3 clients go through a proxy on loopback in front of moto (server
mode), which logs every request by its operation; a `GetItem` is a read of the ledger item (the record and the lease
together: the only DynamoDB table the rotator reads). Before: a step read it twice (taking the lease read the item,
then the step read it again under the lease) and testSecret three times (once more, without a lease, to tell a
rotation from Secrets Manager's configuration test). Now the lease is taken on the item as this handle read it, by a
conditional write that names what was read (fence, lease, record version), so the record read before is the record
under the lease; anything changed in between refuses that write, and the item is read again and decided on anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.fault_proxy import FaultProxy
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed


@pytest.fixture
def proxied(
    moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Lambda, FaultProxy]]:
    """The Lambda fixture, its boto3 clients sent through a logging proxy (the test's own clients go to moto)."""
    with FaultProxy(moto_server.url) as proxy:
        for fn in deployed(moto_server, sim, monkeypatch, tmp_path):
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
            yield fn, proxy


def ledger_requests(proxy: FaultProxy) -> list[str]:
    return [operation for operation, _ in proxy.log if operation in ("GetItem", "UpdateItem", "PutItem")]


def test_each_step_reads_the_ledger_item_once(proxied: tuple[Lambda, FaultProxy]) -> None:
    fn, proxy = proxied
    token = fn.start_rotation()
    reads = {}
    for step in STEPS:
        proxy.log.clear()
        result = aws_lambda.handler(fn.event(token, step))
        assert result["outcome"] == "ok", result
        assert "UpdateItem" in ledger_requests(proxy), f"{step} took no lease: nothing was counted"
        reads[step] = ledger_requests(proxy).count("GetItem")
    assert fn.labels()[token] == {"AWSCURRENT"}, "the rotation went through"
    # before: createSecret 2, setSecret 2, testSecret 3, finishSecret 2
    assert reads == {"createSecret": 1, "setSecret": 1, "testSecret": 1, "finishSecret": 1}


def test_secrets_managers_configuration_test_reads_it_once_and_writes_nothing(
    proxied: tuple[Lambda, FaultProxy],
) -> None:
    fn, proxy = proxied
    token = fn.start_rotation(immediately=False)
    proxy.log.clear()
    assert aws_lambda.handler(fn.event(token, "testSecret"))["outcome"] == "configuration test"
    assert ledger_requests(proxy) == ["GetItem"]


def test_a_record_changed_between_the_first_read_and_the_lease_is_what_the_step_decides_on(
    proxied: tuple[Lambda, FaultProxy], monkeypatch: pytest.MonkeyPatch, moto_server: Moto
) -> None:
    """testSecret reads the record without a lease (is this Secrets Manager's configuration test?), then takes the
    lease. Another runner rolls the rotation back in between: the step must act on the rolled-back record it finds
    under its lease (nothing to test: it is over), not on the record it read before (accept the new key)."""
    from backends.aws.ledger import DynamoLedger
    from tests.aws_fixtures import LEDGER_TABLE

    fn, proxy = proxied
    token = fn.start_rotation()
    for step in ("createSecret", "setSecret"):
        aws_lambda.handler(fn.event(token, step))
    configuration_test = aws_lambda._configuration_test

    def then_another_runner_rolls_back(*args: object) -> bool:
        answer = configuration_test(*args)  # type: ignore[arg-type]
        other = DynamoLedger(moto_server.client("dynamodb"), LEDGER_TABLE, lambda: fn.secret, store="x", describe="x")
        lease = other.acquire("another runner", 60)
        seen = other.read_record()
        assert seen.record is not None
        assert seen.record["token"] == token
        other.write_record({**seen.record, "phase": "rolled_back"}, lease=lease, version=seen.version)
        other.release(lease)
        return answer

    monkeypatch.setattr(aws_lambda, "_configuration_test", then_another_runner_rolls_back)
    proxy.log.clear()
    with pytest.raises(RuntimeError, match="rolled_back"):
        aws_lambda.handler(fn.event(token, "testSecret"))
    assert ledger_requests(proxy).count("GetItem") == 2, "the item was not read again once the lease write was refused"
