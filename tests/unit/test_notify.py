"""Webhook notifications without a network: which events go out, the body, the signature, retries, the config."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config import WebhookSettings, parse_config
from rotator.errors import ConfigError
from rotator.events import EventKind, RotationEvent
from rotator.notify import ATTEMPTS, Webhook, payload, sign, topic_of

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
    assert topic_of(event(EventKind.STARTED, reason="key pasted in a ticket")) == "emergency"
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
    with pytest.raises(ConfigError, match="HOOK_KEY is not set"):
        Webhook(settings(), environ={})


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
    assert "notifications.oncall.url" in message
    assert "notifications.oncall.format" in message
    assert "finished" in message
    missing = BASE + '\n[notifications.oncall]\nurl = "https://hooks.example/x"\n'
    with pytest.raises(ConfigError, match="secret_env"):
        parse_config(missing, base_dir=tmp_path)
