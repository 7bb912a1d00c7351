"""A workspace whose `trading` credential keeps its key first in Vault (OpenBao) or Secrets Manager (moto), reached
through a `FaultProxy`, with a dotenv mirror beside it: for tests/integration/test_store_faults.py and
benchmarks/bench_store_storm.py.

Why one module for both: the storm benchmark and the fast seeded test must run the very same rotation, so that the
test's small numbers and the benchmark's big ones measure one thing. The store is seeded and inspected directly (not
through the proxy, so the test's own reads never meet a fault); the rotator alone goes through the proxy. Every
`rotator` runs as a subprocess (the real console entry point), so exit codes and messages are what an operator sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.cli.demo import open_account, seed_workspace
from rotator.core.model import KeyPair
from rotator.simulator import Simulator

VAULT_PATH_PREFIX = "storm"
APP_TABLE = '[stores.app]\ntype = "env"\npath = "app.env"\n'


@dataclass
class StoreWorkspace:
    """One credential's workspace: its config, the environment its runs need, and what applications read now."""

    folder: Path
    config: Path
    first: KeyPair
    env: dict[str, str]
    shown_key_id: Callable[[], str | None]
    """The key id applications read at the primary store now (read directly, past the proxy)."""
    lease_owner: Callable[[], str | None]
    """Who holds the rotation lease in the ledger now (None: released)."""
    record_phase: Callable[[], str | None]
    """The phase of the rotation record in the ledger now (None: no record)."""
    secrets: list[str] = field(default_factory=list)
    """Credentials this workspace minted (for a leak guard)."""

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", "-v", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
            cwd=self.folder,
            check=False,
        )

    def mirror_key_id(self) -> str | None:
        from dotenv import dotenv_values

        return dotenv_values(self.folder / "reports.env").get("TRADING_KEY_ID")


def _base(sim: Simulator, folder: Path) -> tuple[Path, KeyPair]:
    folder.mkdir(parents=True, exist_ok=True)
    account = open_account(sim, "first")
    config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    (folder / "app.env").unlink()  # the key lives in the primary store now: nothing may read this file by mistake
    return config, account.first.pair


def _fields(pair: KeyPair) -> dict[str, str]:
    return {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": str(pair.key_id)}


def vault_workspace(sim: Simulator, bao: Any, store_url: str, folder: Path) -> StoreWorkspace:
    """`trading` in Vault KV v2 at `storm/<hex>/trading` of `bao`, reached at `store_url` (the proxy), with a token
    holding exactly the minimal policy; reports.env mirrors it."""
    from backends.vault.store import STATE_PREFIX
    from tests.openbao import minimal_policy

    config, first = _base(sim, folder)
    path = f"{VAULT_PATH_PREFIX}/{uuid.uuid4().hex[:12]}/trading"
    root = bao.client()
    root.secrets.kv.v2.create_or_update_secret(path=path, secret=_fields(first), mount_point="secret")
    policy = f"storm-{uuid.uuid4().hex[:12]}"
    bao.write_policy(policy, minimal_policy("secret", path, STATE_PREFIX + path))
    token = bao.token_with_policies([policy])
    text = config.read_text()
    assert APP_TABLE in text, "the demo's config changed: update tests/store_workspaces.py"
    config.write_text(text.replace(APP_TABLE, f'[stores.app]\ntype = "vault"\nurl = "{store_url}"\npath = "{path}"\n'))

    def latest(at: str) -> dict[str, Any]:
        answer = root.secrets.kv.v2.read_secret_version(path=at, mount_point="secret", raise_on_deleted_version=True)
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def shown() -> str | None:
        value = latest(path).get("key_id")
        return None if value is None else str(value)

    def owner() -> str | None:
        value = (latest(STATE_PREFIX + path).get("lease") or {}).get("owner")
        return None if value is None else str(value)

    def phase() -> str | None:
        value = (latest(STATE_PREFIX + path).get("record") or {}).get("phase")
        return None if value is None else str(value)

    return StoreWorkspace(folder, config, first, {"VAULT_TOKEN": token}, shown, owner, phase, [token])


def aws_workspace(sim: Simulator, moto: Any, store_url: str, folder: Path) -> StoreWorkspace:
    """`trading` in a Secrets Manager secret of `moto` (and its lease in moto's DynamoDB), reached at `store_url`
    (the proxy) through boto3's own AWS_ENDPOINT_URL; reports.env mirrors it."""
    from tests.aws_fixtures import LEDGER_TABLE

    config, first = _base(sim, folder)
    name = f"bluum/storm-{uuid.uuid4().hex[:12]}"
    sm = moto.client("secretsmanager")
    sm.create_secret(Name=name, SecretString=json.dumps(_fields(first)))
    arn = sm.describe_secret(SecretId=name)["ARN"]
    text = config.read_text()
    assert APP_TABLE in text, "the demo's config changed: update tests/store_workspaces.py"
    config.write_text(
        text.replace(APP_TABLE, f'[stores.app]\ntype = "aws"\nsecret_id = "{name}"\nledger_table = "{LEDGER_TABLE}"\n')
    )

    def shown() -> str | None:
        answer = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
        value = json.loads(answer["SecretString"]).get("key_id")
        return None if value is None else str(value)

    def item() -> dict[str, Any]:
        answer = moto.client("dynamodb").get_item(
            TableName=LEDGER_TABLE, Key={"ledger_id": {"S": arn}}, ConsistentRead=True
        )
        found: dict[str, Any] = answer.get("Item") or {}
        return found

    def owner() -> str | None:
        value = item().get("owner", {}).get("S")
        return None if value is None else str(value)

    def phase() -> str | None:
        text = item().get("record", {}).get("S")
        value = json.loads(text).get("phase") if text else None
        return None if value is None else str(value)

    env = {**moto.environ(), "AWS_ENDPOINT_URL": store_url}
    return StoreWorkspace(folder, config, first, env, shown, owner, phase)
