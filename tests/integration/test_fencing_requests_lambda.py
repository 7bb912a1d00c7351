"""The Lambda's boto3 clients, and the AWS store's own, are bounded per attempt and in attempts (issue 17).

botocore's defaults (60 s to connect, 60 s to answer, 5 attempts in standard mode) would let one Secrets Manager or
DynamoDB request outlive the take-over wait (the lease plus the longest request in flight, `rotator.core.in_flight`).
Each client the rotator makes now waits at most the store's `timeout` (10 s by default) to connect and again to answer,
with 3 attempts in all, and every attempt asks the lease guard before it is sent."""

from __future__ import annotations

from typing import Any

import pytest

from backends.aws.store import AwsStore
from rotator.aws_lambda import entry as aws_lambda
from tests.aws_fixtures import Moto
from tests.integration.test_aws_lambda import Lambda, function

__all__ = ["function"]  # the fixture, shared with test_aws_lambda.py


def bounds(client: Any) -> tuple[float, float, int]:
    config = client.meta.config
    return config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]


def test_the_lambdas_clients_are_bounded(function: Lambda) -> None:
    token = function.start_rotation()
    result = aws_lambda.handler(function.event(token, "createSecret"))
    assert result["outcome"] == "ok", result
    assert set(aws_lambda._clients) == {"secretsmanager", "dynamodb"}
    for service, client in aws_lambda._clients.items():
        assert bounds(client) == (10.0, 10.0, 3), service


def test_the_aws_stores_own_clients_are_bounded_by_its_timeout(
    moto_server: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto_server.environ().items():
        monkeypatch.setenv(name, value)
    store = AwsStore("aws", secret_id="bluum/trading", timeout=2.5)
    assert bounds(store._sm) == (2.5, 2.5, 3)
    assert bounds(store._ledger._client) == (2.5, 2.5, 3)
    default = AwsStore("aws", secret_id="bluum/trading")
    assert bounds(default._sm) == (10.0, 10.0, 3)
