"""moto in server mode: Secrets Manager and DynamoDB over real HTTP on loopback, for the AWS store's tests.

One server per session (`start()` takes milliseconds); each test gets its own secret names, and the ledger table is
created once. Clients are made with explicit fake credentials and the endpoint, so the developer's AWS settings are
never used (and the autouse `_clean_environ` fixture hides them anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

REGION = "us-east-1"
LEDGER_TABLE = "bluum-rotator-ledger"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class Moto:
    """A running moto server and clients for it."""

    url: str

    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One client per service (boto3 clients are thread-safe and slow to make)."""
        if service not in self._clients:
            import boto3

            from backends.aws.store import quiet_body_loggers

            quiet_body_loggers()  # the tests' own calls carry secret values too
            session = boto3.session.Session()
            self._clients[service] = session.client(
                service, region_name=REGION, endpoint_url=self.url, **FAKE_CREDENTIALS
            )
        return self._clients[service]

    def environ(self) -> dict[str, str]:
        """What a subprocess needs to reach this server with boto3's own configuration."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def create_ledger_table(self, name: str = LEDGER_TABLE) -> None:
        dynamodb = self.client("dynamodb")
        if name in dynamodb.list_tables()["TableNames"]:
            return
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "ledger_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "ledger_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    """moto's ThreadedMotoServer on a free port; a missing moto fails loudly (run `make test`, which installs it)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the dev install has it
        raise RuntimeError(
            "the AWS store's tests need moto: run `make test`, which installs the dev dependencies"
        ) from exc
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = Moto(url=f"http://{host}:{port}")
    moto.create_ledger_table()
    yield moto
    server.stop()


@pytest.fixture
def secret_name() -> str:
    """A secret name of this test's own."""
    return f"bluum/test/{uuid.uuid4().hex[:12]}"
