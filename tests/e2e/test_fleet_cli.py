"""`rotate --all` and `resume` over several credentials from the command line: they run at once, one credential's
failure is its own, and the exit code is the most severe of theirs."""

from __future__ import annotations

import math
import uuid

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.model import Environment
from tests.e2e.conftest import Workspace, dotenv_text


def add_investor_credential(ws: Workspace, name: str) -> tuple[str, str]:
    """Another investor of the same tenant, its first key in `NAME.env`; returns the investor and the key's id."""
    investor = ws.sim.create_investor()
    with BluumClient(ws.sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        first = client.create_investor_key(
            ws.tenant_pair, investor, name=name, environment=Environment.SANDBOX, idempotency_key=uuid.uuid4().hex
        )
    ws.guard.watch(first.pair.api_secret.reveal())
    path = ws.root / f"{name}.env"
    path.write_text(dotenv_text(first.pair, "sandbox", ws.sim.base_url))
    path.chmod(0o600)
    ws.add_config(
        f"""
[stores.{name}]
type = "env"
path = "{name}.env"

[credentials.{name}]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "{name}"
grace = "0s"
verify_timeout = "10s"
"""
    )
    ws.sampled.append((f"{name}.env", "BLUUM_"))
    return investor, first.info.id


def test_rotate_all_names_each_line_and_a_failed_credential_does_not_stop_the_others(ws: Workspace) -> None:
    _, reports_first = add_investor_credential(ws, "reports")
    refused, refused_first = add_investor_credential(ws, "refused")
    # Bluum refuses to mint for one investor: that rotation rolls back, the others go on.
    ws.sim.inject_fault(method="POST", path=f"/v1/investors/{refused}/api-keys", status=400)
    before_trading = ws.current_id()
    result = ws.run("rotate", "--all")
    assert result.returncode == ExitCode.ROLLED_BACK, result.stdout + result.stderr  # the most severe of 0, 0, 1
    assert "refused: rotation failed and was rolled back" in result.stderr
    assert ws.current_id("refused.env") == refused_first
    assert ws.current_id() != before_trading
    assert ws.current_id("reports.env") != reports_first
    # Several at once: each step line says whose it is.
    assert "  trading: " in result.stdout
    assert "  reports: " in result.stdout


def test_resume_without_a_name_finishes_every_credential(ws: Workspace) -> None:
    add_investor_credential(ws, "reports")
    result = ws.run("resume")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "trading: nothing to resume" in result.stdout
    assert "reports: nothing to resume" in result.stdout
