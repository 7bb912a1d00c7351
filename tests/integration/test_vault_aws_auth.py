"""AWS IAM auth for the Vault store, as far as it can be proven on this machine.

OpenBao 2.7 no longer ships the `aws` auth method (it is an external plugin that cannot be fetched or built here),
so no real server can verify the signed request. What can be proven: the login request the store sends is the one
Vault's `aws` method verifies (a SigV4-signed `sts:GetCallerIdentity` for the configured region, with the server-id
header when `aws_header_value` is set, and the role), built from the credentials a Lambda is given, and the token it
returns is then used for KV. A small HTTP server stands in for Vault's two endpoints and checks that request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from backends.vault.store import VaultStore
from rotator.core.errors import StoreDenied, StoreNotFound
from rotator.core.model import Stage
from tests.conftest import LeakGuard

ISSUED_TOKEN = "s.issued-by-aws-login-0001"


class FakeVault:
    """Answers `POST /v1/auth/aws/login` with a token and KV reads made with that token; records what it saw."""

    def __init__(self) -> None:
        self.logins: list[dict[str, Any]] = []
        self.kv_tokens: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/auth/aws/login":
                    self._answer(404, {"errors": []})
                    return
                fake.logins.append(body)
                self._answer(200, {"auth": {"client_token": ISSUED_TOKEN, "lease_duration": 3600, "renewable": True}})

            def do_GET(self) -> None:
                fake.kv_tokens.append(self.headers.get("X-Vault-Token"))
                if self.headers.get("X-Vault-Token") != ISSUED_TOKEN:
                    self._answer(403, {"errors": ["permission denied"]})
                    return
                self._answer(404, {"errors": []})  # the path holds nothing yet

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_vault() -> Iterator[FakeVault]:
    fake = FakeVault()
    yield fake
    fake.close()


LAMBDA_ENVIRON = {
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEKEY000001",
    "AWS_SECRET_ACCESS_KEY": "lambda-secret-access-key-000000000000001",
    "AWS_SESSION_TOKEN": "lambda-session-token-0000000000000000001",
    "AWS_REGION": "eu-west-2",
}


def test_iam_login_sends_a_signed_get_caller_identity_and_uses_the_token(
    fake_vault: FakeVault, leak_guard: LeakGuard
) -> None:
    leak_guard.watch(LAMBDA_ENVIRON["AWS_SECRET_ACCESS_KEY"], LAMBDA_ENVIRON["AWS_SESSION_TOKEN"], ISSUED_TOKEN)
    store = VaultStore(
        "lambda",
        path="bluum/prod/trading",
        url=fake_vault.url,
        auth="aws",
        role="bluum-rotator",
        aws_header_value="vault.example.com",
        environ=LAMBDA_ENVIRON,
    )
    with pytest.raises(StoreNotFound, match="holds nothing yet"):
        store.read(Stage.CURRENT)
    store.close()
    assert len(fake_vault.logins) == 1
    login = fake_vault.logins[0]
    assert login["role"] == "bluum-rotator"
    assert login["iam_http_request_method"] == "POST"
    assert base64.b64decode(login["iam_request_url"]).decode() == "https://sts.amazonaws.com/"
    assert base64.b64decode(login["iam_request_body"]).decode() == "Action=GetCallerIdentity&Version=2011-06-15"
    headers = json.loads(base64.b64decode(login["iam_request_headers"]))
    authorization = headers["Authorization"][0]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEY000001/")
    # Signed for us-east-1 although the Lambda runs in eu-west-2: hvac sends the login to STS's global endpoint,
    # which accepts no other region (a regional endpoint is chosen with `aws_region`).
    assert "/us-east-1/sts/aws4_request" in authorization
    assert "x-vault-aws-iam-server-id" in authorization.lower()
    assert headers["X-Vault-AWS-IAM-Server-ID"] == ["vault.example.com"]
    assert headers["X-Amz-Security-Token"] == [LAMBDA_ENVIRON["AWS_SESSION_TOKEN"]]
    assert set(fake_vault.kv_tokens) == {ISSUED_TOKEN}  # every read after the login uses the token it returned
    assert len(fake_vault.kv_tokens) >= 2  # the stage document and the path at least


def test_iam_login_without_credentials_says_where_they_come_from(fake_vault: FakeVault) -> None:
    store = VaultStore(
        "lambda", path="bluum/prod/trading", url=fake_vault.url, auth="aws", role="r", environ={"HOME": "/nonexistent"}
    )
    with pytest.raises(StoreDenied, match="AWS_ACCESS_KEY_ID"):
        store.read(Stage.CURRENT)
    assert fake_vault.logins == []
