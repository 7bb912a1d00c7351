"""rotator/daemon/leak.py's LeakDesk without a socket or a store: the order of its checks, the replay memory and its
expiry, the counts. (A report that matches reaches the stores: tests/e2e/test_leak_reports.py, the real daemon.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from rotator.config.loader import Config, parse_config_data
from rotator.daemon import leak as leak_module
from rotator.daemon.leak import LeakDesk, check_leak_settings
from rotator.rules.leak_report import sign

KEY = "k" * 40
START = 1_800_000_000
CONFIG = """
[stores.app]
type = "env"
path = "app.env"

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "app"

[leak_reports]
secret_env = "LEAK_KEY"
tolerance = "5m"
"""


class Clock:
    def __init__(self) -> None:
        self.now = float(START)

    def __call__(self) -> float:
        return self.now


def no_service():
    raise AssertionError("a refused report must never reach the stores")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config_data(tomllib.loads(CONFIG), base_dir=tmp_path, store_types=("env",))


def desk_for(config: Config, clock: Clock) -> tuple[LeakDesk, CollectorRegistry]:
    registry = CollectorRegistry()
    desk = LeakDesk(
        config=lambda: config, service=no_service, registry=registry, clock=clock, environ={"LEAK_KEY": KEY}
    )
    return desk, registry


def headers(body: bytes, at: int) -> dict[str, str]:
    return {"X-Rotator-Timestamp": str(at), "X-Rotator-Signature": sign(KEY.encode(), at, body)}


def refused(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("bluum_rotator_leak_reports_refused_total", {"reason": reason}) or 0.0


def test_a_signature_is_accepted_once_within_the_tolerance_and_forgotten_after(config):
    clock = Clock()
    desk, registry = desk_for(config, clock)
    body = b'{"not": "a report"}'  # authentic, then malformed: remembered before the body is read
    sent = headers(body, START)
    assert desk.receive(sent, body, "client").body["reason"] == "malformed"
    assert desk.receive(sent, body, "client").body["reason"] == "replay"
    clock.now += 299
    assert desk.receive(sent, body, "client").body["reason"] == "replay"
    clock.now += 2  # past the tolerance: the timestamp itself is refused, and the memory lets the signature go
    assert desk.receive(sent, body, "client").body["reason"] == "stale_timestamp"
    assert desk.receive(headers(body, int(clock.now)), body, "client").body["reason"] == "malformed"
    assert list(desk._seen) == [headers(body, int(clock.now))["X-Rotator-Signature"]]
    assert (refused(registry, "malformed"), refused(registry, "replay"), refused(registry, "stale_timestamp")) == (
        2,
        2,
        1,
    )


def test_the_memory_is_bounded(config, monkeypatch):
    monkeypatch.setattr(leak_module, "MAX_REMEMBERED", 3)
    clock = Clock()
    desk, _ = desk_for(config, clock)
    for index in range(5):
        body = f'{{"n": {index}}}'.encode()
        desk.receive(headers(body, START + index), body, "client")
    assert len(desk._seen) == 3


def test_nothing_is_checked_before_the_signature_and_an_empty_key_refuses(config):
    clock = Clock()
    desk, registry = desk_for(config, clock)
    body = b'{"fingerprint": "sha256:0123456789abcdef"}'
    assert desk.receive({}, body, "c").status == 401
    assert desk.receive({"X-Rotator-Timestamp": str(START)}, body, "c").status == 401
    wrong = {"X-Rotator-Timestamp": str(START), "X-Rotator-Signature": "sha256=" + "0" * 64}
    assert desk.receive(wrong, body, "c").body == {"status": "refused", "reason": "bad_signature"}
    empty = LeakDesk(
        config=lambda: config, service=no_service, registry=CollectorRegistry(), clock=clock, environ={"LEAK_KEY": ""}
    )
    assert empty.receive(headers(body, START), body, "c").body["reason"] == "no_secret"
    assert refused(registry, "no_signature") == 2


def test_the_start_checks(config):
    from rotator.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--metrics-listen"):
        check_leak_settings(config, listening=False, environ={"LEAK_KEY": KEY})
    with pytest.raises(ConfigError, match="not set"):
        check_leak_settings(config, listening=True, environ={})
    check_leak_settings(config, listening=True, environ={"LEAK_KEY": KEY})


def test_a_webhook_key_is_refused_as_the_leak_key(tmp_path):
    from rotator.core.errors import ConfigError

    hook = '[notifications.chat]\ntype = "webhook"\nurl = "https://hooks.example.com/x"\nsecret_env = "HOOK"\n'
    text = CONFIG + "\n" + hook
    config = parse_config_data(tomllib.loads(text), base_dir=tmp_path, store_types=("env",))
    with pytest.raises(ConfigError, match=r"notifications\.chat") as caught:
        check_leak_settings(config, listening=True, environ={"LEAK_KEY": KEY, "HOOK": KEY})
    assert KEY not in str(caught.value)
    check_leak_settings(config, listening=True, environ={"LEAK_KEY": KEY, "HOOK": "another-key-entirely"})
