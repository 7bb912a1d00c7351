"""Where a pause lives with a Vault primary (OpenBao) and an AWS primary (moto): in the credential's ledger, the
stage document in Vault and the DynamoDB item, so a runner on another host (`unshare --uts`) sees it too.

Every command is the real CLI in a subprocess against the Bluum simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.e2e.conftest import Workspace
from tests.e2e.test_aws_cli import AwsPrimary
from tests.e2e.test_pause import due_now
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import VaultPrimary
from tests.freeze_boundaries import OTHER_HOST, needs_another_host
from tests.openbao import OpenBao


@pytest.fixture
def vault(openbao: OpenBao, vault_path: str, ws: Workspace) -> Iterator[VaultPrimary]:
    primary = VaultPrimary.install(ws, openbao, vault_path)
    yield primary
    primary.close()


def on_another_host(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` from another host: its own UTS namespace and host name, the same stores and ledger."""
    command = [sys.executable, "-m", "rotator", "-v", "--config", str(ws.config), *args]
    wrapped = ["unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh", *command]
    proc = subprocess.run(
        wrapped, capture_output=True, text=True, timeout=120, env={**os.environ, **ws.env}, cwd=ws.root, check=False
    )
    ws.guard.check(proc.stdout, "other host stdout")
    ws.guard.check(proc.stderr, "other host stderr")
    return proc


def test_a_pause_in_vault_holds_back_a_runner_on_another_host(vault: VaultPrimary, ws: Workspace):
    needs_another_host()
    due_now(ws)
    paused = ws.run("pause", "trading", "--reason", "vault maintenance")
    assert paused.returncode == ExitCode.OK, said(paused)
    document, _ = vault.document()
    assert document["record"]["pause"]["reason"] == "vault maintenance"  # in the ledger: the stage document
    assert OTHER_HOST not in document["record"]["pause"]["by"]

    skipped = on_another_host(ws, "run-due")
    assert skipped.returncode == ExitCode.OK, said(skipped)
    assert "trading: due, but not started: paused by" in skipped.stdout, said(skipped)
    assert vault.current_id() == ws.first.info.id

    assert ws.run("unpause", "trading").returncode == ExitCode.OK
    rotated = on_another_host(ws, "run-due")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert vault.current_id() != ws.first.info.id
    assert "pause" not in vault.document()[0]["record"]


def test_a_pause_in_dynamodb_holds_back_run_due_on_another_host(ws: Workspace, moto_server: Moto):
    needs_another_host()
    aws = AwsPrimary(ws, moto_server)
    due_now(ws)
    paused = ws.run("pause", "trading", "--reason", "aws change freeze", "--until", "1d")
    assert paused.returncode == ExitCode.OK, said(paused)
    items = moto_server.client("dynamodb").scan(TableName=LEDGER_TABLE)["Items"]
    pauses = [json.loads(i["record"]["S"]).get("pause") for i in items if "record" in i]
    assert any(p and p["reason"] == "aws change freeze" and p["until"] for p in pauses), pauses

    skipped = on_another_host(ws, "run-due")
    assert "trading: due, but not started: paused by" in skipped.stdout, said(skipped)
    assert aws.pair().api_key == ws.first.pair.api_key
    shown = {r["name"]: r for r in json.loads(on_another_host(ws, "status", "--json").stdout)}
    assert shown["trading"]["paused"] is True
    assert shown["trading"]["pause_reason"] == "aws change freeze"

    assert ws.run("unpause", "trading").returncode == ExitCode.OK
    rotated = ws.run("run-due")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert aws.pair().api_key != ws.first.pair.api_key


def test_pause_while_a_rotation_holds_the_lease_exits_3_and_writes_nothing(ws: Workspace, moto_server: Moto):
    from backends.aws.store import AwsStore

    aws = AwsPrimary(ws, moto_server)
    holder = AwsStore(
        "other",
        secret_id=aws.name,
        ledger_table=LEDGER_TABLE,
        secretsmanager=moto_server.client("secretsmanager"),
        dynamodb=moto_server.client("dynamodb"),
    )
    lease = holder.acquire("daemon on host-b", 900)
    try:
        refused = ws.run("pause", "trading", "--reason", "freeze")
        assert refused.returncode == ExitCode.IN_PROGRESS, said(refused)
        assert "daemon on host-b" in said(refused)
        assert "The pause was not written" in said(refused)
        assert holder.read_record().record is None
    finally:
        holder.release(lease)
    assert ws.run("pause", "trading", "--reason", "freeze").returncode == ExitCode.OK
    assert (holder.read_record().record or {})["pause"]["reason"] == "freeze"
