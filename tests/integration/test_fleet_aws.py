"""A fleet whose keys live in AWS Secrets Manager (moto in server mode, over HTTP): many rotations in threads of one
process share each store's boto3 client and the DynamoDB ledger table, and the manager key is read from Secrets
Manager by every one of them at once."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest

from rotator.bluum import BluumClient
from rotator.config import parse_config
from rotator.errors import ExitCode
from rotator.fleet import run_each
from rotator.model import Environment, KeyPair
from rotator.rotation.service import RotationService
from rotator.secret import Secret
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.integration.test_fleet import active_keys

COUNT = 6


def fields(pair: KeyPair, sim: Simulator) -> str:
    return json.dumps(
        {
            "api_key": pair.api_key,
            "api_secret": pair.api_secret.reveal(),
            "key_id": pair.key_id or "",
            "environment": "sandbox",
            "base_url": sim.base_url,
        }
    )


def test_a_fleet_in_secrets_manager_rotates_every_credential_once_within_the_rate_limit(
    sim: Simulator, moto_server: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in moto_server.environ().items():
        monkeypatch.setenv(name, value)
    sm = moto_server.client("secretsmanager")
    prefix = f"bluum/fleet/{uuid.uuid4().hex[:8]}"
    tenant = sim.create_tenant_key(environment="TEST")
    tenant_pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.SANDBOX, tenant["id"])
    sm.create_secret(Name=f"{prefix}/tenant", SecretString=fields(tenant_pair, sim))
    toml = [
        f'[stores.tenant]\ntype = "aws"\nsecret_id = "{prefix}/tenant"\nledger_table = "{LEDGER_TABLE}"\n',
        f'[credentials.tenant]\nenvironment = "sandbox"\nbase_url = "{sim.base_url}"\nissuer = "manual"\n'
        'store = "tenant"\n',
        f"[fleet]\nconcurrency = {COUNT}\n",
    ]
    investors, firsts = [], []
    with BluumClient(sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        for n in range(COUNT):
            investor = sim.create_investor()
            first = client.create_investor_key(
                tenant_pair,
                investor,
                name=f"app {n}",
                environment=Environment.SANDBOX,
                idempotency_key=uuid.uuid4().hex,
            )
            investors.append(investor)
            firsts.append(first.info.id)
            sm.create_secret(Name=f"{prefix}/app{n}", SecretString=fields(first.pair, sim))
            toml.append(
                f'[stores.app{n}]\ntype = "aws"\nsecret_id = "{prefix}/app{n}"\nledger_table = "{LEDGER_TABLE}"\n'
            )
            toml.append(
                f'[credentials.app{n}]\nenvironment = "sandbox"\nbase_url = "{sim.base_url}"\nissuer = "bluum"\n'
                f'investor_id = "{investor}"\nmanager = "tenant"\nstore = "app{n}"\ngrace = "0s"\n'
                'verify_timeout = "30s"\n'
            )
    sim.advance_clock(60)
    sim.configure(propagation_delay=0.3)
    config = parse_config("\n".join(toml), base_dir=tmp_path)
    before = len(sim.request_log())
    with RotationService(config) as service:
        outcomes = run_each(service, [f"app{n}" for n in range(COUNT)], service.rotate)
    assert all(o.exit_code is ExitCode.OK for o in outcomes), [o.message for o in outcomes]
    assert [e for e in sim.request_log()[before:] if e["status"] == 429] == []
    for n, investor in enumerate(investors):
        # VersionStage named: moto 5.2 answers a GetSecretValue without one from the version that was current before
        # the label moved (AWS answers AWSCURRENT, and so does the store).
        value = sm.get_secret_value(SecretId=f"{prefix}/app{n}", VersionStage="AWSCURRENT")["SecretString"]
        current = json.loads(value)["key_id"]
        assert current != firsts[n]
        assert active_keys(sim, investor) == [current]  # the old key revoked, exactly one new key
