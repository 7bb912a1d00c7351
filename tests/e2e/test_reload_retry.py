"""A failed reload is retried with backoff, and only the actions that have not yet succeeded for the rotation's key.

The real CLI (`rotator rotate`, `run-due`: the scheduler's tick, `resume`, `status`) against the simulator over HTTP
and real dotenv stores. The credential `trading` has two reload actions: a healthy application (a loopback HTTP
endpoint that counts its calls: each call is a restart) on its primary store `app`, and a command that fails (a
Python script, `reload.mode` beside it says `fail` or `ok`) on `mirror`. Before this change every tick re-ran both
while the second failed, restarting the healthy application each time.

Time passes by moving the recorded failure back (`age_failure`): the retry's schedule is counted from it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_reloads import SCRIPT, ReloadEndpoint, reload_runs, set_mode

pytestmark = pytest.mark.slow

TICKS = 5


@pytest.fixture
def healthy(ws: Workspace) -> Iterator[ReloadEndpoint]:
    """The healthy application on `app`, the failing script on `mirror`."""
    server = ReloadEndpoint(ws.root / "app.env")
    (ws.root / "reload_app.py").write_text(SCRIPT)
    set_mode(ws, "fail")
    command = json.dumps([sys.executable, "reload_app.py"])
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ url = "{server.url}", timeout = "5s" }}]\n')
    ws.edit_config(
        'path = "mirror.env"\n',
        f'path = "mirror.env"\nreload = [{{ command = {command}, timeout = "20s" }}]\n',
    )
    yield server
    server.close()


def record_of(ws: Workspace) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ws.sidecar_path("app.env").read_text())["record"]
    return data


def age_failure(ws: Workspace, seconds: float) -> None:
    """Move the last reload failure `seconds` into the past, as if that much time had passed since."""
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    data["record"]["reload_failed_at"] -= seconds
    path.write_text(json.dumps(data))


def waiting(ws: Workspace) -> str:
    rows = {row["name"]: row for row in json.loads(ws.cli("status", "--json").stdout)}
    return str(rows["trading"]["waiting"])


def failed_rotation(ws: Workspace, healthy: ReloadEndpoint) -> str:
    """Rotate: the healthy application is told once, the script fails; the new key's id."""
    failed = ws.cli("rotate", "trading")
    assert failed.exit_code == ExitCode.INCOMPLETE, failed.output
    assert "reload 2 of 2 (mirror: " in failed.output
    new_id = ws.current_id()
    assert new_id is not None
    assert len(healthy.calls) == 1
    assert len(reload_runs(ws)) == 1
    return new_id


def test_ticks_do_not_restart_the_healthy_application_while_another_reload_fails(
    ws: Workspace, healthy: ReloadEndpoint
):
    new_id = failed_rotation(ws, healthy)
    ticks = [ws.cli("run-due") for _ in range(TICKS)]
    assert len(healthy.calls) == 1, f"the healthy application was restarted {len(healthy.calls)} times in {TICKS} ticks"
    for tick in ticks:
        assert tick.exit_code == ExitCode.INCOMPLETE, tick.output
        assert "next retry at " in tick.output, tick.output
    assert len(reload_runs(ws)) == 1, "and the failing one is not retried before its backoff"
    assert ws.active_ids() == {ws.first.info.id, new_id}, "nothing was revoked"
    shown = waiting(ws)
    assert "next retry at " in shown, shown
    assert record_of(ws)["reload_failures"] == 1

    # The backoff passed: the tick retries the failed action only; it fails again, and the next wait is longer.
    age_failure(ws, 6 * 60)
    tick = ws.cli("run-due")
    assert tick.exit_code == ExitCode.INCOMPLETE, tick.output
    assert len(reload_runs(ws)) == 2
    assert len(healthy.calls) == 1, "the action that succeeded for this key is not run again"
    assert record_of(ws)["reload_failures"] == 2
    age_failure(ws, 6 * 60)
    assert ws.cli("run-due").exit_code == ExitCode.INCOMPLETE
    assert len(reload_runs(ws)) == 2, "5 minutes after the second failure is not yet its 10-minute backoff"

    # Fixed: once its backoff passed, a tick runs the failed action and finishes the rotation.
    set_mode(ws, "ok")
    age_failure(ws, 5 * 60)
    done = ws.cli("run-due")
    assert done.exit_code == ExitCode.OK, done.output
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id, new_id, new_id]
    assert [call[2] for call in healthy.calls] == [new_id], (
        "the healthy application was restarted once, for the new key"
    )
    assert ws.active_ids() == {new_id}


def test_a_person_resumes_at_once_and_only_the_failed_action_runs_again(ws: Workspace, healthy: ReloadEndpoint):
    new_id = failed_rotation(ws, healthy)
    set_mode(ws, "ok")
    resumed = ws.cli("resume", "trading")
    assert resumed.exit_code == ExitCode.OK, resumed.output
    assert len(healthy.calls) == 1, "the healthy application is not restarted again"
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id, new_id], "the failed one runs at once"
    assert "reload 1 of 2 (app: " in resumed.output
    assert "already succeeded for this key; not run again" in resumed.output
    assert ws.active_ids() == {new_id}


SHARED_SCRIPT = """\
import json, os
from pathlib import Path

from dotenv import dotenv_values

here = Path.cwd()
held = {name: dotenv_values(here / name).get("BLUUM_KEY_ID") for name in ("app.env", "reports.env")}
with open(here / "shared.jsonl", "a") as log:
    log.write(json.dumps({"held": held, "for": os.environ["ROTATOR_CREDENTIAL"]}) + "\\n")
"""


def test_one_tick_reloads_an_application_shared_by_two_credentials_once_after_both_were_promoted(ws: Workspace):
    """`trading` (store app) and `reports` (store reports) are read by one application: both stores name the same
    reload command. One tick rotates both and runs it once, when both files hold their new keys."""
    from tests.e2e.test_fleet_cli import add_investor_credential

    _, reports_first = add_investor_credential(ws, "reports")
    (ws.root / "shared_reload.py").write_text(SHARED_SCRIPT)
    reload = f'reload = [{{ command = {json.dumps([sys.executable, "shared_reload.py"])}, timeout = "20s" }}]\n'
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\n{reload}')
    ws.edit_config('path = "reports.env"\n', f'path = "reports.env"\n{reload}')
    for name in ("trading", "reports"):  # keys seeded by hand, of unknown age: the first tick rotates them
        ws.edit_config(f"[credentials.{name}]\n", f'[credentials.{name}]\nseeded_key_age = "due"\n')

    tick = ws.cli("run-due")
    new_trading, new_reports = ws.current_id(), ws.current_id("reports.env")
    assert new_trading != ws.first.info.id, tick.output
    assert new_reports != reports_first, tick.output
    runs = [json.loads(line) for line in (ws.root / "shared.jsonl").read_text().splitlines()]
    assert len(runs) == 1, f"the shared reload ran {len(runs)} times in one tick: {runs}"
    assert runs[0]["held"] == {"app.env": new_trading, "reports.env": new_reports}, "after both were promoted"
    assert "trading: rotation complete" in tick.output, tick.output
    assert "reports: rotation complete" in tick.output, tick.output
    assert ws.active_ids() == {new_trading}, "each old key is revoked (grace 0s)"

    history = [
        entry for name in ("trading", "reports") for entry in json.loads(ws.cli("history", name, "--json").stdout)
    ]
    stood_in = [entry for entry in history if "not run again: it ran for " in str(entry["message"])]
    assert len(stood_in) == 1, "the other credential's history says whose run reloaded its key"
    resumed = [entry for entry in history if entry["event"] == "resumed"]
    assert resumed == [], "the tick's second pass is not a resume a person should hear of"


def test_the_daemon_restarts_the_healthy_application_once_over_many_ticks(ws: Workspace, healthy: ReloadEndpoint):
    """The real daemon, ticking every second: the first tick rotates (the second reload fails), the next ones wait
    out the backoff. Before this change each tick ran both actions again."""
    from tests.e2e.test_daemon import TICK, DaemonProcess

    ws.edit_config("[credentials.trading]\n", '[credentials.trading]\nseeded_key_age = "due"\n')
    daemon = DaemonProcess(ws, *TICK)
    daemon.wait_for(rf"tick {TICKS + 1}: done")
    assert daemon.stop() == 0
    assert len(healthy.calls) == 1, f"the healthy application was restarted {len(healthy.calls)} times"
    assert len(reload_runs(ws)) == 1, "the failed action waits out its backoff"
    assert "next retry at " in waiting(ws)
    assert ws.active_ids() == {ws.first.info.id, ws.current_id()}, "nothing was revoked"


def test_a_rollback_whose_reload_fails_is_retried_with_backoff_and_only_the_failed_action_again(
    ws: Workspace, healthy: ReloadEndpoint
):
    """The rollback reloads the old key back; the script fails there too. The ticks wait out the backoff instead of
    restoring and reloading everything again; the retry runs only the script, then the new key is revoked."""
    new_id = failed_rotation(ws, healthy)
    stuck = ws.cli("rollback", "trading")
    assert stuck.exit_code == ExitCode.INCOMPLETE, stuck.output
    old_id = ws.first.info.id
    assert [call[2] for call in healthy.calls] == [new_id, old_id], "the healthy application took the old key back"
    assert ws.active_ids() == {old_id, new_id}, "the new key lives while the script's application may hold it"

    ticks = [ws.cli("run-due") for _ in range(TICKS)]
    assert len(healthy.calls) == 2, f"the healthy application was restarted {len(healthy.calls) - 2} more times"
    assert len(reload_runs(ws)) == 2, "the failed action waits out its backoff"
    for tick in ticks:
        assert tick.exit_code == ExitCode.INCOMPLETE, tick.output
    assert "next retry at " in waiting(ws)

    set_mode(ws, "ok")
    age_failure(ws, 6 * 60)
    done = ws.cli("run-due")
    assert done.exit_code == ExitCode.ROLLED_BACK, done.output
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id, old_id, old_id]
    assert len(healthy.calls) == 2, "the action that succeeded for the old key is not run again"
    assert ws.active_ids() == {old_id}


def test_a_crash_after_a_retried_rollback_reload_worked_is_finished_by_resume(ws: Workspace, healthy: ReloadEndpoint):
    from rotator.core.faultpoints import CRASH_ENV
    from tests.e2e.test_review_scenarios import said

    new_id = failed_rotation(ws, healthy)
    assert ws.cli("rollback", "trading").exit_code == ExitCode.INCOMPLETE
    set_mode(ws, "ok")
    crashed = ws.run("resume", "trading", env={CRASH_ENV: "reloaded_back.record"})
    assert crashed.returncode == -9, said(crashed)
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.ROLLED_BACK, said(resumed)
    assert ws.active_ids() == {ws.first.info.id}
    assert new_id not in ws.active_ids()
    assert len(healthy.calls) == 2, "the healthy application took the old key back once"
