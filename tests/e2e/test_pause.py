"""`rotator pause` / `unpause` through the real CLI against the simulator, with env stores (issue 20).

The pause lives in the credential's ledger (the primary store's sidecar here): run-due skips a paused due credential,
rotates it after `unpause` or once `--until` passed, finishes an unfinished rotation whatever the pause, and a person's
`rotate` goes on and says it is paused. Bad input exits 2 and changes nothing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_cli_rotation import assert_rotated
from tests.e2e.test_review_scenarios import said, sidecar


def due_now(ws: Workspace) -> None:
    """trading's key was seeded by hand: with seeded_key_age "due" the first tick rotates it."""
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\nseeded_key_age = "due"')


def status_of(ws: Workspace, name: str = "trading") -> dict[str, object]:
    rows = json.loads(ws.run("status", "--json").stdout)
    row: dict[str, object] = next(r for r in rows if r["name"] == name)
    return row


def history_events(ws: Workspace, name: str = "trading") -> list[str]:
    return [entry["event"] for entry in json.loads(ws.run("history", name, "--json").stdout)]


def test_run_due_skips_a_paused_due_credential_and_rotates_it_after_unpause(ws: Workspace):
    due_now(ws)
    paused = ws.run("pause", "trading", "--reason", "quarter-end freeze")
    assert paused.returncode == ExitCode.OK, said(paused)
    assert "trading: paused by" in paused.stdout
    assert "quarter-end freeze" in paused.stdout
    assert sidecar(ws)["record"]["pause"]["reason"] == "quarter-end freeze"  # in the ledger, not the runner's disk

    tick = ws.run("run-due")
    assert tick.returncode == ExitCode.OK, said(tick)
    assert "trading: due, but not started: paused by" in tick.stdout, said(tick)
    assert ws.current_id() == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}

    row = status_of(ws)
    assert row["paused"] is True
    assert row["pause_reason"] == "quarter-end freeze"
    assert row["paused_until"] is None
    assert "@" in str(row["paused_by"])
    assert "paused by" in str(row["waiting"])
    table = ws.run("status").stdout
    assert "PAUSED" in table.splitlines()[0]
    assert "until unpause" in table

    lifted = ws.run("unpause", "trading")
    assert lifted.returncode == ExitCode.OK, said(lifted)
    assert "trading: unpaused" in lifted.stdout
    assert status_of(ws)["paused"] is False
    again = ws.run("run-due")
    assert again.returncode == ExitCode.OK, said(again)
    assert_rotated(ws)
    events = history_events(ws)
    assert events[:2] == ["paused", "unpaused"], events
    assert "completed" in events


def test_a_pause_until_a_time_ends_by_itself(ws: Workspace):
    due_now(ws)
    assert ws.run("pause", "trading", "--reason", "partner migration", "--until", "5s").returncode == ExitCode.OK
    ends = status_of(ws)["paused_until"]
    assert isinstance(ends, str)
    assert ends.endswith("Z")
    tick = ws.cli("run-due")
    assert "trading: due, but not started" in tick.output, tick.output
    assert ws.current_id() == ws.first.info.id
    end = datetime.fromisoformat(ends.replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, end + 1 - time.time()))  # shown to the second; the `--until` written a few seconds ahead passes
    assert status_of(ws)["paused"] is False
    after = ws.run("run-due")
    assert after.returncode == ExitCode.OK, said(after)
    assert_rotated(ws)


def test_pause_refuses_bad_input_with_exit_2_and_changes_nothing(ws: Workspace):
    before = ws.snapshot()
    for args in (
        ("pause", "trading"),
        ("pause", "trading", "--reason", "   "),
        ("pause", "trading", "--reason", "freeze", "--until", "2020-01-01T00:00:00Z"),
        ("pause", "trading", "--reason", "freeze", "--until", "next tuesday"),
        ("pause", "nosuch", "--reason", "freeze"),
    ):
        proc = ws.run(*args)
        assert proc.returncode == ExitCode.BAD_INPUT, (args, said(proc))
        assert "Traceback" not in proc.stderr
    assert ws.snapshot() == before
    assert "not in the future" in said(ws.run("pause", "trading", "--reason", "x", "--until", "2020-01-01T00:00:00Z"))


def test_a_persons_rotate_of_a_paused_credential_goes_on_and_says_so(ws: Workspace):
    assert ws.run("pause", "trading", "--reason", "freeze").returncode == ExitCode.OK
    done = ws.run("rotate", "trading")
    assert done.returncode == ExitCode.OK, said(done)
    assert "trading is paused by" in done.stdout
    assert "goes on" in done.stdout
    assert_rotated(ws)
    assert status_of(ws)["paused"] is True  # the rotation's record writes kept the pause


def test_a_rotation_under_way_is_finished_by_run_due_while_paused(ws: Workspace):
    """A pause stops new starts only: the old key waiting out its grace window is still revoked by the tick."""
    ws.write_config(grace="1s")
    assert ws.cli("rotate", "trading").exit_code == 0
    assert len(ws.active_ids()) == 2
    paused = ws.run("pause", "trading", "--reason", "freeze")
    assert "is still finished" in paused.stdout, said(paused)
    time.sleep(1.1)
    tick = ws.run("run-due")
    assert "trading: rotation complete" in tick.stdout, said(tick)
    assert_rotated(ws)
    assert status_of(ws)["paused"] is True


def test_an_emergency_rotation_of_a_paused_credential_goes_on(ws: Workspace):
    assert ws.run("pause", "trading", "--reason", "freeze", "--until", "2h").returncode == ExitCode.OK
    done = ws.run("rotate", "trading", "--emergency", "--reason", "key pasted in a ticket")
    assert done.returncode == ExitCode.OK, said(done)
    assert "an emergency rotation goes on" in done.stdout
    assert_rotated(ws)
