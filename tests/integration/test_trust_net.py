"""Issue 16, item 9, at the Vault store: the token and a login's secret id go only to the configured address.

Two real HTTP servers on loopback on different ports (so host:port differ): the first answers 307 to the second.
The second must never see a token or a login body; a redirect within the first server (same origin) is still
followed, so this is not redirects switched off. The CLI-level tests (exit codes, the plain-http check) are in
tests/e2e/test_trust_net.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.vault.store import VaultStore
from rotator.core.errors import ConfigError, StoreError
from rotator.core.model import Stage
from rotator.core.urls import is_loopback_host, url_problem
from tests.conftest import LeakGuard
from tests.recording_http import RecordingHandler, RecordingServer, json_reply, redirecting_to

TOKEN = "hvs.integration-trust-net-0123456789"  # a test token, watched by the leak guard
SECRET_ID = "9f1c2d3e-secret-id-trust-net"  # an AppRole secret id, watched likewise


def _vault_like(handler: RecordingHandler) -> None:
    """Enough of Vault for a login and a read of an empty KV path."""
    if handler.path.endswith("/login"):
        json_reply(handler, b'{"auth": {"client_token": "hvs.issued-by-login-abcdef", "lease_duration": 0}}')
    elif "lookup-self" in handler.path:
        json_reply(handler, b'{"data": {"ttl": 0, "renewable": false}}')
    else:
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "13")
        handler.end_headers()
        handler.wfile.write(b'{"errors":[]}')


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    """(first, other): `first` answers every request with 307 to the same path at `other`."""
    with redirecting_to(_vault_like) as pair:
        yield pair


def test_a_token_never_follows_a_redirect_to_another_port(
    servers: tuple[RecordingServer, RecordingServer], leak_guard: LeakGuard
) -> None:
    leak_guard.watch(TOKEN)
    first, other = servers
    store = VaultStore("v", path="bluum/a", url=first.url, environ={"VAULT_TOKEN": TOKEN})
    try:
        with pytest.raises(StoreError, match=rf"redirected to {other.url}, another address") as refused:
            store.read(Stage.CURRENT)
    finally:
        store.close()
    assert first.seen
    assert other.seen == [], "nothing at all is sent to the other address"
    assert TOKEN not in str(refused.value)
    assert refused.value.exit_code == 2


def test_an_approle_secret_id_never_follows_a_redirect(
    servers: tuple[RecordingServer, RecordingServer], leak_guard: LeakGuard
) -> None:
    """A 307 keeps the method and the body: the login's secret id would go to the other server with it."""
    leak_guard.watch(SECRET_ID)
    first, other = servers
    store = VaultStore(
        "v",
        path="bluum/a",
        url=first.url,
        auth="approle",
        environ={"VAULT_ROLE_ID": "role-id-trust-net", "VAULT_SECRET_ID": SECRET_ID},
    )
    try:
        with pytest.raises(StoreError, match="redirected to"):
            store.read(Stage.CURRENT)
    finally:
        store.close()
    assert any(SECRET_ID in body for _, _, _, body in first.seen), "the login did go to the configured address"
    assert other.seen == []


def test_a_redirect_within_the_same_address_is_still_followed() -> None:
    """Vault may move a path (a 307 to itself): the token goes on to the same scheme, host and port."""

    def moved_once(handler: RecordingHandler) -> None:
        if handler.path.startswith("/moved"):
            _vault_like(handler)
            return
        handler.send_response(307)
        handler.send_header("Location", "/moved" + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server = RecordingServer(moved_once)
    store = VaultStore("v", path="bluum/a", url=server.url, environ={"VAULT_TOKEN": TOKEN})
    try:
        with pytest.raises(StoreError, match=r"Nothing is stored there|holds nothing yet"):
            store.read(Stage.CURRENT)  # reached the "Vault" behind the redirect, which has nothing at the path
    finally:
        store.close()
        server.stop()
    assert [(path, token) for _, path, token, _ in server.seen if path.startswith("/moved")]
    assert all(token == TOKEN for _, path, token, _ in server.seen if path.startswith("/moved"))


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://10.1.2.3:8200", True),
        ("http://vault.example.com:8200", True),
        ("http://localhost.example.net:8200", True),
        ("http://localhost@vault.example.com:8200", True),
        ("http://[fd00::1]:8200", True),
        ("vault.example.com:8200", True),
        ("https://", True),
        ("http://127.0.0.1:99999", True),
        ("https://vault.example.com:8200", False),
        ("http://127.0.0.1:8200", False),
        ("http://localhost:8200", False),
        ("http://[::1]:8200", False),
    ],
)
def test_which_vault_addresses_the_store_accepts(url: str, refused: bool) -> None:
    assert (url_problem(url) is not None) is refused
    if refused:
        with pytest.raises(ConfigError, match="allow_insecure_http = true"):
            VaultStore("v", path="bluum/a", url=url, environ={})
    else:
        VaultStore("v", path="bluum/a", url=url, environ={}).close()


def test_allow_insecure_http_is_the_deployers_choice_and_nothing_else() -> None:
    VaultStore("v", path="bluum/a", url="http://10.1.2.3:8200", allow_insecure_http=True, environ={}).close()
    with pytest.raises(ConfigError, match="not an http"):
        VaultStore("v", path="bluum/a", url="ftp://10.1.2.3", allow_insecure_http=True, environ={})
    with pytest.raises(ConfigError, match="true or false"):
        VaultStore("v", path="bluum/a", url="http://10.1.2.3:8200", allow_insecure_http="yes", environ={})  # type: ignore[arg-type]
    assert is_loopback_host("127.0.0.2")
    assert not is_loopback_host("localhost.example.net")
