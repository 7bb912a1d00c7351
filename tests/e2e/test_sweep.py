"""Sweep when two credentials share one investor: each one's current key is known to the other's sweep."""

from __future__ import annotations

import json
import uuid

from rotator.bluum import BluumClient
from rotator.model import Environment
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
    ws.config.write_text(
        ws.config.read_text()
        + f"""
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
    revoked = ws.cli("sweep", "--revoke", "--include-foreign")
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
    assert ws.cli("sweep", "--revoke").exit_code == 0
    assert stray.info.id in ws.active_ids(), "foreign keys are revoked only with --include-foreign"
    assert ws.cli("sweep", "--revoke", "--include-foreign").exit_code == 0
    assert stray.info.id not in ws.active_ids()
