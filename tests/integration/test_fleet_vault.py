"""A fleet whose keys live in a real OpenBao server: many rotations in threads of one process share the hvac client of
each store, the manager key is read from Vault by every one of them at once, and the check before each revoke reads
every other credential's Vault path (cached for a few seconds, since a Vault path has no cheap fingerprint)."""

from __future__ import annotations

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
from tests.integration.test_fleet import active_keys
from tests.openbao import OpenBao

COUNT = 6


def fields(pair: KeyPair, sim: Simulator) -> dict[str, str]:
    return {
        "api_key": pair.api_key,
        "api_secret": pair.api_secret.reveal(),
        "key_id": pair.key_id or "",
        "environment": "sandbox",
        "base_url": sim.base_url,
    }


def test_a_fleet_in_vault_rotates_every_credential_once_within_the_rate_limit(
    sim: Simulator, openbao: OpenBao, vault_path: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    root = openbao.client()
    tenant = sim.create_tenant_key(environment="TEST")
    tenant_pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.SANDBOX, tenant["id"])
    root.secrets.kv.v2.create_or_update_secret(path=f"{vault_path}/tenant", secret=fields(tenant_pair, sim))
    toml = [
        f'[stores.tenant]\ntype = "vault"\npath = "{vault_path}/tenant"\nurl = "{openbao.url}"\n',
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
            root.secrets.kv.v2.create_or_update_secret(path=f"{vault_path}/app{n}", secret=fields(first.pair, sim))
            toml.append(f'[stores.app{n}]\ntype = "vault"\npath = "{vault_path}/app{n}"\nurl = "{openbao.url}"\n')
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
        latest = root.secrets.kv.v2.read_secret_version(path=f"{vault_path}/app{n}", raise_on_deleted_version=True)
        current = latest["data"]["data"]["key_id"]
        assert current != firsts[n]
        assert active_keys(sim, investor) == [current]  # the old key revoked, exactly one new key
