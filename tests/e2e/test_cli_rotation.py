"""The CLI end to end against the simulator over HTTP, with real dotenv stores."""

from __future__ import annotations

import json
import re
import time

import pytest

from rotator.config.loader import DEFAULT_CHECK_PATH
from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said


def assert_rotated(ws: Workspace) -> str:
    """The new key is current in both stores, works, and is the only active key; the old one is dead."""
    new_id = ws.current_id()
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.current_id("mirror.env", "TRADING_") == new_id
    assert ws.active_ids() == {new_id}
    assert ws.works(ws.pair_in())
    assert not ws.works(ws.first.pair)
    return new_id


def test_happy_path_rotates_deploys_verifies_and_revokes(ws: Workspace):
    other_lines_before = [line for line in (ws.root / "app.env").read_text().splitlines() if "BLUUM_" not in line]
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0, result.output
    new_id = assert_rotated(ws)
    for step in ("generate", "accept", "deploy", "confirm", "revoke", "cleanup"):
        assert step in result.output
    assert new_id in result.output
    other_lines_after = [line for line in (ws.root / "app.env").read_text().splitlines() if "BLUUM_" not in line]
    assert other_lines_after == other_lines_before
    assert (ws.root / "app.env").stat().st_mode & 0o777 == 0o600

    status = ws.cli("status", "--json")
    rows = {row["name"]: row for row in json.loads(status.stdout)}
    assert rows["trading"]["current_key"] == new_id
    assert rows["trading"]["stage"] == "idle"
    assert rows["trading"]["next_due"] is not None


def test_old_key_is_no_longer_used_after_cut_over(ws: Workspace):
    """After the old key's revoke, nothing authenticates with it any more; it is only sent to prove the 401.

    The simulator logs the key a request authenticated as, so a 401 carries no key id: after the revoke, every
    unauthenticated request must be a proof (GET on the check path, 401), and no request may be the old key's.
    """
    assert ws.cli("rotate", "trading").exit_code == 0
    old_id = ws.first.info.id
    log = ws.sim.request_log()
    revokes = [i for i, e in enumerate(log) if e["method"] == "POST" and e["path"].endswith(f"/{old_id}/revoke")]
    assert len(revokes) == 1, revokes
    assert log[revokes[0]]["status"] == 200
    after = log[revokes[0] + 1 :]
    assert [e for e in after if e.get("key_id") == old_id] == [], "the old key was accepted after its revoke"
    unauthenticated = [e for e in after if e.get("key_id") is None]
    check_path = "/v1/" + DEFAULT_CHECK_PATH.split("?", 1)[0].lstrip("/")
    proofs = [e for e in unauthenticated if e["method"] == "GET" and e["path"] == check_path and e["status"] == 401]
    assert proofs, "no request proved that Bluum rejects the old key"
    assert unauthenticated == proofs, f"the old key was sent for something other than the proof: {unauthenticated}"


def test_verification_failure_rolls_back_and_revokes_the_new_key(ws: Workspace):
    ws.write_config(verify_timeout="1s")
    ws.delay_new_keys(3600)  # the new key never starts working
    before = ws.snapshot()
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    assert "rolled back" in result.output
    assert ws.current_id() == ws.first.info.id
    assert ws.current_id("mirror.env", "TRADING_") == ws.first.info.id
    assert ws.works(ws.first.pair)
    assert ws.active_ids() == {ws.first.info.id}
    created = [k for k in ws.investor_keys() if k["id"] != ws.first.info.id]
    assert len(created) == 1
    assert created[0]["status"] == "revoked"
    assert (ws.root / "app.env").read_bytes() == before["app.env"]
    assert (ws.root / "mirror.env").read_bytes() == before["mirror.env"]


def test_emergency_revokes_at_once_even_with_a_grace_window(ws: Workspace):
    ws.write_config(grace="1h")
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key pasted in chat")
    assert result.exit_code == 0, result.output
    assert_rotated(ws)


def test_emergency_needs_a_reason(ws: Workspace):
    before = ws.snapshot()
    result = ws.cli("rotate", "trading", "--emergency")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "--reason" in result.output
    assert ws.snapshot() == before


def test_grace_window_keeps_the_old_key_until_resume(ws: Workspace):
    ws.write_config(grace="1h")
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0, result.output
    new_id = ws.current_id()
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id, new_id}  # overlap
    assert ws.works(ws.first.pair)
    assert "grace window ends" in result.output

    early = ws.cli("resume", "trading")
    assert early.exit_code == 0
    assert ws.active_ids() == {ws.first.info.id, new_id}

    status = json.loads(ws.cli("status", "--json").stdout)
    trading = next(r for r in status if r["name"] == "trading")
    assert trading["stage"] == "verified"
    assert "grace window ends" in trading["waiting"]

    again = ws.cli("rotate", "trading")  # nothing is wrong: the rotation only waits out its grace window
    assert again.exit_code == ExitCode.OK, again.output
    assert "grace window until" in again.output
    assert "error" not in again.output.lower()
    assert "rotator resume trading" in again.output
    assert ws.active_ids() == {ws.first.info.id, new_id}

    now = ws.cli("resume", "trading", "--now")
    assert now.exit_code == 0, now.output
    assert_rotated(ws)


def test_dry_run_changes_nothing(ws: Workspace):
    before = ws.snapshot()
    keys_before = ws.sim.keys()
    result = ws.cli("rotate", "trading", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert ws.first.info.id in result.output
    assert ws.snapshot() == before
    assert ws.sim.keys() == keys_before
    assert not (ws.root / "app.env.rotator.lock").exists()


def test_dry_run_prints_the_order_a_rotation_really_follows_in_the_configs_units(ws: Workspace):
    ws.write_config(grace="1h30m", verify_timeout="60s")
    plan = ws.cli("rotate", "trading", "--dry-run").output
    order = [plan.index(word) for word in ("create:", "stage:", "accept:", "deploy:", "confirm:", "revoke:")]
    assert order == sorted(order), plan
    assert "up to 1m" in plan, plan
    assert "grace window (1h30m)" in plan, plan
    assert "0:01:00" not in plan
    assert f"revoke {ws.first.info.id} at Bluum" in plan


def test_dry_run_of_a_manual_credential_says_a_person_revokes(ws: Workspace):
    plan = ws.cli("rotate", "tenant", "--dry-run").output
    assert "a person revokes" in plan, plan
    assert "take the new pair from --new-key-file" in plan


def test_rollback_command_during_grace(ws: Workspace):
    ws.write_config(grace="1h")
    assert ws.cli("rotate", "trading").exit_code == 0
    new_id = ws.current_id()
    result = ws.cli("rollback", "trading")
    assert result.exit_code == 0, result.output
    assert ws.current_id() == ws.first.info.id
    assert ws.current_id("mirror.env", "TRADING_") == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}
    assert new_id not in ws.active_ids()


def test_rollback_after_completion_is_refused(ws: Workspace):
    assert ws.cli("rotate", "trading").exit_code == 0
    before = ws.snapshot()
    result = ws.cli("rollback", "trading")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "already revoked" in result.output
    assert ws.snapshot() == before


def test_verify_command(ws: Workspace):
    assert ws.cli("verify", "trading").exit_code == 0
    ws.excuse(ws.first.pair)
    ws.sim.revoke_key(ws.first.info.id)
    result = ws.cli("verify", "trading")
    assert result.exit_code == ExitCode.INCOMPLETE
    assert "BLUM-401-003" in result.output


def test_sweep_finds_and_revokes_orphans(ws: Workspace):
    from rotator.rules.machine import key_name

    with ws_client(ws) as client:
        orphan = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name=key_name("trading", "f" * 32),
            environment=env_sandbox(),
            idempotency_key="e" * 32,
        )
    listed = ws.cli("sweep", "--json")
    findings = json.loads(listed.stdout)
    assert [(f["key_id"], f["kind"]) for f in findings] == [(orphan.info.id, "orphan")]
    revoked = ws.cli("sweep", "--revoke", "--yes")
    assert revoked.exit_code == 0
    assert orphan.info.id in revoked.output
    assert ws.active_ids() == {ws.first.info.id}
    assert "no orphan keys" in ws.cli("sweep").output


def test_rotation_refuses_to_make_a_third_active_key(ws: Workspace):
    from rotator.rules.machine import key_name

    with ws_client(ws) as client:
        client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name=key_name("trading", "d" * 32),
            environment=env_sandbox(),
            idempotency_key="c" * 32,
        )
    before = ws.snapshot()
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "sweep --revoke" in result.output
    assert ws.snapshot() == before
    assert len(ws.active_ids()) == 2


def test_all_rotates_every_api_minted_credential(ws: Workspace):
    result = ws.cli("rotate", "--all")
    assert result.exit_code == 0, result.output
    assert_rotated(ws)


def test_manual_issuer_deploys_verifies_and_waits_for_the_operator(ws: Workspace):
    """The tenant key itself: a person makes the pair in the dashboard, we deploy and verify it, the person
    revokes the old one, and only a 401 on the old pair lets us forget it."""
    new_tenant = ws.sim.create_tenant_key(environment="TEST")
    ws.guard.watch(new_tenant["secret_key"])
    pair_file = ws.root / "new.json"
    pair_file.write_text(
        json.dumps(
            {
                "api_key": new_tenant["public_key"],
                "api_secret": new_tenant["secret_key"],
                "key_id": new_tenant["id"],
            }
        )
    )
    result = ws.run("rotate", "tenant", "--new-key-file", str(pair_file))
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    assert "Revoke the old key" in result.stdout + result.stderr
    # Named the way the dashboard lists keys, by the start of the API key, so the right one is revoked.
    assert f"its API key starts {ws.tenant_pair.api_key[:12]}" in result.stdout + result.stderr
    assert ws.current_id("tenant.env") == new_tenant["id"]
    # Still waiting: the old pair works, so resume keeps waiting.
    assert ws.run("resume", "tenant").returncode == ExitCode.INCOMPLETE
    ws.sim.revoke_key(ws.tenant["id"])  # the operator, in the dashboard
    done = ws.run("resume", "tenant")
    assert done.returncode == 0, done.stderr
    status = json.loads(ws.run("status", "--json").stdout)
    assert next(r for r in status if r["name"] == "tenant")["stage"] == "idle"
    # The new tenant key now manages the investor keys.
    assert ws.cli("rotate", "trading").exit_code == 0


def test_manual_pair_from_stdin_of_the_wrong_environment_is_refused(ws: Workspace):
    prod = ws.sim.create_tenant_key(environment="PRODUCTION")
    ws.guard.watch(prod["secret_key"])
    before = ws.snapshot()
    payload = json.dumps(
        {
            "api_key": prod["public_key"],
            "api_secret": prod["secret_key"],
            "key_id": prod["id"],
            "environment": "PRODUCTION",
        }
    )
    result = ws.cli("rotate", "tenant", "--new-key-file", "-", input=payload)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "production key where a sandbox key belongs" in result.output
    assert ws.snapshot() == before


def ws_client(ws: Workspace):
    from rotator.bluum.client import BluumClient

    return BluumClient(ws.sim.base_url)


def env_sandbox():
    from rotator.core.model import Environment

    return Environment.SANDBOX


@pytest.mark.parametrize("style", ["flat", "legacy"])
def test_rotation_works_with_every_error_body_style(ws: Workspace, style: str):
    ws.sim.configure(error_style=style)
    ws.delay_new_keys(0.3)
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0, result.output
    assert_rotated(ws)


def test_done_line_reports_step_time_and_waiting(ws: Workspace):
    ws.delay_new_keys(0.5)
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0
    done = next(line for line in result.output.splitlines() if "rotation complete" in line)
    timing = re.search(r"\((\d+(?:\.\d{1,2})?)s of steps, (\d+(?:\.\d{1,2})?)s of it waiting\)", done)
    assert timing, done
    steps, waited = float(timing.group(1)), float(timing.group(2))
    # The new key answers 401 for 0.5 s: the verification sleeps through at least that, and sleeps are counted.
    assert waited >= 0.5, done
    assert steps >= waited, done


def test_run_due_counts_the_age_of_keys_seeded_by_hand(ws: Workspace):
    """trading's key is in Bluum's list: its age comes from its creation time; the tenant key (no list) is counted
    from the first tick that sees it. Neither is rotated, nobody is paged, and the count is kept."""
    first = ws.run("run-due")
    assert first.returncode == ExitCode.OK, said(first)
    assert "trading: not due" in first.stdout
    assert "tenant: not due" in first.stdout
    assert ws.active_ids() == {ws.first.info.id}
    status = {r["name"]: r for r in json.loads(ws.run("status", "--json").stdout)}
    assert "Bluum's creation time" in status["trading"]["waiting"]
    assert "first saw it" in status["tenant"]["waiting"]
    assert status["trading"]["next_due"] is not None
    record = json.loads(ws.sidecar_path("app.env").read_text())["record"]
    assert record["age_source"] == "bluum"
    assert ws.run("run-due").returncode == ExitCode.OK


def test_seeded_key_age_due_rotates_keys_seeded_by_hand_at_the_first_run(ws: Workspace):
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\nseeded_key_age = "due"')
    ws.edit_config('store = "tenant"', 'store = "tenant"\nseeded_key_age = "due"')
    first = ws.cli("run-due")
    # trading was seeded by hand (age unknown, so due) and is rotated; the tenant key waits on a person.
    assert first.exit_code == ExitCode.INCOMPLETE, first.output
    assert "tenant: rotation is due and waits on a person" in first.output
    new_id = assert_rotated(ws)
    second = ws.cli("run-due")
    assert "trading: not due" in second.output
    assert ws.current_id() == new_id


def test_run_due_revokes_after_the_grace_window(ws: Workspace):
    ws.write_config(grace="1s")
    assert ws.cli("rotate", "trading").exit_code == 0
    assert len(ws.active_ids()) == 2
    time.sleep(1.1)
    tick = ws.cli("run-due")
    assert "trading: rotation complete" in tick.output
    assert_rotated(ws)


def test_a_file_seeded_by_hand_with_only_key_and_secret_rotates(ws: Workspace):
    """The key id is found at Bluum by the public key; environment and base URL come from rotator.toml. The file
    keeps its two bare lines: nothing is added that the store was not told to write."""
    for name, prefix in (("app.env", "BLUUM_"), ("mirror.env", "TRADING_")):
        (ws.root / name).write_text(
            f"{prefix}API_KEY={ws.first.pair.api_key}\n{prefix}API_SECRET={ws.first.pair.api_secret.reveal()}\n"
        )
        (ws.root / name).chmod(0o600)
    status = json.loads(ws.cli("status", "--json").stdout)
    assert next(r for r in status if r["name"] == "trading")["current_key"].startswith("key#")
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0, result.output
    assert ws.first.info.id in result.output, "the old key's id was looked up at Bluum"
    for name, prefix in (("app.env", "BLUUM_"), ("mirror.env", "TRADING_")):
        text = (ws.root / name).read_text()
        assert [line.split("=", 1)[0] for line in text.splitlines()] == [f"{prefix}API_KEY", f"{prefix}API_SECRET"]
        assert "'" not in text, "bare lines stay bare"
    new = ws.pair_in()
    assert new.api_key != ws.first.pair.api_key
    assert ws.works(new)
    assert ws.works(ws.pair_in("mirror.env", "TRADING_"))
    assert not ws.works(ws.first.pair)
    new_id = next(str(k["id"]) for k in ws.investor_keys() if k["status"] == "active")
    assert ws.active_ids() == {new_id}


def test_fields_the_store_is_configured_to_write_are_added_to_a_hand_seeded_file(ws: Workspace):
    (ws.root / "app.env").write_text(
        f"BLUUM_API_KEY={ws.first.pair.api_key}\nBLUUM_API_SECRET={ws.first.pair.api_secret.reveal()}\n"
    )
    ws.edit_config('path = "app.env"', 'path = "app.env"\nfields = ["key_id", "environment", "base_url"]')
    result = ws.cli("rotate", "trading")
    assert result.exit_code == 0, result.output
    assert ws.values()["BLUUM_ENVIRONMENT"] == "sandbox"
    assert ws.values()["BLUUM_BASE_URL"] == ws.sim.base_url
    assert ws.values()["BLUUM_KEY_ID"] == ws.current_id("mirror.env", "TRADING_")
