"""The I1 holes an outside reliability run found (issue 6), each reproduced through the CLI against the simulator.

Every test starts from state a person can leave behind (a hand-edited id line, a deleted sidecar, a copied file,
a crashed run, a key being abused) and asserts what an operator would check: the exit code, what was said, which
keys Bluum still accepts, and that files and keys are unchanged where nothing may change. The workspace's key
sampler watches every target's key all along: any moment an application's key got anything but 200 fails the test.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.rules.machine import key_name as machine_key_name
from tests.e2e.conftest import Workspace, dotenv_text
from tests.e2e.test_review_scenarios import current_everywhere, key_status, record, said, sidecar
from tests.e2e.test_sweep import add_second_credential

pytestmark = pytest.mark.slow


def set_line(path: Path, name: str, value: str) -> None:
    """Hand-edit one `NAME='value'` line, as a person with an editor would."""
    text = path.read_text()
    edited, count = re.subn(rf"^{name}=.*$", f"{name}='{value}'", text, flags=re.MULTILINE)
    assert count == 1, f"{name} not in {path.name}"
    path.write_text(edited)


def assert_nothing_changed(ws: Workspace, files: dict[str, bytes], keys: list[dict[str, object]]) -> None:
    assert ws.snapshot() == files, "a file changed"
    assert ws.sim.keys() == keys, "a key was created or revoked at Bluum"


def log_lines(proc_stderr: str) -> list[dict[str, object]]:
    """The JSON log records a -vv run wrote to stderr."""
    return [json.loads(line) for line in proc_stderr.splitlines() if line.startswith("{")]


# ----------------------------------------------------------------------------- 1. the id line is not the key


def test_an_id_line_naming_another_credentials_key_is_refused_and_that_key_survives(ws: Workspace):
    """app.env holds credential A's pair, but its id line names B's key: nothing may touch B's key."""
    b_id = add_second_credential(ws)
    ws.sampled.append(("reports.env", "BLUUM_"))
    a_id = ws.first.info.id
    set_line(ws.root / "app.env", "BLUUM_KEY_ID", b_id)
    files, keys = ws.snapshot(), ws.sim.keys()

    for args in (("rotate", "trading", "--dry-run"), ("rotate", "trading")):
        proc = ws.run(*args)
        message = said(proc)
        assert proc.returncode == ExitCode.BAD_INPUT, f"{args}: {proc.returncode} {message}"
        assert b_id in message, message
        assert a_id in message, message
        assert "key id line" in message, message
        assert "Nothing was changed" in message, message
        assert "sweep --revoke" not in message, message
        assert_nothing_changed(ws, files, keys)

    swept = ws.run("sweep", "--revoke", "--yes", "--include-foreign")
    assert swept.returncode == ExitCode.OK, said(swept)
    assert ws.sim.keys() == keys, f"sweep revoked a key a store holds: {said(swept)}"
    assert ws.works(ws.pair_in("reports.env"))
    assert ws.works(ws.pair_in())

    set_line(ws.root / "app.env", "BLUUM_KEY_ID", a_id)  # the fix the message names
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert key_status(ws, a_id) == "revoked"
    assert key_status(ws, b_id) == "active"


def test_a_crashed_run_whose_record_names_another_key_revokes_the_old_pair_not_that_key(ws: Workspace):
    """Leftovers of the old behaviour: a record at REVOKING whose old key id is B's. Resume revokes the key whose
    public key PREVIOUS holds (A's old key), leaves B's alone, and finishes."""
    b_id = add_second_credential(ws)
    ws.sampled.append(("reports.env", "BLUUM_"))
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "revoking.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    assert data["record"]["phase"] == "revoking"
    data["record"]["old_key_id"] = b_id
    path.write_text(json.dumps(data, indent=2) + "\n")

    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert key_status(ws, b_id) == "active"
    assert ws.works(ws.pair_in("reports.env"))
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert record(ws)["phase"] == "completed"
    assert record(ws)["old_key_id"] == ws.first.info.id
    new_id = current_everywhere(ws)
    assert ws.active_ids() == {new_id, b_id}


# ----------------------------------------------------------------------------- 2. advice that revokes the live key


def test_a_stale_id_line_after_lost_state_never_leads_to_revoking_the_live_key(ws: Workspace):
    """Two rotations, then the id lines point at the first (revoked) key and the sidecars are deleted (the README's
    advice for corrupt state). The rotation refuses without advising `sweep --revoke`, and sweep spares the key."""
    for _ in range(2):
        assert ws.run("rotate", "trading").returncode == ExitCode.OK
    live = current_everywhere(ws)
    assert live
    set_line(ws.root / "app.env", "BLUUM_KEY_ID", ws.first.info.id)
    set_line(ws.root / "mirror.env", "TRADING_KEY_ID", ws.first.info.id)
    for name in ("app.env", "mirror.env"):
        ws.sidecar_path(name).unlink()
    files, keys = ws.snapshot(), ws.sim.keys()

    refused = ws.run("rotate", "trading")
    message = said(refused)
    assert refused.returncode == ExitCode.BAD_INPUT, message
    assert live in message, message
    assert ws.first.info.id in message, message
    assert "sweep --revoke" not in message, message
    assert_nothing_changed(ws, files, keys)

    for args in (("sweep", "--revoke", "--yes"), ("sweep", "--revoke", "--yes", "--include-foreign")):
        swept = ws.run(*args)
        assert swept.returncode == ExitCode.OK, said(swept)
        assert key_status(ws, live) == "active", f"{args} revoked the key applications use: {said(swept)}"
    assert ws.works(ws.pair_in())


def test_sweep_spares_a_key_held_only_as_previous_whatever_its_id_says(ws: Workspace):
    """In a grace window the old key is PREVIOUS (applications may still hold it in memory). With the record
    gone and the id of PREVIOUS edited, it looks like a foreign orphan to a sweep that trusts ids."""
    ws.write_config(grace="1h")
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    for name in ("app.env", "mirror.env"):
        path = ws.sidecar_path(name)
        data = json.loads(path.read_text())
        assert data["previous"]["key_id"] == ws.first.info.id
        data["previous"]["key_id"] = "apk_00000000000000000000000000"
        data["record"] = None
        path.write_text(json.dumps(data, indent=2) + "\n")

    swept = ws.run("sweep", "--revoke", "--yes", "--include-foreign")
    assert swept.returncode == ExitCode.OK, said(swept)
    assert key_status(ws, ws.first.info.id) == "active", said(swept)
    assert ws.works(ws.first.pair)


def test_sweep_revoke_spares_a_key_that_only_another_configured_store_holds(ws: Workspace):
    """A key no credential's own stores know, held by a store of a credential sweep does not list (issuer manual):
    `sweep --revoke --include-foreign` reports it as held and leaves it active."""
    with BluumClient(ws.sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        extra = client.create_investor_key(
            ws.tenant_pair, ws.investor, name="kiosk", environment=Environment.SANDBOX, idempotency_key=uuid.uuid4().hex
        )
    (ws.root / "kiosk.env").write_text(dotenv_text(extra.pair, "sandbox", ws.sim.base_url))
    (ws.root / "kiosk.env").chmod(0o600)
    ws.sampled.append(("kiosk.env", "BLUUM_"))
    ws.add_config(
        f"""
[stores.kiosk]
type = "env"
path = "kiosk.env"

[credentials.kiosk]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "manual"
store = "kiosk"
"""
    )
    swept = ws.run("sweep", "--revoke", "--yes", "--include-foreign")
    assert swept.returncode == ExitCode.INCOMPLETE, said(swept)  # a held key is left for a person
    assert key_status(ws, extra.info.id) == "active", said(swept)
    assert "held" in said(swept)
    assert "kiosk" in said(swept)


# ----------------------------------------------------------------------------- 3. a current key that cannot be checked


def test_a_check_path_that_answers_404_refuses_the_rotation(ws: Workspace):
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\ncheck_path = "/nothing-here"')
    files, keys = ws.snapshot(), ws.sim.keys()
    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message
    assert "404" in message, message
    assert "check_path" in message, message
    assert "Nothing was changed" in message, message
    assert_nothing_changed(ws, files, keys)


@pytest.mark.parametrize(
    ("garble", "expect"),
    [
        (lambda key, secret: (key, "x" * 70_000), "70000 characters"),
        (lambda key, secret: (key, secret[:10] + " " + secret[10:]), "position 11"),
        (lambda key, secret: (key[:5] + ":" + key[5:], secret), "':'"),
    ],
    ids=["secret-70KB", "space-in-secret", "colon-in-key"],
)
def test_values_no_http_request_can_carry_are_refused_before_anything_is_created(ws: Workspace, garble, expect: str):
    pair = ws.pair_in()
    key, secret = garble(pair.api_key, pair.api_secret.reveal())
    garbled = KeyPair(key, Secret(secret), Environment.SANDBOX, pair.key_id)
    ws.excuse(garbled)
    ws.guard.watch(secret)
    (ws.root / "app.env").write_text(dotenv_text(garbled, "sandbox", ws.sim.base_url))
    files, keys = ws.snapshot(), ws.sim.keys()
    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message
    assert expect in message, message
    assert "app.env" in message, message
    assert_nothing_changed(ws, files, keys)


def test_a_production_key_in_a_sandbox_credentials_store_is_refused(ws: Workspace):
    """A production key pasted into a sandbox credential's files (its environment line edited to match)."""
    prod_tenant = ws.sim.create_tenant_key(environment="PRODUCTION")
    prod_pair = KeyPair(
        prod_tenant["public_key"], Secret(prod_tenant["secret_key"]), Environment.PRODUCTION, prod_tenant["id"]
    )
    with BluumClient(ws.sim.base_url, rate_limits={Environment.PRODUCTION: math.inf}) as client:
        prod = client.create_investor_key(
            prod_pair, ws.investor, name="live app", environment=Environment.PRODUCTION, idempotency_key="p" * 32
        )
    text = dotenv_text(prod.pair, "sandbox", ws.sim.base_url)
    (ws.root / "app.env").write_text(text)
    (ws.root / "mirror.env").write_text(text.replace("BLUUM_", "TRADING_"))
    files, keys = ws.snapshot(), ws.sim.keys()
    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message
    assert prod.info.id in message, message
    assert_nothing_changed(ws, files, keys)
    assert key_status(ws, prod.info.id) == "active"


# ----------------------------------------------------------------------------- 4. an emergency on an abused key


def hammer(url: str, pair: KeyPair, stop: threading.Event) -> None:
    """Someone abusing a leaked key: requests as fast as one connection goes, so its rate limit stays spent."""
    with httpx.Client(auth=(pair.api_key, pair.api_secret.reveal()), timeout=5) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                client.get(f"{url}/assets")


def test_an_emergency_never_waits_on_the_leaked_key(ws: Workspace):
    """The leaked key's rate limit is spent by an abuser. The emergency must not call it before revoking it:
    the only calls with it are the proof afterwards that Bluum rejects it (401), and no retry is ever slept on it."""
    stop = threading.Event()
    abuser = threading.Thread(target=hammer, args=(ws.sim.base_url, ws.first.pair, stop), daemon=True)
    abuser.start()
    try:
        proc = ws.run("rotate", "trading", "--emergency", "--reason", "key pasted in a public channel")
    finally:
        stop.set()
        abuser.join(10)
    assert proc.returncode == ExitCode.OK, said(proc)
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert not ws.works(ws.first.pair)
    with_leaked = [r for r in log_lines(proc.stderr) if r.get("key") == ws.first.info.id]
    assert with_leaked, "the old key was never proven dead"
    assert all(r.get("status") == 401 for r in with_leaked if "status" in r), with_leaked
    assert not [r for r in with_leaked if "retry" in str(r.get("msg", r.get("message", "")))], with_leaked


# ----------------------------------------------------------------------------- 5. messages that mislead


def test_a_store_path_that_is_a_directory_says_so(ws: Workspace):
    (ws.root / "appdir").mkdir()
    ws.edit_config('path = "app.env"', 'path = "appdir"')
    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message
    assert "is a directory" in message, message
    assert "does not exist" not in message, message


def test_a_rejected_manager_key_names_the_manager_credential_and_its_store(ws: Workspace):
    ws.excuse(ws.tenant_pair)
    ws.sim.revoke_key(ws.tenant["id"])
    files, keys = ws.snapshot(), ws.sim.keys()
    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message
    assert ws.tenant["id"] in message, message
    assert "credential 'tenant'" in message, message
    assert "store 'tenant'" in message, message
    assert "tenant.env" in message, message
    assert_nothing_changed(ws, files, keys)


def test_a_rollback_whose_check_is_inconclusive_does_not_call_the_old_key_dead(ws: Workspace):
    """Rollback during grace while Bluum answers the check path with 503: the old key works, and the message must
    not say otherwise; it says the check could not be made."""
    ws.write_config(grace="1h")
    ws.bluum_gives_up_soon("2s")
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    ws.sim.inject_fault(method="GET", path="/v1/assets", count=4, status=503)
    proc = ws.run("rollback", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.OK, message
    assert current_everywhere(ws) == ws.first.info.id
    assert ws.works(ws.first.pair)
    assert "could not be checked" in message, message
    for wrong in ("does not accept", "rejects it", "no longer works"):
        assert wrong not in message, message
    assert sidecar(ws)["record"]["phase"] == "rolled_back"


# ----------------------------------------------------------------------------- found in review: no dead ends


def test_two_credentials_holding_one_key_are_refused_before_anything_changes(ws: Workspace):
    """If reports.env held trading's key, neither rotation could ever revoke it (the other still holds it)."""
    add_second_credential(ws)
    (ws.root / "reports.env").write_text((ws.root / "app.env").read_text())
    files, keys = ws.snapshot(), ws.sim.keys()
    for name in ("trading", "reports"):
        proc = ws.run("rotate", name)
        message = said(proc)
        assert proc.returncode == ExitCode.BAD_INPUT, message
        assert "must not share a key" in message, message
        assert_nothing_changed(ws, files, keys)


def test_the_advice_for_a_stray_key_is_one_that_sweep_follows(ws: Workspace):
    """After a rotation someone deploys another key of this credential by hand: the key the record names is now
    in no store. `rotate` advises `sweep --revoke`; sweep revokes exactly that key; then `rotate` works."""
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    stray = current_everywhere(ws)
    assert stray
    with BluumClient(ws.sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        by_hand = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name=machine_key_name("trading", uuid.uuid4().hex),
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    (ws.root / "app.env").write_text(dotenv_text(by_hand.pair, "sandbox", ws.sim.base_url))
    (ws.root / "mirror.env").write_text(
        dotenv_text(by_hand.pair, "sandbox", ws.sim.base_url).replace("BLUUM_", "TRADING_")
    )
    refused = ws.run("rotate", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "sweep --revoke" in said(refused)
    assert stray in said(refused)
    swept = ws.run("sweep", "--revoke", "--yes")
    assert swept.returncode == ExitCode.OK, said(swept)
    assert key_status(ws, stray) == "revoked"
    assert key_status(ws, by_hand.info.id) == "active"
    assert ws.run("rotate", "trading").returncode == ExitCode.OK


def test_previous_removed_by_hand_in_the_grace_window_still_finishes(ws: Workspace):
    """PREVIOUS deleted from both sidecars during grace: the old key is found by the id Bluum gave at the start
    (no store holds its pair any more, so revoking it takes it from nobody) and the rotation completes."""
    ws.write_config(grace="1h")
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    for name in ("app.env", "mirror.env"):
        path = ws.sidecar_path(name)
        data = json.loads(path.read_text())
        data["previous"] = None
        path.write_text(json.dumps(data, indent=2) + "\n")
    resumed = ws.run("resume", "trading", "--now")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert record(ws)["phase"] == "completed"
    again = ws.run("resume", "trading")
    assert again.returncode == ExitCode.OK, said(again)


def test_an_emergency_that_rolls_back_does_not_call_the_leaked_key_either(ws: Workspace):
    ws.write_config(verify_timeout="1s")
    ws.delay_new_keys(3600)  # the new key never starts working: the emergency rolls back
    proc = ws.run("rotate", "trading", "--emergency", "--reason", "leaked")
    assert proc.returncode == ExitCode.ROLLED_BACK, said(proc)
    assert "leaked key of an emergency" in said(proc)
    assert [r for r in log_lines(proc.stderr) if r.get("key") == ws.first.info.id] == []
    assert ws.works(ws.first.pair)
