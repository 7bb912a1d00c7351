"""The Lambda's grace window counts from finishSecret (AWSCURRENT moved: applications read the new key from then on),
as README says, not from the first tick after it, which confirms the rotation (issue 20, found as a new user would).

Played as Secrets Manager plays it (tests/integration/test_aws_lambda.py): the four steps on moto and the simulator,
then ticks at chosen times. The function's clock is moved by an offset (its runtime's `clock`), as the passing hours
would move it; nothing in the record is edited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.aws_lambda.config import ManagedSecret
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed

GRACE = 3600.0


class Clock:
    """Real time plus an offset that the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every service the handler assembles reads the time from `clock`."""
    fake = Clock()
    assemble = aws_lambda._service

    def service(secret: ManagedSecret) -> object:
        app = assemble(secret)
        app.service.runtime.clock = fake
        return app

    monkeypatch.setattr(aws_lambda, "_service", service)
    return fake


def ledger_record(function: Lambda) -> dict[str, Any]:
    """The rotation record as the DynamoDB ledger holds it."""
    key = {"ledger_id": {"S": function.secret}}
    item = function.moto.client("dynamodb").get_item(TableName=LEDGER_TABLE, Key=key, ConsistentRead=True)["Item"]
    record: dict[str, Any] = json.loads(item["record"]["S"])
    return record


@pytest.fixture
def function(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    yield from deployed(moto_server, sim, monkeypatch, tmp_path, lambda fn: {"ROTATOR_GRACE": "1h"})


def test_the_grace_window_counts_from_finish_secret_not_from_the_first_tick(function: Lambda, clock: Clock) -> None:
    old = function.account.first.pair
    token = function.start_rotation()
    for step in STEPS:
        aws_lambda.handler(function.event(token, step))
    finished = time.time()

    clock.offset = GRACE - 120  # the first tick, two minutes before the window ends: it confirms, revokes nothing
    aws_lambda.handler({"rotator": "tick"})
    assert function.works(old), "revoked before the grace window ended"
    record = ledger_record(function)
    assert record["phase"] == "verified"
    assert finished - 5 <= float(record["revoke_after"]) - GRACE <= finished + 1, (
        "revoke_after must be finishSecret's time plus ROTATOR_GRACE, not the confirming tick's"
    )

    clock.offset = GRACE + 60  # the next tick, a minute after the window (counted from finishSecret) ended
    aws_lambda.handler({"rotator": "tick"})
    assert not function.works(old), "the old key outlived its grace window by a tick"
    assert function.works(function.pair_at("AWSCURRENT"))
    assert list(function.labels().values()) == [{"AWSCURRENT"}]
