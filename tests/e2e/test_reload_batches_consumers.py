"""A reload batch gated on consumer attestation (`health = { consumer = NAME }`): the real CLI against the simulator
over HTTP, with real consumers on loopback (tests/attest_consumers.py: WSGI servers serving rotator.attest) whose
reload endpoints make them load the key their store file holds, as a restarted application would.

trader-1 and trader-2 read `app.env`, reloaded one at a time (`reload_batch = 1`). A consumer whose reload is
`broken` answers 204 and loads nothing: it keeps reporting the old key, which only attestation can tell.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from tests.attest_consumers import FakeConsumer
from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.slow


class Traders:
    """Two consumers and one reload server for both (`POST /reload/N`)."""

    def __init__(self, ws: Workspace) -> None:
        key = str(ws.values()["BLUUM_API_KEY"])
        self.consumers = {n: FakeConsumer(f"trader-{n}", key) for n in (1, 2)}
        self.broken: set[int] = set()
        self.reloads: list[int] = []
        traders = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                number = int(self.path.rsplit("/", 1)[1])
                traders.reloads.append(number)
                if number not in traders.broken:
                    traders.consumers[number].load(str(dotenv_values(ws.root / "app.env")["BLUUM_API_KEY"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        reload = ", ".join(
            f'{{ url = "{base}/reload/{n}", timeout = "5s", health = {{ consumer = "trader-{n}" }} }}' for n in (1, 2)
        )
        consumers = ", ".join(consumer.entry() for consumer in self.consumers.values())
        ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{reload}]\nconsumers = [{consumers}]\n')
        ws.edit_config("[credentials.trading]\n", '[credentials.trading]\nreload_batch = 1\nhealth_timeout = "2s"\n')

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for consumer in self.consumers.values():
            consumer.stop()


@pytest.fixture
def traders(ws: Workspace) -> Iterator[Traders]:
    fleet = Traders(ws)
    yield fleet
    fleet.close()


def test_a_consumer_that_does_not_report_the_new_key_fails_its_batch_and_rolls_back(ws: Workspace, traders: Traders):
    traders.broken.add(2)  # its reload answers 204 and loads nothing
    old_key = str(ws.values()["BLUUM_API_KEY"])
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    assert "batch 2 of 2 failed its health check: app: consumer trader-2 reports the new key was not seen" in (
        result.output
    ), result.output
    assert "last: trader-2 (store app): reports the old key" in result.output
    assert traders.reloads == [1, 2, 1, 2], "both batches were reached, so both were reloaded back"
    assert traders.consumers[1].key == old_key, "trader-1 took the new key, then the old one back"
    assert ws.active_ids() == {ws.first.info.id}, "the new key is revoked; the old one works"
    assert ws.works(ws.first.pair)


def test_consumers_that_report_the_new_key_pass_their_batches_and_the_revoke_gate(ws: Workspace, traders: Traders):
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    new_key = str(ws.values()["BLUUM_API_KEY"])
    assert [consumer.key for consumer in traders.consumers.values()] == [new_key, new_key]
    assert traders.reloads == [1, 2]
    assert "batch 1 of 2: healthy (app: consumer trader-1 reports the new key)" in result.output, result.output
    assert ws.active_ids() == {ws.current_id()}


def test_a_check_naming_no_consumer_is_refused_with_the_fix(ws: Workspace, traders: Traders):
    ws.edit_config('health = { consumer = "trader-2" }', 'health = { consumer = "trader-9" }')
    before = ws.snapshot()
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "stores.app.reload[1].health.consumer: 'trader-9' is not a consumer of credential 'trading'" in result.output
    assert "(its consumers: trader-1, trader-2)" in result.output
    assert ws.snapshot() == before
