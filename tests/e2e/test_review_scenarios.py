"""Scenarios from the review, end to end: the real CLI in subprocesses, the simulator over HTTP, real dotenv files.

Each scenario asserts what an operator would check afterwards: the exit code and what was said, which key is
current in app.env AND mirror.env, and which keys Bluum still accepts. Every output goes through the leak guard
(`ws.run` hands it over; the concurrent runs below hand theirs over by hand).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV, HOLD_ENV, RELEASE_ENV
from rotator.core.model import Environment
from tests.e2e.conftest import Workspace, dotenv_text

pytestmark = pytest.mark.slow

DAY_AND_AN_HOUR = 25 * 3600


# ----------------------------------------------------------------------------- helpers


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """What the command told a person: stdout and the non-log lines of stderr (logs are JSON lines under -vv)."""
    lines = proc.stdout.splitlines() + [line for line in proc.stderr.splitlines() if not line.startswith("{")]
    return "\n".join(lines)


def sidecar(ws: Workspace, name: str = "app.env") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ws.sidecar_path(name).read_text())
    return data


def record(ws: Workspace) -> dict[str, Any]:
    data: dict[str, Any] = sidecar(ws)["record"]
    return data


def key_status(ws: Workspace, key_id: str) -> str:
    return str(next(k for k in ws.sim.keys() if k["id"] == key_id)["status"])


def created_ids(ws: Workspace) -> list[str]:
    """Investor keys made after the first one (by the rotations under test), in creation order."""
    return [str(k["id"]) for k in ws.investor_keys() if k["id"] != ws.first.info.id]


def current_everywhere(ws: Workspace) -> str | None:
    """The key id current in app.env, after checking mirror.env holds the same one."""
    app, mirror = ws.current_id(), ws.current_id("mirror.env", "TRADING_")
    assert app == mirror, f"app.env holds {app}, mirror.env holds {mirror}"
    return app


def assert_rotated(ws: Workspace) -> str:
    """The new key is current in both stores, works, and is the only active key; the old one is dead."""
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {new_id}
    assert ws.works(ws.pair_in())
    assert ws.works(ws.pair_in("mirror.env", "TRADING_"))
    assert not ws.works(ws.first.pair)
    return new_id


def assert_old_key_back(ws: Workspace) -> None:
    """The first key is current in both stores again, and Bluum still accepts it."""
    assert current_everywhere(ws) == ws.first.info.id
    assert ws.works(ws.pair_in())
    assert ws.works(ws.pair_in("mirror.env", "TRADING_"))
    assert ws.first.info.id in ws.active_ids()


def pretend_a_day_passed(ws: Workspace) -> None:
    """Bluum's clock moves 25 h (its Idempotency-Key records expire) and the record says it started 25 h ago:
    the engine reads wall time, so the record is what has to age."""
    ws.sim.advance_clock(DAY_AND_AN_HOUR)
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    data["record"]["started_at"] -= DAY_AND_AN_HOUR
    data["record"]["updated_at"] -= DAY_AND_AN_HOUR
    path.write_text(json.dumps(data, indent=2) + "\n")


def crash_at(ws: Workspace, point: str) -> None:
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
    assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {said(crashed)}"


# ----------------------------------------------------------------------------- 1. no rollback once revoking


@pytest.mark.parametrize("point", ["revoking.record", "revoke.bluum"])
def test_rollback_is_refused_once_revoking_and_resume_finishes(ws: Workspace, point: str):
    """REVOKING is written before the revoke call: from there on rollback is refused, whether or not the
    revoke reached Bluum, and the refusal must point at the one command that finishes: `rotator resume`."""
    crash_at(ws, point)
    assert record(ws)["phase"] == "revoking"
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id
    if point == "revoke.bluum":
        assert ws.active_ids() == {new_id}, "the crash came right after the old key was revoked at Bluum"
        assert not ws.works(ws.first.pair)
    else:
        assert ws.active_ids() == {ws.first.info.id, new_id}, "the crash came before the revoke call"

    active_before = ws.active_ids()
    before = ws.snapshot()
    refused = ws.run("rollback", "trading")
    assert refused.returncode in (ExitCode.BAD_INPUT, ExitCode.INCOMPLETE), said(refused)
    assert ws.snapshot() == before, "a refused rollback changed a store"
    assert ws.active_ids() == active_before
    message = said(refused)
    assert "error:" in message
    assert "no going back" in message, message
    assert "already revoked" not in message, "the revoke may not have reached Bluum: do not claim it did"
    assert "rotator resume trading" in message, f"the refusal must send the operator to resume: {message}"

    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert assert_rotated(ws) == new_id
    assert record(ws)["phase"] == "completed"


# ----------------------------------------------------------------------------- 2. rollback before revoking


def test_rollback_after_a_crash_at_verified_restores_the_old_key(ws: Workspace):
    crash_at(ws, "verified.record")  # grace 0: the next step would have revoked the old key
    assert record(ws)["phase"] == "verified"
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id, new_id}

    rolled = ws.run("rollback", "trading")
    assert rolled.returncode == ExitCode.OK, said(rolled)
    assert "rolled back" in said(rolled)
    assert_old_key_back(ws)
    assert ws.active_ids() == {ws.first.info.id}
    assert key_status(ws, new_id) == "revoked"
    assert record(ws)["phase"] == "rolled_back"


# ----------------------------------------------------------------------------- 3. the grace window


def test_new_key_dying_in_the_grace_window_rolls_back_instead_of_revoking_the_old(ws: Workspace):
    ws.write_config(grace="1h")
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id, new_id}

    ws.excuse(ws.pair_in())
    ws.sim.revoke_key(new_id)  # the new key dies while the old one waits out the grace window
    resumed = ws.run("resume", "trading", "--now")
    assert resumed.returncode == ExitCode.ROLLED_BACK, said(resumed)
    assert "rolled back" in said(resumed)
    assert_old_key_back(ws)
    assert ws.active_ids() == {ws.first.info.id}
    assert record(ws)["phase"] == "rolled_back"


def test_a_store_edited_in_the_grace_window_stops_the_revoke(ws: Workspace):
    original_mirror = (ws.root / "mirror.env").read_text()
    ws.write_config(grace="1h")
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id

    # Someone puts the old key back into mirror.env by hand: its TRADING_ lines as they were before the rotation.
    old_lines = {line.split("=", 1)[0]: line for line in original_mirror.splitlines() if line.startswith("TRADING_")}
    mirror = ws.root / "mirror.env"
    edited = [old_lines.get(line.split("=", 1)[0], line) for line in mirror.read_text().splitlines()]
    mirror.write_text("\n".join(edited) + "\n")
    assert ws.current_id("mirror.env", "TRADING_") == ws.first.info.id
    assert ws.current_id() == new_id

    before = ws.snapshot()
    resumed = ws.run("resume", "trading", "--now")
    assert resumed.returncode == ExitCode.INCOMPLETE, said(resumed)
    assert "NOT revoked" in said(resumed)
    assert ws.snapshot() == before, "resume changed a store although it refused to revoke"
    assert ws.active_ids() == {ws.first.info.id, new_id}
    assert ws.works(ws.first.pair)
    assert ws.works(ws.pair_in("mirror.env", "TRADING_"))
    assert record(ws)["phase"] == "verified", "the refusal must leave the rotation where rollback is still possible"


# ----------------------------------------------------------------------------- 4, 5. resume after 24 h


def test_resume_after_the_idempotency_window_revokes_the_key_whose_secret_was_lost(ws: Workspace):
    crash_at(ws, "create.bluum")
    assert record(ws)["phase"] == "started"
    lost = created_ids(ws)
    assert len(lost) == 1, "the crash came right after the create"
    k1 = lost[0]
    assert key_status(ws, k1) == "active"
    assert sidecar(ws)["pending"] is None, "the secret of K1 was never stored"
    assert current_everywhere(ws) == ws.first.info.id

    pretend_a_day_passed(ws)
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    new_id = assert_rotated(ws)
    assert new_id != k1
    assert key_status(ws, k1) == "revoked"
    assert len(ws.active_ids()) == 1
    assert created_ids(ws) == [k1, new_id], "exactly one replacement for the lost key"

    sweep = ws.run("sweep", "--json")
    assert sweep.returncode == ExitCode.OK, said(sweep)
    assert json.loads(sweep.stdout) == [], "sweep reports an orphan or a warning"


def test_resume_after_the_idempotency_window_uses_the_key_stored_as_pending(ws: Workspace):
    crash_at(ws, "pending.store")
    assert record(ws)["phase"] == "started"
    made = created_ids(ws)
    assert len(made) == 1
    k1 = made[0]
    assert sidecar(ws)["pending"]["key_id"] == k1

    pretend_a_day_passed(ws)
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert assert_rotated(ws) == k1, "the key stored as PENDING must be the one deployed"
    assert created_ids(ws) == [k1], "no second key was created"
    assert ws.active_ids() == {k1}


# ----------------------------------------------------------------------------- 6. concurrency


def test_five_concurrent_rotations_one_wins(ws: Workspace, tmp_path: Path):
    """The first to take the lock parks right after writing its record; the other four must give up at once."""
    release = tmp_path / "release"
    env = {**os.environ, HOLD_ENV: "started.record", RELEASE_ENV: str(release)}
    outputs = [(tmp_path / f"run{i}.out", tmp_path / f"run{i}.err") for i in range(5)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for out, err in outputs:
            with out.open("wb") as stdout, err.open("wb") as stderr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "rotator", "-vv", "--config", str(ws.config), "rotate", "trading"],
                        stdout=stdout,
                        stderr=stderr,
                        cwd=ws.root,
                        env=env,
                    )
                )
        deadline = time.monotonic() + 45
        while sum(p.poll() is not None for p in procs) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = [i for i, p in enumerate(procs) if p.poll() is not None]
        assert len(finished) == 4, f"{len(finished)} of 5 runs finished while one holds the lock"
        (held,) = (i for i, p in enumerate(procs) if p.poll() is None)

        for i in finished:
            stdout_text, stderr_text = outputs[i][0].read_text(), outputs[i][1].read_text()
            ws.guard.check(stdout_text, f"run {i} stdout")
            ws.guard.check(stderr_text, f"run {i} stderr")
            assert procs[i].returncode == ExitCode.IN_PROGRESS, f"run {i}: {procs[i].returncode}"
            assert "another rotation of this credential is running" in stderr_text
        # The winner parks once its record is written (its preflight may still be running when the others quit).
        while not ws.sidecar_path("app.env").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Parked after its record: it has created nothing yet.
        assert record(ws)["phase"] == "started"
        assert created_ids(ws) == []

        release.touch()
        assert procs[held].wait(timeout=60) == ExitCode.OK
        ws.guard.check(outputs[held][0].read_text(), "winner stdout")
        ws.guard.check(outputs[held][1].read_text(), "winner stderr")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(created_ids(ws)) == 1, "exactly one new key was created"
    assert_rotated(ws)
    assert record(ws)["phase"] == "completed"


# ----------------------------------------------------------------------------- 7. manual issuer rollback


def test_rollback_of_a_manual_key_asks_for_the_new_pair_to_be_revoked_in_the_dashboard(ws: Workspace):
    ws.write_config(grace="1h")
    new_tenant = ws.sim.create_tenant_key(environment="TEST")
    ws.guard.watch(new_tenant["secret_key"])
    pair_file = ws.root / "new.json"
    pair_file.write_text(
        json.dumps(
            {"api_key": new_tenant["public_key"], "api_secret": new_tenant["secret_key"], "key_id": new_tenant["id"]}
        )
    )
    rotated = ws.run("rotate", "tenant", "--new-key-file", str(pair_file))
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert ws.current_id("tenant.env") == new_tenant["id"]

    rolled = ws.run("rollback", "tenant")
    assert rolled.returncode == ExitCode.OK, said(rolled)
    message = said(rolled)
    assert ws.current_id("tenant.env") == ws.tenant["id"]
    assert ws.works(ws.pair_in("tenant.env"))
    assert new_tenant["id"] in message
    assert "dashboard" in message, message
    assert "revoke it" in message, message
    assert "was revoked" not in message, f"the new pair cannot have been revoked by us: {message}"
    # Honest state: we cannot revoke a dashboard key, so it is still active until a person does.
    assert key_status(ws, new_tenant["id"]) == "active"
    assert key_status(ws, ws.tenant["id"]) == "active"
    assert sidecar(ws, "tenant.env")["record"]["phase"] == "rolled_back"


# ----------------------------------------------------------------------------- 8. a key Bluum does not list


def test_a_hand_seeded_key_bluum_does_not_list_waits_for_the_dashboard_then_finishes(ws: Workspace):
    other_investor = ws.sim.create_investor()
    with BluumClient(ws.sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        foreign = client.create_investor_key(
            ws.tenant_pair,
            other_investor,
            name="seeded by hand",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    seeded = "".join(
        line + "\n"
        for line in dotenv_text(foreign.pair, "sandbox", ws.sim.base_url).splitlines()
        if "KEY_ID" not in line
    )
    (ws.root / "app.env").write_text(seeded)
    (ws.root / "mirror.env").write_text(seeded.replace("BLUUM_", "TRADING_"))
    assert ws.current_id() is None
    assert ws.current_id("mirror.env", "TRADING_") is None

    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.INCOMPLETE, said(rotated)
    message = said(rotated)
    assert "dashboard" in message, message
    assert "Revoke the old key" in message, message
    assert "rotator resume trading" in message
    # The files were seeded without id lines and the stores add none unasked: the new key is found by its public key.
    new_id = next(str(k["id"]) for k in ws.investor_keys() if k["status"] == "active" and k["id"] != ws.first.info.id)
    assert ws.pair_in().api_key == ws.pair_in("mirror.env", "TRADING_").api_key
    assert new_id not in (foreign.info.id, ws.first.info.id)
    assert ws.works(ws.pair_in())
    assert ws.works(foreign.pair), "we cannot revoke it: it stays active until the operator does"
    assert record(ws)["phase"] == "revoking"

    ws.sim.revoke_key(foreign.info.id)  # the operator, in the dashboard
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert ws.works(ws.pair_in())
    assert new_id in ws.active_ids()
    status = json.loads(ws.run("status", "--json").stdout)
    assert next(r for r in status if r["name"] == "trading")["stage"] == "idle"
    assert record(ws)["phase"] == "completed"
    assert sidecar(ws)["previous"] is None
