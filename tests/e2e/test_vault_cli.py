"""What an operator meets at the CLI with Vault besides a rotation: a policy that is too narrow, and a first key.

Each run is the real CLI in a subprocess against a real OpenBao server and the Bluum simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from backends.vault.store import STATE_PREFIX
from rotator.core.errors import ExitCode
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import VaultPrimary, VaultSource
from tests.openbao import OpenBao, minimal_policy


@pytest.fixture
def vault(openbao: OpenBao, vault_path: str, ws: Workspace) -> Iterator[VaultPrimary]:
    primary = VaultPrimary.install(ws, openbao, vault_path)
    yield primary
    primary.close()


def test_a_policy_without_the_state_path_stops_before_anything_changes(
    vault: VaultPrimary, ws: Workspace, openbao: OpenBao
) -> None:
    """The token may read and write the key's path but not the stage document: exit 2, the path and the fix named,
    no key created at Bluum, Vault and the file as they were."""
    narrow = f"narrow-{uuid.uuid4().hex[:8]}"
    openbao.write_policy(narrow, f'path "secret/data/{vault.path}" {{ capabilities = ["create", "read", "update"] }}\n')
    token = openbao.token_with_policies([narrow])
    ws.guard.watch(token)
    before = (vault.version(), (ws.root / "mirror.env").read_bytes(), len(ws.investor_keys()))
    refused = ws.run("rotate", "trading", env={"VAULT_TOKEN": token})
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    message = said(refused)
    assert f"secret/{STATE_PREFIX}{vault.path}" in message
    assert "policy does not allow" in message
    assert "README 'Keys in Vault or OpenBao (KV v2)'" in message
    assert (vault.version(), (ws.root / "mirror.env").read_bytes(), len(ws.investor_keys())) == before
    assert ws.run("rotate", "trading").returncode == ExitCode.OK  # the minimal policy is enough


def test_enroll_writes_the_first_key_to_an_empty_vault_path(
    vault: VaultPrimary, ws: Workspace, openbao: OpenBao, vault_path: str
) -> None:
    path = f"{vault_path}/reporting"
    policy = f"rotator-{uuid.uuid4().hex[:8]}"
    # Both credentials' paths: before it revokes anything, a command reads every store in rotator.toml.
    both = minimal_policy("secret", path, STATE_PREFIX + path) + minimal_policy("secret", vault.path, vault.state_path)
    openbao.write_policy(policy, both)
    token = openbao.token_with_policies([policy])
    ws.guard.watch(token)
    ws.add_config(
        f"""
[stores.reporting]
type = "vault"
url = "{openbao.url}"
path = "{path}"
fields = ["key_id", "environment"]

[credentials.reporting]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{ws.investor}"
manager = "tenant"
store = "reporting"
grace = "0s"
verify_timeout = "5s"
"""
    )
    refused = ws.run("rotate", "reporting", env={"VAULT_TOKEN": token})
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "rotator enroll" in said(refused), "an empty path names the way out"

    enrolled = ws.run("enroll", "reporting", env={"VAULT_TOKEN": token})
    assert enrolled.returncode == ExitCode.OK, said(enrolled)
    data = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert set(data) == {"api_key", "api_secret", "key_id", "environment"}
    assert data["environment"] == "sandbox"
    pair = KeyPair(data["api_key"], Secret(data["api_secret"]), Environment.SANDBOX, data["key_id"])
    assert ws.works(pair)
    ws.sampled.append(VaultSource(openbao, path).target("reporting"))  # watched from now on

    again = ws.run("enroll", "reporting", env={"VAULT_TOKEN": token})
    assert again.returncode == ExitCode.BAD_INPUT, "a second enroll must be refused: the store holds a key"
    rotated = ws.run("rotate", "reporting", env={"VAULT_TOKEN": token})
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert not ws.works(pair)
