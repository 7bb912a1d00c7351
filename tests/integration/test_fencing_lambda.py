"""The Lambda's lease length comes from ROTATOR_LEASE_TTL (`[ledger] lease_ttl`), as the CLI's comes from rotator.toml.

Watched from inside a real createSecret (the handler in this process, moto and the Bluum simulator behind it): while
the step holds its lease, the DynamoDB ledger item says how long it lasts. The ledger is told the lease plus the
longest Bluum call ([bluum] timeout 10 s + retry_budget 30 s), so another runner takes over only after both.
"""

from __future__ import annotations

import time

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.core.faultpoints import hooked
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.integration.test_aws_lambda import Lambda, function

__all__ = ["function"]  # the fixture, shared with test_aws_lambda.py

CALL = 40.0


def lease_left_during_create(fn: Lambda, moto: Moto) -> float:
    """Seconds of lease the ledger item shows while createSecret holds it (at its PENDING record)."""
    dynamodb = moto.client("dynamodb")
    seen: list[float] = []

    def look(point: str) -> None:
        if point != "pending.record" or seen:
            return
        items = dynamodb.scan(TableName=LEDGER_TABLE)["Items"]
        # Only this secret's item (keyed by its ARN): the session's moto server keeps other tests' items.
        mine = [item for item in items if item["ledger_id"]["S"] == fn.secret]
        held = [float(item["expires_at"]["N"]) for item in mine if "expires_at" in item]
        assert len(held) == 1, f"{len(held)} leases held"
        seen.append(held[0] - time.time())

    token = fn.start_rotation()
    with hooked(look):
        result = aws_lambda.handler(fn.event(token, "createSecret"))
    assert result["outcome"] == "ok", result
    assert seen, "createSecret never reached its PENDING record"
    return seen[0]


def test_the_lambda_holds_its_lease_for_ROTATOR_LEASE_TTL_plus_the_longest_call(
    function: Lambda, moto_server: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_LEASE_TTL", "2m")
    left = lease_left_during_create(function, moto_server)
    assert 120 + CALL - 10 < left <= 120 + CALL, left


def test_without_ROTATOR_LEASE_TTL_the_lease_is_15_minutes(function: Lambda, moto_server: Moto) -> None:
    left = lease_left_during_create(function, moto_server)
    assert 900 + CALL - 10 < left <= 900 + CALL, left
