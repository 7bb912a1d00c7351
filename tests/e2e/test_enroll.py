"""A credential's first key, through the CLI against the simulator: a new user starts from an empty folder."""

from __future__ import annotations

import json
import stat

from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said


def add_new_credential(ws: Workspace, *, issuer: str = "bluum") -> None:
    extra = f'investor_id = "{ws.investor}"\nmanager = "tenant"\n' if issuer == "bluum" else ""
    ws.add_config(
        f"""
[stores.fresh]
type = "env"
path = "fresh/.env"

[stores.fresh_copy]
type = "env"
path = "fresh/copy.env"

[credentials.fresh]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "{issuer}"
{extra}store = "fresh"
also_deploy_to = ["fresh_copy"]
grace = "0s"
verify_timeout = "2s"
"""
    )
    (ws.root / "fresh").mkdir()


def test_enroll_mints_the_first_key_and_creates_the_files(ws: Workspace):
    add_new_credential(ws)
    refused = ws.run("rotate", "fresh")
    assert refused.returncode == ExitCode.BAD_INPUT
    assert "rotator enroll" in said(refused), "the error for a missing file names the way out"

    proc = ws.run("enroll", "fresh")
    assert proc.returncode == ExitCode.OK, said(proc)
    assert "enrolled" in proc.stdout
    values = dotenv_values(ws.root / "fresh" / ".env")
    copy = dotenv_values(ws.root / "fresh" / "copy.env")
    assert values["BLUUM_API_KEY"] == copy["BLUUM_API_KEY"]
    pair = KeyPair(str(values["BLUUM_API_KEY"]), Secret(str(values["BLUUM_API_SECRET"])), Environment.SANDBOX)
    assert ws.works(pair)
    ws.sampled += [("fresh/.env", "BLUUM_"), ("fresh/copy.env", "BLUUM_")]  # watched from now on
    assert stat.S_IMODE((ws.root / "fresh" / ".env").stat().st_mode) == 0o600
    assert len(ws.active_ids()) == 2, "the first key beside the existing credential's own"

    status = json.loads(ws.run("status", "--json").stdout)
    row = next(r for r in status if r["name"] == "fresh")
    assert row["age_seconds"] is not None, "an enrolled key's age is known from the start"

    again = ws.run("enroll", "fresh")
    assert again.returncode == ExitCode.BAD_INPUT
    assert "already holds a key" in said(again)
    assert ws.run("rotate", "fresh").returncode == ExitCode.OK, "and from now on it rotates like any other"


def test_enroll_of_a_manual_credential_checks_the_handed_over_pair_first(ws: Workspace):
    add_new_credential(ws, issuer="manual")
    needs = ws.run("enroll", "fresh")
    assert needs.returncode == ExitCode.BAD_INPUT
    assert "--new-key-file" in said(needs)

    wrong = ws.root / "wrong.json"
    wrong.write_text(json.dumps({"api_key": "pk_test_nobody", "api_secret": "sk_test_not_a_real_secret"}))
    refused = ws.run("enroll", "fresh", "--new-key-file", str(wrong))
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert not (ws.root / "fresh" / ".env").exists(), "nothing was written for a pair Bluum does not accept"

    tenant = ws.sim.create_tenant_key(environment="TEST")
    ws.guard.watch(tenant["secret_key"])
    good = ws.root / "first.json"
    good.write_text(
        json.dumps({"api_key": tenant["public_key"], "api_secret": tenant["secret_key"], "key_id": tenant["id"]})
    )
    proc = ws.run("enroll", "fresh", "--new-key-file", str(good))
    assert proc.returncode == ExitCode.OK, said(proc)
    assert dotenv_values(ws.root / "fresh" / ".env")["BLUUM_API_KEY"] == tenant["public_key"]
