"""A fleet whose keys live in a real OpenBao server: many rotations in threads of one process share the hvac client of
each store, the manager key is read from Vault by every one of them at once, and the check before each revoke reads
every other credential's Vault path (cached for a few seconds, since a Vault path has no cheap fingerprint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.core.model import KeyPair
from rotator.simulator import Simulator
from tests.integration.test_fleet import active_keys, fleet_workspace, rotate_every_one_once
from tests.openbao import OpenBao

COUNT = 6


def test_a_fleet_in_vault_rotates_every_credential_once_within_the_rate_limit(
    sim: Simulator, openbao: OpenBao, vault_path: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    root = openbao.client()
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
        root.secrets.kv.v2.create_or_update_secret(path=f"{vault_path}/{name}", secret=secret)

    config, _, investors = fleet_workspace(
        sim,
        tmp_path,
        COUNT,
        fleet=f"[fleet]\nconcurrency = {COUNT}\n",
        store_table=lambda name: f'type = "vault"\npath = "{vault_path}/{name}"\nurl = "{openbao.url}"\n',
        put=put,
    )
    rotate_every_one_once(sim, config, COUNT)
    for n, investor in enumerate(investors):
        latest = root.secrets.kv.v2.read_secret_version(path=f"{vault_path}/app{n}", raise_on_deleted_version=True)
        current = latest["data"]["data"]["key_id"]
        assert current != firsts[f"app{n}"]
        assert active_keys(sim, investor) == [current]  # the old key revoked, exactly one new key
