"""A fleet whose keys live in AWS Secrets Manager (moto in server mode, over HTTP): many rotations in threads of one
process share each store's boto3 client and the DynamoDB ledger table, and the manager key is read from Secrets
Manager by every one of them at once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rotator.core.model import KeyPair
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.integration.test_fleet import active_keys, fleet_workspace, rotate_every_one_once

COUNT = 6


def test_a_fleet_in_secrets_manager_rotates_every_credential_once_within_the_rate_limit(
    sim: Simulator, moto_server: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in moto_server.environ().items():
        monkeypatch.setenv(name, value)
    sm = moto_server.client("secretsmanager")
    prefix = f"bluum/fleet/{uuid.uuid4().hex[:8]}"
    firsts: dict[str, str | None] = {}

    def put(name: str, pair: KeyPair) -> None:
        firsts[name] = pair.key_id
        secret = {
            "api_key": pair.api_key,
            "api_secret": pair.api_secret.reveal(),
            "key_id": pair.key_id or "",
            "environment": "sandbox",
            "base_url": sim.base_url,
        }
        sm.create_secret(Name=f"{prefix}/{name}", SecretString=json.dumps(secret))

    config, _, investors = fleet_workspace(
        sim,
        tmp_path,
        COUNT,
        fleet=f"[fleet]\nconcurrency = {COUNT}\n",
        store_table=lambda name: f'type = "aws"\nsecret_id = "{prefix}/{name}"\nledger_table = "{LEDGER_TABLE}"\n',
        put=put,
    )
    rotate_every_one_once(sim, config, COUNT)
    for n, investor in enumerate(investors):
        # VersionStage named: moto 5.2 answers a GetSecretValue without one from the version that was current before
        # the label moved (AWS answers AWSCURRENT, and so does the store).
        value = sm.get_secret_value(SecretId=f"{prefix}/app{n}", VersionStage="AWSCURRENT")["SecretString"]
        current = json.loads(value)["key_id"]
        assert current != firsts[f"app{n}"]
        assert active_keys(sim, investor) == [current]  # the old key revoked, exactly one new key
