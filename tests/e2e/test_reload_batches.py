"""Staggered, health-gated reloads end to end: the real CLI against the simulator over HTTP, real dotenv stores, and
applications that are real loopback HTTP endpoints.

`Apps` is one server on 127.0.0.1 standing in for N applications: `POST /reload/N` is application N's reload (it
notes the key id its store file holds at that moment: a restart loads what the file holds), `GET /health/N` its
health endpoint (answers `status[N]`). Applications 1..K read `app.env` (the primary), the rest `mirror.env`; each
has one reload action with `health = { url = ".../health/N" }`, declared in that order. Every request is logged in
order, so a test can see that a batch's health was checked before the next batch reloaded.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.e2e.conftest import Workspace
from tests.e2e.test_reloads import history
from tests.e2e.test_review_scenarios import said

pytestmark = pytest.mark.slow


class Apps:
    """`count` applications on one loopback server; the first `on_app` read app.env, the others mirror.env."""

    def __init__(self, ws: Workspace, count: int, on_app: int) -> None:
        self.status = dict.fromkeys(range(1, count + 1), 200)
        self.fail_first: dict[int, int] = {}
        """Application N answers 503 to its first `fail_first[N]` health checks (it is still starting)."""
        self.log: list[tuple[str, int, str | None]] = []
        apps = self

        def key_of(number: int) -> str | None:
            if number <= on_app:
                return dotenv_values(ws.root / "app.env").get("BLUUM_KEY_ID")
            return dotenv_values(ws.root / "mirror.env").get("TRADING_KEY_ID")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                number = int(self.path.rsplit("/", 1)[1])
                apps.log.append(("reload", number, key_of(number)))
                self._answer(204)

            def do_GET(self) -> None:
                number = int(self.path.rsplit("/", 1)[1])
                apps.log.append(("health", number, None))
                starting = apps.fail_first.get(number, 0)
                if starting:
                    apps.fail_first[number] = starting - 1
                self._answer(503 if starting else apps.status[number])

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        store_actions = {"app": range(1, on_app + 1), "mirror": range(on_app + 1, count + 1)}
        for store, numbers in store_actions.items():
            actions = ", ".join(
                f'{{ url = "{self.base}/reload/{n}", timeout = "5s", health = {{ url = "{self.base}/health/{n}" }} }}'
                for n in numbers
            )
            ws.edit_config(f'path = "{store}.env"\n', f'path = "{store}.env"\nreload = [{actions}]\n')

    def reloads(self, number: int) -> list[str | None]:
        """The key ids application `number` was reloaded into, in order."""
        return [key for kind, n, key in self.log if kind == "reload" and n == number]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def six(ws: Workspace) -> Iterator[Apps]:
    """Six applications, three on each store, reloaded two at a time: batches (1, 2), (3, 4), (5, 6)."""
    apps = Apps(ws, 6, on_app=3)
    ws.edit_config("[credentials.trading]\n", '[credentials.trading]\nreload_batch = 2\nhealth_timeout = "2s"\n')
    yield apps
    apps.close()


def record_of(ws: Workspace) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ws.sidecar_path("app.env").read_text())["record"]
    return data


def test_a_batch_that_fails_its_health_check_stops_the_rollout_and_rolls_back(ws: Workspace, six: Apps):
    six.status[4] = 503  # application 4 does not come back healthy on the new key
    old = ws.first
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    new_id = record_of(ws)["new_key_id"]
    assert new_id
    assert new_id != old.info.id

    for number in (1, 2, 3, 4):  # batches 1 and 2 got the new key, then were reloaded back onto the old one
        assert six.reloads(number) == [new_id, old.info.id], (number, six.log)
    for number in (5, 6):
        assert six.reloads(number) == [], f"application {number} (batch 3) was touched: {six.log}"
    assert ("health", 5, None) not in six.log

    assert ws.current_id() == old.info.id
    assert ws.current_id("mirror.env", "TRADING_") == old.info.id
    assert ws.works(old.pair), "the old key still works at Bluum"
    assert ws.active_ids() == {old.info.id}, "the new key was revoked"
    assert {k["id"]: k["status"] for k in ws.investor_keys()}[new_id] != "active"

    assert "batch 2 of 3 failed its health check" in result.output, result.output
    assert f"mirror: GET {six.base}/health/… answers 200" in result.output, result.output
    assert "HTTP 503 (expected 200)" in result.output, result.output
    assert "the later batches were not reloaded" in result.output
    assert record_of(ws)["phase"] == "rolled_back"
    messages = [str(entry["message"]) for entry in history(ws)]  # the history file passes the leak guard too
    assert any("batch 1 of 3: healthy" in message for message in messages), messages
    assert any("batch 2 of 3 failed its health check" in message for message in messages), messages


def test_a_rollout_whose_batches_all_pass_completes_batch_after_batch(ws: Workspace):
    """Four applications, half of them at a time ("50%"); application 3 answers 503 to its first two checks (it is
    still starting) and passes at the third; the health of a batch is checked before the next one reloads."""
    apps = Apps(ws, 4, on_app=2)
    try:
        rollout = 'reload_batch = "50%"\nhealth_timeout = "20s"\n'
        ws.edit_config("[credentials.trading]\n", f"[credentials.trading]\n{rollout}")
        apps.fail_first[3] = 2
        result = ws.cli("rotate", "trading")
        assert result.exit_code == ExitCode.OK, result.output
        new_id = ws.current_id()
        assert new_id != ws.first.info.id
        assert ws.active_ids() == {new_id}, "the old key is revoked once every batch passed"
        for number in (1, 2, 3, 4):
            assert apps.reloads(number) == [new_id], (number, apps.log)
        kinds = [(kind, n) for kind, n, _ in apps.log]
        last_check_of_batch_1 = max(kinds.index(("health", 1)), kinds.index(("health", 2)))
        assert last_check_of_batch_1 < kinds.index(("reload", 3)), kinds
        assert kinds.count(("health", 3)) == 3, "a check that fails at first is asked again until it passes"
        assert "batch 1 of 2: healthy" in result.output
        assert "batch 2 of 2: healthy" in result.output
    finally:
        apps.close()


def test_a_crash_between_batches_resumes_at_the_next_batch(ws: Workspace, six: Apps):
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "batch_passed.record"})
    assert crashed.returncode == -9, said(crashed)
    new_id = ws.current_id()
    assert [six.reloads(n) for n in range(1, 7)] == [[new_id], [new_id], [], [], [], []], six.log

    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert [six.reloads(n) for n in range(1, 7)] == [[new_id]] * 6, "batch 1 was not reloaded again"
    assert [n for kind, n, _ in six.log if kind == "health"] == [1, 2, 3, 4, 5, 6], "nor checked again"
    assert "batch 1 of 3: passed its health checks for this key already" in resumed.stdout + resumed.stderr
    assert ws.active_ids() == {new_id}


CHECK = """\
import sys
from pathlib import Path

sys.exit(0 if Path("healthy").exists() else 1)
"""


def test_a_command_health_check_must_exit_0(ws: Workspace):
    """One application, its health a command (a script that exits 0 once `healthy` exists): absent, the rollout fails
    within health_timeout and rolls back; present, the rotation completes."""
    apps = Apps(ws, 1, on_app=1)
    try:
        (ws.root / "check.py").write_text(CHECK)
        command = json.dumps([sys.executable, "check.py"])
        ws.edit_config(f'health = {{ url = "{apps.base}/health/1" }}', f"health = {{ command = {command} }}")
        ws.edit_config("[credentials.trading]\n", '[credentials.trading]\nhealth_timeout = "1s"\n')
        failed = ws.cli("rotate", "trading")
        assert failed.exit_code == ExitCode.ROLLED_BACK, failed.output
        assert "batch 1 of 1 failed its health check" in failed.output
        assert "exits 0 was not seen within health_timeout 1s" in failed.output, failed.output
        assert "last: exit 1" in failed.output
        assert ws.active_ids() == {ws.first.info.id}
        assert len(apps.reloads(1)) == 2, "reloaded, then reloaded back"

        (ws.root / "healthy").write_text("")
        done = ws.cli("rotate", "trading")
        assert done.exit_code == ExitCode.OK, done.output
        assert ws.active_ids() == {ws.current_id()}
    finally:
        apps.close()


def test_the_dry_run_plan_names_the_batches_and_their_checks(ws: Workspace, six: Apps):
    before = ws.snapshot()
    plan = ws.cli("rotate", "trading", "--dry-run")
    assert plan.exit_code == ExitCode.OK, plan.output
    assert "run the reload actions in batches, 2 at a time" in plan.output, plan.output
    assert f"(health: GET {six.base}/health/… answers 200)" in plan.output
    assert "must pass within 2s before the next batch reloads" in plan.output
    assert six.log == [], "a dry run reloads and checks nothing"
    assert ws.snapshot() == before


def test_an_emergency_reloads_everything_at_once_and_does_not_roll_back_to_the_leaked_key(ws: Workspace, six: Apps):
    six.status[4] = 503
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key pasted in a ticket")
    assert result.exit_code == ExitCode.OK, result.output
    new_id = ws.current_id()
    assert [six.reloads(n) for n in range(1, 7)] == [[new_id]] * 6
    assert [kind for kind, _, _ in six.log] == ["reload"] * 6, "no health check holds the leaked key alive"
    assert "an emergency reloads every action at once, without health checks" in result.output
    assert ws.active_ids() == {new_id}, "the leaked key is revoked"


FAILING_ROLLOUT_POINTS = (
    "reload.app",  # each reload action of batches 1 and 2, and again on the way back
    "batch_passed.record",
    "reload.mirror",
    "rolling_back.record",
    "restore.app",
    "restore.mirror",
    "revoke_new.bluum",
)
"""Fault points a rollout whose batch 2 fails passes, from batch 1 to the new key's revoke (test_the_points_are_real);
the last one, rolled_back.record, ends the rotation: nothing is left to resume."""


def test_the_points_are_real(ws: Workspace, six: Apps):
    from rotator.core.faultpoints import TRACE_ENV

    six.status[4] = 503
    trace_file = ws.root / "rollout.trace"
    result = ws.run("rotate", "trading", env={TRACE_ENV: str(trace_file)})
    assert result.returncode == ExitCode.ROLLED_BACK, said(result)
    passed = trace_file.read_text().split()
    assert set(FAILING_ROLLOUT_POINTS) <= set(passed), passed
    assert passed.count("batch_passed.record") == 1, "batch 1 is recorded; batch 2 failed, batch 3 never ran"


@pytest.mark.parametrize("point", FAILING_ROLLOUT_POINTS)
def test_a_crash_anywhere_in_a_failing_rollout_is_finished_by_resume(ws: Workspace, six: Apps, point: str):
    """Killed at `point` (its first pass), then resumed: the rotation ends rolled back, every application that got
    the new key holds the old one again, batch 3 was never touched, the old key works and the new one is revoked."""
    six.status[4] = 503
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
    assert crashed.returncode == -9, said(crashed)
    new_id = record_of(ws)["new_key_id"]
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.ROLLED_BACK, said(resumed)
    old = ws.first
    for number in (1, 2, 3, 4):
        reloads = six.reloads(number)
        assert reloads, (point, number, six.log)
        assert reloads[-1] == old.info.id, f"application {number} was left on {reloads[-1]} ({point})"
    assert six.reloads(5) == six.reloads(6) == [], f"batch 3 was touched ({point}): {six.log}"
    assert ws.active_ids() == {old.info.id}
    assert new_id not in ws.active_ids()
    assert ws.works(old.pair)


def test_without_batches_or_checks_the_rotation_writes_what_it_always_wrote(ws: Workspace):
    """One reload action, no reload_batch, no health: the same fault points (record writes, store writes, Bluum
    calls) as before staggered reloads existed, and no health request."""
    from rotator.core.faultpoints import TRACE_ENV
    from tests.fault_points import FORWARD_POINTS

    apps = Apps(ws, 1, on_app=1)
    try:
        ws.edit_config(f', health = {{ url = "{apps.base}/health/1" }}', "")
        trace_file = ws.root / "plain.trace"
        result = ws.run("rotate", "trading", env={TRACE_ENV: str(trace_file)})
        assert result.returncode == ExitCode.OK, said(result)
        deployed = FORWARD_POINTS.index("deployed.record") + 1
        expected = [*FORWARD_POINTS[:deployed], "reload.app", "reloaded.record", *FORWARD_POINTS[deployed:]]
        assert trace_file.read_text().split() == expected
        assert [kind for kind, _, _ in apps.log] == ["reload"]
    finally:
        apps.close()
