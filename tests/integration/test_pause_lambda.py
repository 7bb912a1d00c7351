"""A pause and the Lambda (handler called as Secrets Manager and EventBridge call it, boto3 on moto, the simulator):
the pause written in the DynamoDB ledger is kept through the steps' record writes, the tick still finishes a rotation
under way, and a createSecret of a paused secret goes on and says it is paused (AWS's schedule and a person's
`rotate-secret` look the same to the function)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.aws.store import AwsStore
from backends.ledger import held_lease
from rotator.aws_lambda import entry as aws_lambda
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed


@pytest.fixture
def function(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    yield from deployed(moto_server, sim, monkeypatch, tmp_path)


def ledger_of(function: Lambda, moto: Moto) -> AwsStore:
    return AwsStore(
        "ops",
        secret_id=function.secret,
        ledger_table=LEDGER_TABLE,
        secretsmanager=moto.client("secretsmanager"),
        dynamodb=moto.client("dynamodb"),
    )


def test_a_paused_secret_is_still_finished_by_the_tick_and_keeps_its_pause(
    function: Lambda, moto_server: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = ledger_of(function, moto_server)
    pause = {"by": "ops@laptop pid 1", "since": time.time(), "until": None, "reason": "aws freeze"}
    with held_lease(ledger, "ops@laptop pid 1", 60) as lease:
        ledger.write_record({"pause": pause}, lease=lease, version=ledger.read_record().version)
    old = function.account.first.pair
    token = function.start_rotation()
    with caplog.at_level("INFO", logger="rotator.events"):
        for step in STEPS:
            assert aws_lambda.handler(function.event(token, step))["outcome"] in ("ok", "already current")
    said = [r.getMessage() for r in caplog.records if r.name == "rotator.events"]
    assert any("is paused by ops@laptop pid 1" in line and "goes on" in line for line in said), said
    assert function.works(old)  # the overlap: the tick revokes it
    tick = aws_lambda.handler({"rotator": "tick"})
    assert tick["outcome"] == "ok"
    assert not function.works(old), "a pause never leaves a rotation half done: the tick finishes it"
    record = ledger.read_record().record or {}
    assert record["phase"] == "completed"
    assert record["pause"] == json.loads(json.dumps(pause))  # every step's and the tick's record write kept it
