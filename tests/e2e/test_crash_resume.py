"""Crash safety: `rotator rotate` SIGKILLed at every step boundary, then `rotator resume` on a fresh process.

A first run with ROTATOR_TEST_TRACE_FILE learns every fault point the rotation passes (so a new step
cannot escape this test); then each point gets its own run killed exactly there. After each crash and
after resume, the invariants are checked against the simulator and the files:
  I1 the current key of every store is active at Bluum;
  I2 the old key is revoked only once the new one is current everywhere and verified;
  I3 no active key at Bluum that no store knows (sweep finds no orphan);
  I4 at most two active keys for the credential.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV, TRACE_ENV
from tests.e2e.conftest import Workspace
from tests.fault_points import FORWARD_POINTS, ROLLBACK_POINTS

pytestmark = pytest.mark.slow

FORWARD_KINDS = set(FORWARD_POINTS)
ROLLBACK_KINDS = set(ROLLBACK_POINTS)


def trace(ws: Workspace, tmp_path: Path, name: str) -> list[str]:
    trace_file = tmp_path / f"{name}.trace"
    result = ws.run("rotate", "trading", env={TRACE_ENV: str(trace_file)})
    assert result.returncode in (0, 1), result.stderr
    return trace_file.read_text().split()


def check_invariants(ws: Workspace, *, after_resume: bool) -> None:
    active = ws.active_ids()
    current_app, current_mirror = ws.current_id(), ws.current_id("mirror.env", "TRADING_")
    assert current_app in active, "I1: app.env holds a key Bluum does not consider active"
    assert current_mirror in active, "I1: mirror.env holds a key Bluum does not consider active"
    assert len(active) <= 2, f"I4: {len(active)} active keys"
    if ws.first.info.id not in active:
        # I2: the old key is gone only if its successor is current everywhere.
        assert current_app == current_mirror != ws.first.info.id
    if after_resume:
        assert active == {current_app}, "after resume exactly the current key is active"
        assert current_app == current_mirror
        sweep = ws.run("sweep", "--json")
        assert sweep.returncode == 0, sweep.stderr
        assert [f for f in json.loads(sweep.stdout) if f["kind"] in ("orphan", "in-flight")] == [], "I3: orphan"


def fresh(ws: Workspace) -> None:
    """Reset the world between crash runs: same files as at the start, no record, the first key active."""
    for name in ("app.env", "mirror.env"):
        ws.sidecar_path(name).unlink(missing_ok=True)


@pytest.mark.timeout(600)  # a chain of dozens of CLI runs: 40 s on a quiet machine, minutes on a loaded one
def test_forward_path_every_boundary(ws: Workspace, tmp_path: Path):
    points = trace(ws, tmp_path, "forward")
    assert set(points) == FORWARD_KINDS, f"trace differs from the declared boundaries: {points}"
    ws.first = _restart_from_first(ws)  # the traced run rotated for real: start each crash from its result
    originals = {name: (ws.root / name).read_bytes() for name in ("app.env", "mirror.env")}

    for point in points:
        # a fresh credential state: the first key current again and the only active one
        for key in ws.investor_keys():
            if key["status"] == "active" and key["id"] != ws.first.info.id:
                ws.sim.revoke_key(str(key["id"]))
        assert ws.active_ids() == {ws.first.info.id}
        fresh(ws)
        for name, data in originals.items():
            (ws.root / name).write_bytes(data)

        crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
        assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {crashed.stderr}"
        check_invariants(ws, after_resume=False)

        resumed = ws.run("resume", "trading")
        assert resumed.returncode == ExitCode.OK, f"{point}: {resumed.stdout} {resumed.stderr}"
        check_invariants(ws, after_resume=True)
        status = json.loads(ws.run("status", "--json").stdout)
        assert next(r for r in status if r["name"] == "trading")["stage"] == "idle", point
        assert ws.current_id() != ws.first.info.id, f"{point}: resume did not finish the rotation"
        # leave the world as it started for the next point: the first key must be active again.
        ws.first = _restart_from_first(ws)
        originals = {name: (ws.root / name).read_bytes() for name in ("app.env", "mirror.env")}


def _restart_from_first(ws: Workspace):
    """After a completed rotation the first key is revoked; make the new current key the next 'first'."""
    from rotator.core.model import CreatedKey

    pair = ws.pair_in()
    info = next(k for k in ws.investor_keys() if k["id"] == pair.key_id)
    return CreatedKey(info=_info(info), pair=pair)


def _info(raw: dict[str, object]):
    from rotator.core.model import ApiKeyInfo, Environment

    return ApiKeyInfo(
        id=str(raw["id"]),
        status=str(raw["status"]),
        environment=Environment.SANDBOX,
        name=str(raw.get("name", "")),
        public_key=str(raw.get("public_key", "")),
        created=None,
    )


@pytest.mark.timeout(600)  # a chain of dozens of CLI runs: 40 s on a quiet machine, minutes on a loaded one
def test_rollback_path_every_boundary(ws: Workspace, tmp_path: Path):
    ws.write_config(verify_timeout="1s")
    ws.delay_new_keys(3600)
    points = trace(ws, tmp_path, "rollback")
    assert set(points) >= ROLLBACK_KINDS, points
    rollback_points = points[points.index("rolling_back.record") :]
    assert set(rollback_points) == ROLLBACK_KINDS
    originals = {name: (ws.root / name).read_bytes() for name in ("app.env", "mirror.env")}

    for point in rollback_points:
        fresh(ws)
        for name, data in originals.items():
            (ws.root / name).write_bytes(data)
        crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
        assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {crashed.stderr}"
        check_invariants(ws, after_resume=False)
        assert ws.first.info.id in ws.active_ids(), f"{point}: a failed rotation revoked the old key"

        resumed = ws.run("resume", "trading")
        assert resumed.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), f"{point}: {resumed.stderr}"
        assert ws.current_id() == ws.first.info.id
        assert ws.current_id("mirror.env", "TRADING_") == ws.first.info.id
        check_invariants(ws, after_resume=True)
