"""Sweep when two credentials share one investor: each one's current key is known to the other's sweep."""

from __future__ import annotations

import json
import uuid

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.model import Environment
from rotator.rules.machine import key_name
from tests.e2e.conftest import Workspace, dotenv_text


def add_second_credential(ws: Workspace) -> str:
    with BluumClient(ws.sim.base_url) as client:
        second = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name="reports app",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    (ws.root / "reports.env").write_text(dotenv_text(second.pair, "sandbox", ws.sim.base_url))
    (ws.root / "reports.env").chmod(0o600)
    ws.add_config(
        f"""
[stores.reports]
type = "env"
path = "reports.env"

[credentials.reports]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{ws.investor}"
manager = "tenant"
store = "reports"
grace = "0s"
"""
    )
    return second.info.id


def test_shared_investor_keys_are_not_orphans_of_each_other(ws: Workspace):
    second_id = add_second_credential(ws)
    findings = json.loads(ws.cli("sweep", "--json").stdout)
    assert findings == []
    revoked = ws.cli("sweep", "--revoke", "--yes", "--include-foreign")
    assert revoked.exit_code == 0, revoked.output
    assert ws.active_ids() == {ws.first.info.id, second_id}
    assert ws.works(ws.pair_in("reports.env"))


def test_rotating_one_credential_leaves_the_other_alone(ws: Workspace):
    second_id = add_second_credential(ws)
    assert ws.cli("rotate", "trading").exit_code == 0
    assert second_id in ws.active_ids()
    assert len(ws.active_ids()) == 2
    assert json.loads(ws.cli("sweep", "--json").stdout) == []


def test_a_foreign_orphan_is_reported_once_and_revoked_only_when_asked(ws: Workspace):
    add_second_credential(ws)
    with BluumClient(ws.sim.base_url) as client:
        stray = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name="made by hand",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    findings = json.loads(ws.cli("sweep", "--json").stdout)
    assert [(f["key_id"], f["kind"]) for f in findings] == [(stray.info.id, "orphan")]
    kept = ws.cli("sweep", "--revoke", "--yes")
    assert kept.exit_code == ExitCode.INCOMPLETE, "the foreign orphan is left for a person"
    assert stray.info.id in ws.active_ids(), "foreign keys are revoked only with --include-foreign"
    assert ws.cli("sweep", "--revoke", "--yes", "--include-foreign").exit_code == 0
    assert stray.info.id not in ws.active_ids()


def test_sweep_revoke_without_a_terminal_needs_yes_and_changes_nothing(ws: Workspace):
    with BluumClient(ws.sim.base_url) as client:
        stray = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name=key_name("trading", uuid.uuid4().hex),
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    keys = ws.sim.keys()
    refused = ws.run("sweep", "--revoke")
    assert refused.returncode == ExitCode.BAD_INPUT
    assert "--yes" in refused.stderr
    assert ws.sim.keys() == keys
    assert stray.info.id in ws.active_ids()


def test_include_foreign_without_revoke_is_an_error(ws: Workspace):
    proc = ws.run("sweep", "--include-foreign")
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "--include-foreign only widens --revoke" in proc.stderr


def test_sweep_exits_4_while_orphans_remain_and_0_once_they_are_revoked(ws: Workspace):
    with BluumClient(ws.sim.base_url) as client:
        client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name=key_name("trading", uuid.uuid4().hex),
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    assert ws.run("sweep").returncode == ExitCode.INCOMPLETE
    assert ws.run("sweep", "--revoke", "--yes").returncode == ExitCode.OK
    assert ws.run("sweep").returncode == ExitCode.OK
