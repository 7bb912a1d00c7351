"""The SNS sink over real HTTP: moto in server mode holds a topic with an SQS queue subscribed to it; a real rotation
against the simulator is announced there, read back from the queue, and carries no secret."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.events import EventKind, RotationEvent
from rotator.ops.app import assemble
from rotator.simulator import Simulator
from tests.aws_fixtures import FAKE_CREDENTIALS, REGION, Moto
from tests.conftest import LeakGuard


def subscribed_queue(moto: Moto) -> tuple[str, str]:
    """A new topic and a queue that receives its messages raw (the body is the published message itself)."""
    name = f"rotator-{uuid.uuid4().hex[:8]}"
    topic = moto.client("sns").create_topic(Name=name)["TopicArn"]
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    moto.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return topic, queue_url


def received(moto: Moto, queue_url: str, wanted: int) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for _ in range(10):  # each receive is a real call; stop as soon as every message is in
        answer = moto.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [json.loads(message["Body"]) for message in answer.get("Messages", [])]
        if len(bodies) >= wanted:
            break
    return bodies


@pytest.fixture
def aws_environ(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """boto3's usual credential chain, pointed at fake credentials (the sink makes its own client)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    return moto_server


def test_a_rotation_is_published_to_sns_as_the_webhook_json_without_secrets(
    sim: Simulator, tmp_path: Path, aws_environ: Moto, leak_guard: LeakGuard
) -> None:
    moto = aws_environ
    topic, queue_url = subscribed_queue(moto)
    account = open_account(sim, "first")
    config = seed_workspace(tmp_path, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    config.write_text(
        config.read_text()
        + f'\n[notifications.aws]\ntype = "sns"\ntopic_arn = "{topic}"\nendpoint_url = "{moto.url}"\n'
        + 'events = ["completed", "alert"]\n'
    )
    with assemble(load_config(config)) as app:
        outcome = app.service.rotate("trading")
        app.service.bus.publish(
            RotationEvent(EventKind.ALERT, "", "tick", "Bluum answered 3 of 9 with a 5xx", subject="bluum_5xx")
        )
        (sink,) = app.sinks
    assert outcome.exit_code == 0
    assert (sink.delivered, sink.failed) == (2, 0)
    bodies = received(moto, queue_url, 2)
    assert sorted(body["event"] for body in bodies) == ["alert", "completed"]
    done = next(body for body in bodies if body["event"] == "completed")
    assert done["credential"] == "trading"
    assert done["new_key"].startswith("apk_")
    assert done["new_key"] != done["old_key"]
    assert next(body for body in bodies if body["event"] == "alert")["subject"] == "bluum_5xx"
    leak_guard.watch(account.tenant_pair.api_secret.reveal(), account.first.pair.api_secret.reveal())
    for body in bodies:
        leak_guard.check(json.dumps(body), "SNS message")


def test_a_topic_that_does_not_exist_is_counted_and_never_holds_a_rotation_up(
    sim: Simulator, tmp_path: Path, aws_environ: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rotator.notify.webhook.ATTEMPTS", 2)
    account = open_account(sim, "first")
    config = seed_workspace(tmp_path, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"
    config.write_text(
        config.read_text()
        + f'\n[notifications.aws]\ntype = "sns"\ntopic_arn = "{missing}"\nendpoint_url = "{aws_environ.url}"\n'
    )
    with assemble(load_config(config)) as app:
        outcome = app.service.rotate("trading")
        (sink,) = app.sinks
    assert outcome.exit_code == 0
    assert (sink.delivered, sink.failed) == (0, 2), "started and completed, each given up after its attempts"
