"""`rotator plan` on a Vault (OpenBao) primary: a too-narrow policy, a revoked or expired token and a missing KV mount,
each reported with its fix; and OpenBao's own audit log (a file audit device) shows the plan made no mutating request.

The server is this module's own dev server with an audit device (OpenBao enables one only from its configuration
file), so the log holds this module's requests only. Every audited request of the plan must be a read (or a list), or
the one read-only question asked with an update: `sys/capabilities-self`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from backends.vault.store import STATE_PREFIX
from rotator.core.errors import ExitCode
from tests.conftest import LeakGuard
from tests.e2e.conftest import Workspace
from tests.e2e.vault_primary import MOUNT, VaultPrimary
from tests.openbao import OpenBao, minimal_policy

READ_ONLY_UPDATES = {"sys/capabilities-self"}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    with OpenBao.dev(tmp_path_factory.mktemp("openbao-audit"), audit=True) as server:
        yield server


@pytest.fixture
def vault(
    ws: Workspace, audited: OpenBao, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> Iterator[VaultPrimary]:
    primary = VaultPrimary.install(ws, audited, f"plan/{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("VAULT_TOKEN", primary.token)
    yield primary
    leak_guard.watch(*audited.all_secrets())
    primary.close()


def audit_offset(bao: OpenBao) -> int:
    assert bao.audit_log is not None
    return bao.audit_log.stat().st_size


def writes_since(bao: OpenBao, offset: int) -> list[tuple[str, str]]:
    """(operation, path) of every audited request after `offset` that could change something."""
    assert bao.audit_log is not None
    with bao.audit_log.open("rb") as log:
        log.seek(offset)
        entries = [json.loads(line) for line in log.read().splitlines() if line.strip()]
    requests = [entry["request"] for entry in entries if entry.get("type") == "request"]
    assert requests, "the audit device recorded nothing: is it on?"
    return [
        (req["operation"], req["path"])
        for req in requests
        if req["operation"] not in ("read", "list") and req["path"] not in READ_ONLY_UPDATES
    ]


def plan(ws: Workspace, bao: OpenBao) -> tuple[str, int]:
    offset = audit_offset(bao)
    result = ws.cli("plan", "--all")
    assert writes_since(bao, offset) == [], result.output
    return result.output, result.exit_code


def trading_line(output: str, *words: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("trading ") and all(w in line for w in words)]
    assert lines, output
    return lines[0]


def test_healthy_vault_plans_clean_with_reads_only(ws: Workspace, vault: VaultPrimary) -> None:
    output, code = plan(ws, vault.bao)
    assert code == ExitCode.OK, output
    assert "0 problem(s)" in output


def test_too_narrow_policy_names_the_missing_capabilities(
    ws: Workspace, vault: VaultPrimary, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = f"narrow-{uuid.uuid4().hex[:10]}"
    vault.bao.write_policy(
        narrow,
        f'path "{MOUNT}/data/{vault.path}" {{ capabilities = ["create", "read", "update"] }}\n'
        f'path "{MOUNT}/data/{STATE_PREFIX}{vault.path}" {{ capabilities = ["read"] }}\n',
    )
    token = vault.bao.token_with_policies([narrow])
    ws.guard.watch(token)
    monkeypatch.setenv("VAULT_TOKEN", token)
    output, code = plan(ws, vault.bao)
    line = trading_line(output, "store vault", "lacks create, update", f"{STATE_PREFIX}{vault.path}")
    assert 'capabilities = ["create", "read", "update"]' in line.split("fix:", 1)[1]
    assert code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_dead_token_is_refused_with_the_fix(
    ws: Workspace, vault: VaultPrimary, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "revoked":
        vault.root.auth.token.revoke(vault.token)
    else:
        policy = f"short-{uuid.uuid4().hex[:10]}"
        vault.bao.write_policy(policy, minimal_policy(MOUNT, vault.path, STATE_PREFIX + vault.path))
        short = vault.bao.token_with_policies([policy], ttl="1s", renewable=False)
        ws.guard.watch(short)
        monkeypatch.setenv("VAULT_TOKEN", short)
        time.sleep(1.5)
    output, code = plan(ws, vault.bao)
    line = trading_line(output, "store vault", "Vault refuses the token")
    assert "log in again" in line
    assert code == ExitCode.BAD_INPUT


def test_missing_kv_mount_is_named(ws: Workspace, vault: VaultPrimary) -> None:
    ws.edit_config(f'mount = "{MOUNT}"', 'mount = "gone"')
    output, code = plan(ws, vault.bao)
    line = trading_line(output, "store vault", "no secrets engine is mounted at gone/")
    assert "bao secrets enable -path=gone -version=2 kv" in line
    assert code == ExitCode.BAD_INPUT


def test_audit_log_catches_a_write(audited: OpenBao) -> None:
    """The proof can fail: a KV write (here the test's own, elsewhere) is seen as one."""
    offset = audit_offset(audited)
    path = f"plan/{uuid.uuid4().hex[:10]}/elsewhere"
    client = audited.client()
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"note": "not a key"}, mount_point=MOUNT)
    client.adapter.close()
    assert writes_since(audited, offset) == [("create", f"{MOUNT}/data/{path}")]


def test_lanes_need_the_lane_path_in_the_payers_policy(
    ws: Workspace, vault: VaultPrimary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `[fleet] lanes = true` the paying key's lane is a document beside its credential's stage document: a policy
    that names the two paths exactly (minimal_policy) refuses it, and the plan says so on the paying key's line."""
    tenant_path = f"{vault.path}-tenant"
    pair = ws.tenant_pair
    fields = {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": str(pair.key_id)}
    vault.root.secrets.kv.v2.create_or_update_secret(path=tenant_path, secret=fields, mount_point=MOUNT)
    policy = f"tenant-{uuid.uuid4().hex[:10]}"
    vault.bao.write_policy(policy, minimal_policy(MOUNT, tenant_path, STATE_PREFIX + tenant_path))
    trading_policy = f"trading-{uuid.uuid4().hex[:10]}"
    vault.bao.write_policy(trading_policy, minimal_policy(MOUNT, vault.path, STATE_PREFIX + vault.path))
    token = vault.bao.token_with_policies([policy, trading_policy])
    ws.guard.watch(token)
    monkeypatch.setenv("VAULT_TOKEN", token)
    ws.edit_config('[stores.tenant]\ntype = "env"\npath = "tenant.env"\n', "")
    ws.edit_config('store = "tenant"\n', 'store = "tenantvault"\n')
    ws.add_config(
        f'\n[stores.tenantvault]\ntype = "vault"\nurl = "{vault.bao.url}"\nmount = "{MOUNT}"\npath = "{tenant_path}"\n'
    )
    assert plan(ws, vault.bao)[1] == ExitCode.OK  # lanes off: the two paths are all a rotation writes
    ws.add_config("\n[fleet]\nlanes = true\n")
    output, code = plan(ws, vault.bao)
    lines = [line for line in output.splitlines() if line.startswith("tenant ") and "paying-key lane" in line]
    assert lines, output
    assert f"lacks create, read, update on {MOUNT}/data/{STATE_PREFIX}{tenant_path}.lane" in lines[0]
    assert code == ExitCode.BAD_INPUT
