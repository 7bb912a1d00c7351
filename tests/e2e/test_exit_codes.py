"""Every command's exit code means what `--help` says, so monitoring can page on the right thing."""

from __future__ import annotations

import json

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said


def test_status_exits_with_the_code_of_a_row_it_could_not_read(ws: Workspace):
    ws.sidecar_path("app.env").parent.mkdir(exist_ok=True)
    ws.sidecar_path("app.env").write_text("{ not json")
    proc = ws.run("status")
    assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
    assert "trading" in proc.stdout
    assert "tenant" in proc.stdout, "the other rows are still shown"
    rows = json.loads(ws.run("status", "--json").stdout)
    assert next(r for r in rows if r["name"] == "trading")["exit_code"] == ExitCode.BAD_INPUT


def test_status_of_healthy_stores_exits_0(ws: Workspace):
    assert ws.run("status").returncode == ExitCode.OK


def test_verify_during_a_bluum_outage_is_5_and_does_not_call_the_key_broken(ws: Workspace):
    ws.bluum_gives_up_soon()
    ws.sim.inject_fault(method="GET", path="/v1/assets", count=2, status=503)
    proc = ws.run("verify", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.UNAVAILABLE, message
    assert "could not check" in message
    assert "does not work" not in message
    assert "--emergency" not in message


def test_verify_of_a_rejected_key_is_4_and_says_what_to_do(ws: Workspace):
    ws.excuse(ws.first.pair)
    ws.sim.revoke_key(ws.first.info.id)
    proc = ws.run("verify", "trading")
    assert proc.returncode == ExitCode.INCOMPLETE, said(proc)
    assert "rotator rotate trading --emergency" in said(proc)


def test_a_deactivated_current_key_is_called_deactivated_not_revoked(ws: Workspace):
    ws.excuse(ws.first.pair)
    ws.sim.deactivate_key(ws.first.info.id)
    files = ws.snapshot()
    proc = ws.run("rotate", "trading")
    assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
    assert "deactivated" in said(proc)
    assert "reactivate it in Bluum's dashboard" in said(proc)
    assert ws.snapshot() == files
