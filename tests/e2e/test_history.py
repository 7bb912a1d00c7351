"""The rotation history through the CLI: an emergency (its reason kept after later rotations), a rollback, a crash
and its resume, each leaving its entries; nothing secret in the file or the output."""

from __future__ import annotations

import json
import signal

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said

pytestmark = pytest.mark.slow


def history(ws: Workspace) -> list[dict[str, object]]:
    proc = ws.run("history", "trading", "--json")
    assert proc.returncode == ExitCode.OK, said(proc)
    entries: list[dict[str, object]] = json.loads(proc.stdout)
    return entries


def rotations(entries: list[dict[str, object]]) -> dict[str, list[str]]:
    """Events by rotation token, in order."""
    by_token: dict[str, list[str]] = {}
    for entry in entries:
        by_token.setdefault(str(entry["token"]), []).append(str(entry["event"]))
    return by_token


def test_history_after_an_emergency_a_rollback_and_a_resume(ws: Workspace):
    emergency = ws.run("rotate", "trading", "--emergency", "--reason", "key pasted in ticket 4711")
    assert emergency.returncode == ExitCode.OK, said(emergency)

    ws.write_config(verify_timeout="1s")
    ws.delay_new_keys(3600)
    failed = ws.run("rotate", "trading")
    assert failed.returncode == ExitCode.ROLLED_BACK, said(failed)
    ws.sim.configure(propagation_delay=0)
    ws.write_config()

    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "accepted.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)

    entries = history(ws)
    runs = list(rotations(entries).values())
    assert len(runs) == 3, runs
    first, second, third = runs
    assert first[0] == "started"
    assert first[-1] == "completed"
    assert second[0] == "started"
    assert second[-1] == "rolled_back"
    assert third[0] == "started"
    assert "resumed" in third
    assert third[-1] == "completed"

    started = [e for e in entries if e["event"] == "started"]
    assert started[0]["reason"] == "key pasted in ticket 4711", "an emergency's reason outlives the next rotations"
    assert all("@" in str(e["actor"]) for e in started)
    rolled = next(e for e in entries if e["event"] == "rolled_back")
    assert "verification failed" in str(rolled["reason"])
    steps = [e for e in entries if e["event"] == "step"]
    assert {e["step"] for e in steps} >= {"generate", "accept", "deploy", "confirm", "revoke", "cleanup"}
    assert all(isinstance(e.get("seconds"), float | int) for e in steps)

    text = ws.run("history", "trading")
    assert text.returncode == ExitCode.OK
    assert "reason: key pasted in ticket 4711" in text.stdout
    history_file = ws.root / "rotator-history" / "trading.jsonl"
    ws.guard.check(history_file.read_text(), "history file")
    assert oct(history_file.stat().st_mode & 0o777) == "0o600"


def test_history_of_a_credential_that_never_rotated_and_of_an_unknown_one(ws: Workspace):
    empty = ws.run("history", "tenant")
    assert empty.returncode == ExitCode.OK
    assert "no history yet" in empty.stdout
    unknown = ws.run("history", "tradin")
    assert unknown.returncode == ExitCode.BAD_INPUT
    assert "trading" in said(unknown)
