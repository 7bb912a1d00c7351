"""Webhook notifications without a network: which events go out, the body, the signature, retries, the config."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.loader import WebhookSettings, parse_config
from rotator.config.notifications import SnsSettings
from rotator.core.errors import ConfigError
from rotator.core.events import EventKind, RotationEvent
from rotator.notify.sns import SnsTopic, message_of
from rotator.notify.webhook import ATTEMPTS, Webhook, payload, sign, topic_of

KEY = "whsec-unit-test-key-0123456789"


def event(kind: EventKind, **fields: object) -> RotationEvent:
    return RotationEvent(kind=kind, credential="trading", step="done", message=f"{kind.value} happened", **fields)  # type: ignore[arg-type]


def settings(**overrides: object) -> WebhookSettings:
    values: dict[str, object] = {"name": "oncall", "url": "https://hooks.example/x", "secret_env": "HOOK_KEY"}
    values.update(overrides)
    return WebhookSettings(**values)  # type: ignore[arg-type]


def test_topics_name_what_a_person_cares_about() -> None:
    assert topic_of(event(EventKind.COMPLETED)) == "completed"
    assert topic_of(event(EventKind.STARTED)) == "started"
    assert topic_of(event(EventKind.STARTED, reason="key pasted in a ticket", emergency=True)) == "emergency"
    # An enrollment has a reason too, and is no emergency.
    assert topic_of(event(EventKind.STARTED, reason="enrollment: the credential's first key")) == "started"
    assert topic_of(event(EventKind.STEP)) is None
    assert topic_of(event(EventKind.PROGRESS)) is None


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"completed"}'
    expected = hmac.new(KEY.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sign(KEY.encode(), 1_800_000_000, body) == f"sha256={expected}"


def test_payloads_in_both_formats() -> None:
    done = event(EventKind.COMPLETED, old_key="apk_old", new_key="apk_new", token="t" * 32)
    body = payload(done, "completed", "json")
    assert body["event"] == "completed"
    assert body["new_key"] == "apk_new"
    assert body["credential"] == "trading"
    slack = payload(done, "completed", "slack")
    assert set(slack) == {"text"}
    assert "*trading*" in slack["text"]


def test_delivery_is_signed_retried_and_counted_without_blocking_the_caller() -> None:
    calls: list[tuple[str, bytes, dict[str, str]]] = []
    release = threading.Event()

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        release.wait(5)  # a slow receiver: the subscriber call must not wait for it
        calls.append((url, body, headers))
        return 500 if len(calls) < ATTEMPTS else 204

    hook = Webhook(settings(), environ={"HOOK_KEY": KEY}, post=post, sleep=lambda _: None)
    hook(event(EventKind.STEP))  # not asked for: never queued
    hook(event(EventKind.COMPLETED))
    assert calls == []  # returned at once, nothing delivered yet
    release.set()
    hook.close()
    assert len(calls) == ATTEMPTS
    assert (hook.delivered, hook.failed) == (1, 0)
    url, body, headers = calls[-1]
    assert url == "https://hooks.example/x"
    assert json.loads(body)["event"] == "completed"
    assert headers["X-Rotator-Signature"] == sign(KEY.encode(), int(headers["X-Rotator-Timestamp"]), body)


def test_a_receiver_that_never_answers_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        raise ConnectionError("refused")

    hook = Webhook(settings(events=("completed",)), environ={"HOOK_KEY": KEY}, post=post, sleep=lambda _: None)
    with caplog.at_level("WARNING", logger="rotator.notify"):
        hook(event(EventKind.COMPLETED))
        hook(event(EventKind.ROLLED_BACK))  # not in this webhook's events
        hook.close()
    assert (hook.delivered, hook.failed) == (0, 1)
    assert len(caplog.records) == 1
    assert "ConnectionError" in caplog.records[0].getMessage()


def test_a_missing_key_refuses_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="the environment variable that its secret_env names is not set") as refused:
        Webhook(settings(), environ={})
    assert "HOOK_KEY" not in str(refused.value), "secret_env is never echoed: a key pasted there would be printed"


BASE = """
[stores.app]
type = "env"
path = "app.env"

[credentials.app]
environment = "sandbox"
issuer = "manual"
store = "app"
"""


def test_the_notifications_table_is_parsed_and_checked(tmp_path: Path) -> None:
    good = (
        BASE
        + """
[notifications.oncall]
url = "https://hooks.example/x"
secret_env = "HOOK_KEY"
events = ["completed", "emergency"]
timeout = "3s"
"""
    )
    (hook,) = parse_config(good, base_dir=tmp_path).notifications
    assert isinstance(hook, WebhookSettings)
    expected = ("oncall", "https://hooks.example/x", "HOOK_KEY", "json", ("completed", "emergency"))
    assert (hook.name, hook.url, hook.secret_env, hook.format, hook.events) == expected
    assert hook.timeout == timedelta(seconds=3)
    bad = (
        BASE
        + """
[notifications.oncall]
url = "http://hooks.example/x"
secret_env = "HOOK_KEY"
format = "teams"
events = ["finished"]
"""
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(bad, base_dir=tmp_path)
    message = str(refused.value)
    assert "notifications.oncall.url: uses plain http to hooks.example, which is not this machine" in message
    assert "notifications.oncall.format: is not one of json, slack" in message
    assert "notifications.oncall.events[0]: is not an event name" in message
    assert "finished" not in message
    assert "hooks.example/x" not in message, "only the host is named, never the path"
    missing = BASE + '\n[notifications.oncall]\nurl = "https://hooks.example/x"\n'
    with pytest.raises(ConfigError, match="secret_env"):
        parse_config(missing, base_dir=tmp_path)


def test_a_person_waiting_is_needs_person_and_tick_findings_have_topics() -> None:
    assert (
        topic_of(RotationEvent(EventKind.WAITING, "tenant", "revoke", "revoke it in the dashboard")) == "needs_person"
    )
    assert topic_of(RotationEvent(EventKind.WAITING, "trading", "grace", "grace window")) == "waiting"
    for kind in (EventKind.OVERDUE, EventKind.ORPHAN, EventKind.ALERT, EventKind.NEEDS_PERSON):
        assert topic_of(event(kind)) == kind.value
    alert = RotationEvent(EventKind.ALERT, "", "tick", "Bluum answered 3 of 9 with a 5xx", subject="bluum_5xx")
    assert payload(alert, "alert", "json")["subject"] == "bluum_5xx"
    assert payload(alert, "alert", "slack")["text"].startswith(":rotating_light: Bluum answered")


def test_an_sns_table_is_parsed_with_its_region_from_the_arn(tmp_path: Path) -> None:
    text = BASE + '\n[notifications.ops]\ntype = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:rotator"\n'
    (sink,) = parse_config(text, base_dir=tmp_path).notifications
    assert isinstance(sink, SnsSettings)
    assert (sink.name, sink.region, sink.endpoint_url) == ("ops", "eu-west-1", None)
    assert {"overdue", "alert"} <= set(sink.events)


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('type = "sns"', "notifications.ops.topic_arn: missing (the SNS topic to publish to). Fix: add topic_arn ="),
        ('type = "sns"\ntopic_arn = "rotator-topic"', "is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
        (
            'type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:t"\nregion = "us-east-1"',
            "notifications.ops.region: is not the topic's region 'eu-west-1' (from topic_arn). Fix: remove",
        ),
        (
            'type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:t"\nurl = "https://x"',
            "notifications.ops: unknown key 'url'",
        ),
        (
            'type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:t"\nendpoint_url = "http://sns.example"',
            "notifications.ops.endpoint_url: uses plain http to sns.example, which is not this machine",
        ),
        (
            'type = "sns"\ntopic_arn = "arn:aws:sns:eu-west-1:123456789012:t"\nevents = ["paged"]',
            "notifications.ops.events[0]: is not an event name",
        ),
        ('type = "pagerduty"', "notifications.ops.type: is not one of webhook, sns"),
    ],
)
def test_sns_table_problems_say_what_to_write(tmp_path: Path, table: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE + f"\n[notifications.ops]\n{table}\n", base_dir=tmp_path)
    assert said in str(refused.value)


def test_the_alerts_table_is_checked(tmp_path: Path) -> None:
    good = BASE + '\n[alerts]\nstuck_after = "30m"\nserver_errors = 5\nsweep_every = "24h"\n'
    alerts = parse_config(good, base_dir=tmp_path).alerts
    assert (alerts.stuck_after, alerts.server_errors, alerts.sweep_every) == (
        timedelta(minutes=30),
        5,
        timedelta(hours=24),
    )
    assert parse_config(BASE, base_dir=tmp_path).alerts.sweep_every is None
    bad = BASE + '\n[alerts]\nserver_error_ratio = 2\nsweep_every = "5m"\nstuck = "1h"\n'
    with pytest.raises(ConfigError) as refused:
        parse_config(bad, base_dir=tmp_path)
    message = str(refused.value)
    assert "alerts.server_error_ratio: is a share of the requests, at most 1" in message
    assert "alerts.sweep_every: must be at least 1h" in message
    assert "unknown key 'stuck' (did you mean 'stuck_after'?)" in message


def test_an_sns_message_is_the_webhook_json_with_attributes_and_fifo_ids() -> None:
    done = event(EventKind.COMPLETED, old_key="apk_old", new_key="apk_new")
    standard = message_of(done, "completed", "arn:aws:sns:eu-west-1:123456789012:rotator")
    assert json.loads(standard["Message"]) == payload(done, "completed", "json")
    assert standard["Subject"] == "bluum-rotator completed: trading"
    assert standard["MessageAttributes"]["event"] == {"DataType": "String", "StringValue": "completed"}
    assert "MessageGroupId" not in standard
    fifo = message_of(done, "completed", "arn:aws:sns:eu-west-1:123456789012:rotator.fifo")
    assert fifo["MessageGroupId"] == "trading"
    assert len(fifo["MessageDeduplicationId"]) == 64


def test_an_sns_sink_publishes_on_its_own_thread_and_counts_failures() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, object]] = []

        def publish(self, **arguments: object) -> dict[str, str]:
            self.calls.append(arguments)
            if len(self.calls) > 1:
                raise TimeoutError("AWS is slow today")
            return {"MessageId": "m-1"}

    client = Client()
    arn = "arn:aws:sns:eu-west-1:123456789012:rotator"
    settings = SnsSettings("ops", arn, "eu-west-1", events=("completed", "rolled_back"))
    sink = SnsTopic(settings, client=client, sleep=lambda _: None)
    sink(event(EventKind.COMPLETED))
    sink(event(EventKind.STEP))
    sink(event(EventKind.ROLLED_BACK))
    sink.close()
    assert (sink.delivered, sink.failed) == (1, 1)
    assert len(client.calls) == 1 + ATTEMPTS
