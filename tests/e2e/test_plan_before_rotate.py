"""Before a rotation, `rotate` uses the one check of `rotator plan` that is cheap and decides: a target (not the
primary) whose Vault token lacks a capability on its path is refused before anything is minted (exit 2, nothing
changed), instead of being met at stage, after a key was minted (then rolled back and revoked: exit 1).

The trading credential keeps its key first in app.env and also deploys to a Vault path that already holds the same
key; the token's policy lets it read both paths but update neither.
"""

from __future__ import annotations

import uuid

import pytest

from backends.vault.store import STATE_PREFIX
from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.openbao import OpenBao, minimal_policy


def _vault_target(ws: Workspace, bao: OpenBao, path: str, policy_hcl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = ws.first.pair
    root = bao.client()
    fields = {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": str(pair.key_id)}
    root.secrets.kv.v2.create_or_update_secret(path=path, secret=fields, mount_point="secret")
    root.adapter.close()
    policy = f"target-{uuid.uuid4().hex[:10]}"
    bao.write_policy(policy, policy_hcl)
    token = bao.token_with_policies([policy])
    ws.guard.watch(token)
    monkeypatch.setenv("VAULT_TOKEN", token)
    ws.add_config(f'\n[stores.vault]\ntype = "vault"\nurl = "{bao.url}"\npath = "{path}"\n')
    ws.edit_config('also_deploy_to = ["mirror"]', 'also_deploy_to = ["mirror", "vault"]')


def test_a_target_the_token_may_not_update_is_refused_before_a_key_is_minted(
    ws: Workspace, openbao: OpenBao, vault_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"{vault_path}/trading"
    read_only = (
        f'path "secret/data/{path}" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{STATE_PREFIX}{path}" {{ capabilities = ["read"] }}\n'
    )
    _vault_target(ws, openbao, path, read_only, monkeypatch)
    before, files, keys = len(ws.sim.request_log()), ws.snapshot(), len(ws.investor_keys())
    refused = ws.cli("rotate", "trading")
    assert refused.exit_code == ExitCode.BAD_INPUT, refused.output
    assert f"lacks create, update on secret/data/{path}" in refused.output
    assert "rotator plan trading" in refused.output
    assert len(ws.investor_keys()) == keys  # nothing minted
    assert {entry["method"] for entry in ws.sim.request_log()[before:]} <= {"GET"}
    assert ws.snapshot() == files


def test_a_target_with_the_minimal_policy_rotates(
    ws: Workspace, openbao: OpenBao, vault_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"{vault_path}/trading"
    _vault_target(ws, openbao, path, minimal_policy("secret", path, STATE_PREFIX + path), monkeypatch)
    rotated = ws.cli("rotate", "trading")
    assert rotated.exit_code == ExitCode.OK, rotated.output
