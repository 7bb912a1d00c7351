"""A Vault write that is redirected within the same address asks the lease guard again before it is sent (issue 17).

Why: the Vault store asks the command's lease guard right before each KV write leaves (`backends/vault/kv.py`), but a
307 on the same origin is followed inside requests, which sends the write again, later, to the new path. A runner
frozen while the redirect was on its way back (its lease lost meanwhile) then wrote without asking. A real HTTP server
on loopback plays Vault: reads find nothing, every write is answered 307 to `/moved/...`, where a write would be
taken. The guard lets the first request out and refuses from the second on (the lease ran out in between).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.vault import VaultStore
from rotator.core.errors import LeaseLost
from rotator.core.lease_clock import guarding
from tests.recording_http import RecordingHandler, RecordingServer, json_reply

TOKEN = "hvs.integration-fencing-redirect-0123"


def _moving_writes(handler: RecordingHandler) -> None:
    if handler.path.startswith("/moved"):
        json_reply(handler, b'{"data": {"version": 1}}')
    elif "lookup-self" in handler.path:
        json_reply(handler, b'{"data": {"ttl": 0, "renewable": false}}')
    elif handler.command == "GET":
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "13")
        handler.end_headers()
        handler.wfile.write(b'{"errors":[]}')
    else:
        handler.send_response(307)
        handler.send_header("Location", "/moved" + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    served = RecordingServer(_moving_writes)
    try:
        yield served
    finally:
        served.stop()


def _writes(server: RecordingServer) -> list[str]:
    return [path for method, path, _token, _body in server.seen if method not in ("GET", "HEAD")]


def test_a_write_redirected_on_the_same_address_asks_the_lease_guard_again(server: RecordingServer) -> None:
    asked: list[float] = []

    def runs_out_after_the_first(seconds: float) -> None:
        asked.append(seconds)
        if len(asked) > 1:
            raise LeaseLost("test: the lease ran out while the redirect was on its way back; nothing more is sent")

    store = VaultStore("v", path="bluum/a", url=server.url, environ={"VAULT_TOKEN": TOKEN})
    try:
        with guarding(runs_out_after_the_first), pytest.raises(LeaseLost, match="ran out"):
            store.acquire("runner-a", 30)
    finally:
        store.close()
    writes = _writes(server)
    assert writes, "the store never wrote: nothing was tested"
    assert not any(path.startswith("/moved") for path in writes), f"the redirected write was sent: {writes}"
    assert len(asked) == 2, "asked before the write, and again before following its redirect"


def test_a_redirected_write_under_a_live_lease_is_still_followed(server: RecordingServer) -> None:
    asked: list[float] = []
    store = VaultStore("v", path="bluum/a", url=server.url, environ={"VAULT_TOKEN": TOKEN})
    try:
        with guarding(asked.append):
            store.acquire("runner-a", 30)
    finally:
        store.close()
    assert any(path.startswith("/moved") for path in _writes(server)), server.seen
    assert len(asked) >= 2, "the followed write asked the guard too"
