"""Webhook notifications over real HTTP: a receiver on 127.0.0.1 checks every signature and counts deliveries, while
a real rotation runs against the simulator; a receiver that fails never holds a rotation up."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.ops.app import assemble
from rotator.simulator import Simulator
from tests.conftest import LeakGuard

KEY = "whsec-integration-key-0123456789abcdef"


class Receiver:
    """Accepts POSTs whose signature checks out (and whose timestamp is fresh); answers `status` to each."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.accepted: list[dict[str, Any]] = []
        self.refused = 0
        self.attempts = 0
        self.bodies: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                receiver.bodies.append(body.decode())
                stamp = self.headers.get("X-Rotator-Timestamp", "")
                expected = hmac.new(KEY.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Rotator-Signature", "")
                fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
                if not (fresh and hmac.compare_digest(given, f"sha256={expected}")):
                    receiver.refused += 1
                    self.send_response(401)
                elif receiver.status < 300:
                    receiver.accepted.append(json.loads(body))
                    self.send_response(receiver.status)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bluum"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def workspace(sim: Simulator, folder: Path, url: str, events: str = "") -> Path:
    account = open_account(sim, "first")
    config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    chosen = f"events = {events}\n" if events else ""
    config.write_text(
        config.read_text() + f'\n[notifications.oncall]\nurl = "{url}"\nsecret_env = "ROTATOR_WEBHOOK_KEY"\n{chosen}'
    )
    return config


def test_a_rotation_is_announced_signed_and_without_secrets(
    sim: Simulator, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    monkeypatch.setenv("ROTATOR_WEBHOOK_KEY", KEY)
    leak_guard.watch(KEY)
    with assemble(load_config(workspace(sim, tmp_path, receiver.url))) as app:
        app.service.rotate("trading")
    assert receiver.refused == 0
    assert [body["event"] for body in receiver.accepted] == ["started", "completed"]
    done = receiver.accepted[-1]
    assert done["credential"] == "trading"
    assert done["new_key"] != done["old_key"]
    assert done["new_key"].startswith("apk_")
    for body in receiver.bodies:
        leak_guard.check(body, "webhook payload")


def test_an_emergency_is_its_own_event(
    sim: Simulator, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_WEBHOOK_KEY", KEY)
    config = workspace(sim, tmp_path, receiver.url, events='["emergency"]')
    with assemble(load_config(config)) as app:
        app.service.rotate("trading", emergency=True, reason="key pasted in a ticket")
    assert [body["event"] for body in receiver.accepted] == ["emergency"]
    assert receiver.accepted[0]["reason"] == "key pasted in a ticket"


def test_a_failing_receiver_never_holds_a_rotation_up(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Receiver(status=503)
    monkeypatch.setenv("ROTATOR_WEBHOOK_KEY", KEY)
    monkeypatch.setattr("rotator.notify.webhook.ATTEMPTS", 2)
    try:
        with assemble(load_config(workspace(sim, tmp_path, failing.url))) as app:
            outcome = app.service.rotate("trading")
            webhook = app.webhooks[0]
        assert outcome.exit_code == 0
        assert failing.attempts == 4, "two events, each tried twice"
        assert (webhook.delivered, webhook.failed) == (0, 2)
    finally:
        failing.close()
