"""Consumer reloads end to end: the CLI against the simulator over HTTP, real dotenv stores, and real reload actions
(a Python script run with this interpreter, and an HTTP endpoint on 127.0.0.1).

The script stands in for an application that holds its key in memory: each run appends, to `reloads.jsonl`, which
key the dotenv file holds at that moment (it must be the new one), the environment it was given, and where it ran.
What it does is set by `reload.mode` beside it, so "fix the reload" is one file write: `ok`, `fail` (exit 1 with a
message), `hang` (starts a child, then sleeps past its timeout), `leak-fail` / `leak-ok` (print the secret it read,
then exit 1 / 0).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said, sidecar

SCRIPT = """\
import json, os, subprocess, sys, time
from pathlib import Path

from dotenv import dotenv_values

here = Path.cwd()
values = dotenv_values(here / "app.env")
mode = (here / "reload.mode").read_text().strip()
entry = {"key_id": values.get("BLUUM_KEY_ID"), "env": dict(os.environ), "cwd": str(here), "mode": mode}
with open(here / "reloads.jsonl", "a") as log:
    log.write(json.dumps(entry) + "\\n")
if mode == "fail":
    print("reloading trading...")
    print("Failed to reload trading.service: Unit trading.service not found.", file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (here / "hung.pids").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(120)
if mode.startswith("leak"):
    secret = values["BLUUM_API_SECRET"]
    print(f"loaded secret {secret}")
    print(f"secret={secret}", file=sys.stderr)
    sys.exit(1 if mode == "leak-fail" else 0)
"""


def use_script(ws: Workspace, mode: str = "ok", timeout: str = "20s") -> None:
    """Give the `app` store a reload action running the script (by a path relative to rotator.toml's folder)."""
    (ws.root / "reload_app.py").write_text(SCRIPT)
    set_mode(ws, mode)
    command = json.dumps([sys.executable, "reload_app.py"])
    ws.edit_config(
        'path = "app.env"\n', f'path = "app.env"\nreload = [{{ command = {command}, timeout = "{timeout}" }}]\n'
    )


def set_mode(ws: Workspace, mode: str) -> None:
    (ws.root / "reload.mode").write_text(mode)


def reload_runs(ws: Workspace) -> list[dict[str, Any]]:
    path = ws.root / "reloads.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def history(ws: Workspace) -> list[dict[str, Any]]:
    result = ws.cli("history", "trading", "--json")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    ws.guard.check((ws.root / "rotator-history" / "trading.jsonl").read_text(), "history file")
    return entries


def steps_of_last_rotation(entries: list[dict[str, Any]]) -> list[str]:
    token = entries[-1]["token"]
    return [str(entry["step"]) for entry in entries if entry["token"] == token]


def waiting_on(ws: Workspace) -> str:
    rows = {row["name"]: row for row in json.loads(ws.cli("status", "--json").stdout)}
    return str(rows["trading"]["waiting"])


def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_reload_runs_once_the_new_key_is_current_and_before_the_old_one_is_revoked(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
):
    use_script(ws)
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-for-reload-commands")
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    new_id = ws.current_id()
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {new_id}, "the rotation completed: the old key is revoked"

    (run,) = reload_runs(ws)
    assert run["key_id"] == new_id, "the application was reloaded once the file held the new key"
    assert run["cwd"] == str(ws.root), "commands run in rotator.toml's folder"
    env = run["env"]
    assert "VAULT_TOKEN" not in env, "the rotator's own environment is not handed to reload commands"
    assert {k: env[k] for k in env if k.startswith("ROTATOR_")} == {
        "ROTATOR_CREDENTIAL": "trading",
        "ROTATOR_STORE": "app",
        "ROTATOR_KEY_ID": new_id,
        "ROTATOR_ROTATION": env["ROTATOR_ROTATION"],
        "ROTATOR_RELOAD_FOR": "rotation",
    }
    assert set(env) - {"PATH", "HOME", "LANG", "LC_ALL", "TZ"} <= {k for k in env if k.startswith("ROTATOR_")}
    assert "reload 1 of 1 (app: " in result.output

    steps = steps_of_last_rotation(history(ws))
    assert steps.index("deploy") < steps.index("reload") < steps.index("confirm") < steps.index("revoke"), steps


def test_a_failed_reload_keeps_the_old_key_alive_until_resume_reloads_and_finishes(ws: Workspace):
    use_script(ws, mode="fail")
    failed = ws.cli("rotate", "trading")
    assert failed.exit_code == ExitCode.INCOMPLETE, failed.output
    new_id = ws.current_id()
    message = failed.output
    assert f"reload 1 of 1 (app: {sys.executable} reload_app.py) failed: exit 1" in message
    assert 'it said "Failed to reload trading.service: Unit trading.service not found."' in message
    assert "nothing was revoked" in message
    assert "`rotator resume trading`" in message
    assert "`rotator rollback trading`" in message

    assert ws.active_ids() == {ws.first.info.id, new_id}, "the old key is still active at Bluum"
    assert sidecar(ws)["previous"]["key_id"] == ws.first.info.id, "and still PREVIOUS"
    assert ws.works(ws.first.pair)
    waiting = waiting_on(ws)
    assert "reload 1 of 1" in waiting
    assert "failed: exit 1" in waiting
    assert "`rotator resume trading`" in waiting

    set_mode(ws, "ok")
    resumed = ws.cli("resume", "trading")
    assert resumed.exit_code == ExitCode.OK, resumed.output
    assert ws.active_ids() == {new_id}
    assert not ws.works(ws.first.pair)
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id, new_id]
    assert waiting_on(ws) == "nothing"

    entries = history(ws)
    stopped = [entry for entry in entries if entry["event"] == "stopped"]
    assert len(stopped) == 1
    assert "reload 1 of 1" in stopped[0]["message"]
    assert "failed: exit 1" in stopped[0]["message"]
    assert entries[-1]["event"] == "completed"


def test_a_reload_that_hangs_is_killed_at_its_timeout_and_a_rollback_reloads_the_old_key(ws: Workspace):
    """The hung reload is killed, children too; the rollback reloads before it revokes the new key, and a rollback
    whose reload fails leaves the new key alive until `resume` reloads and finishes it."""
    use_script(ws, mode="hang", timeout="1s")
    hung = ws.cli("rotate", "trading")
    assert hung.exit_code == ExitCode.INCOMPLETE, hung.output
    assert "failed: killed after its 1s timeout" in hung.output
    new_id = ws.current_id()
    script_pid, child_pid = (int(pid) for pid in (ws.root / "hung.pids").read_text().split())
    assert gone(script_pid)
    assert gone(child_pid), "the command's children are killed with it"
    assert ws.active_ids() == {ws.first.info.id, new_id}
    assert "killed after its 1s timeout" in waiting_on(ws)

    set_mode(ws, "fail")
    stuck = ws.cli("rollback", "trading")
    assert stuck.exit_code == ExitCode.INCOMPLETE, stuck.output
    assert f"so the new key {new_id} was NOT revoked" in stuck.output
    assert ws.current_id() == ws.first.info.id, "the old key is back in the file"
    assert ws.active_ids() == {ws.first.info.id, new_id}, "but the new key lives while an application may hold it"
    assert "rolling back: reload 1 of 1" in waiting_on(ws)

    set_mode(ws, "ok")
    rolled = ws.cli("resume", "trading")
    assert rolled.exit_code == ExitCode.ROLLED_BACK, rolled.output
    assert ws.current_id() == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}, "the new key is revoked once applications were told the old one"
    last = reload_runs(ws)[-1]
    assert last["key_id"] == ws.first.info.id, "the reload after the rollback saw the old key back in the file"
    assert last["env"]["ROTATOR_RELOAD_FOR"] == "rollback"
    assert last["env"]["ROTATOR_KEY_ID"] == ws.first.info.id
    messages = [str(entry["message"]) for entry in history(ws)]
    reload_back = max(i for i, text in enumerate(messages) if text.startswith("reload 1 of 1") and "exit 0" in text)
    revoke_new = next(i for i, text in enumerate(messages) if "(the new key of a rolled-back rotation)" in text)
    assert reload_back < revoke_new, messages


class ReloadEndpoint:
    """A reload endpoint on 127.0.0.1: answers `status`, and notes each call and the key id the file held then."""

    def __init__(self, app_env: Path) -> None:
        self.status = 204
        self.calls: list[tuple[str, str, str | None]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint.calls.append((self.command, self.path, dotenv_values(app_env).get("BLUUM_KEY_ID")))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/-/reload"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(ws: Workspace) -> Iterator[ReloadEndpoint]:
    server = ReloadEndpoint(ws.root / "app.env")
    yield server
    server.close()


def test_an_http_reload_must_answer_2xx(ws: Workspace, endpoint: ReloadEndpoint):
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ url = "{endpoint.url}", timeout = "5s" }}]\n')
    endpoint.status = 503
    failed = ws.cli("rotate", "trading")
    assert failed.exit_code == ExitCode.INCOMPLETE, failed.output
    # Named by its host and first path segment: a deploy hook's token may be in the rest of the path.
    shown = endpoint.url.removesuffix("/reload") + "/…"
    assert f"(app: POST {shown}) failed: HTTP 503 (expected 2xx)" in failed.output
    new_id = ws.current_id()
    assert ws.active_ids() == {ws.first.info.id, new_id}

    endpoint.status = 204
    resumed = ws.cli("resume", "trading")
    assert resumed.exit_code == ExitCode.OK, resumed.output
    assert endpoint.calls == [("POST", "/-/reload", new_id), ("POST", "/-/reload", new_id)]
    assert ws.active_ids() == {new_id}
    assert any("HTTP 204" in entry["message"] for entry in history(ws) if entry["step"] == "reload")


def test_an_emergency_reloads_before_it_revokes(ws: Workspace):
    use_script(ws)
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key pasted in a ticket")
    assert result.exit_code == ExitCode.OK, result.output
    new_id = ws.current_id()
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id]
    assert ws.active_ids() == {new_id}
    steps = steps_of_last_rotation(history(ws))
    assert steps.index("deploy") < steps.index("reload") < steps.index("revoke"), steps


def test_a_reload_that_prints_the_secret_does_not_leak_it(ws: Workspace):
    """The script prints the secret it read on both streams: neither the CLI's output, the logs (the autouse leak
    guard reads them), the record nor the history carries it; the message says a line was withheld."""
    use_script(ws, mode="leak-fail")
    failed = ws.cli("rotate", "trading")
    assert failed.exit_code == ExitCode.INCOMPLETE, failed.output
    secret = ws.pair_in().api_secret.reveal()  # a Secret: the leak guard watches it from here on too
    assert "failed: exit 1 (its last line is not shown: it might hold a secret)" in failed.output
    assert secret not in failed.output
    assert secret[:8] not in waiting_on(ws)

    set_mode(ws, "leak-ok")
    resumed = ws.cli("resume", "trading")
    assert resumed.exit_code == ExitCode.OK, resumed.output
    assert secret not in resumed.output
    entries = history(ws)
    assert [entry["step"] for entry in entries].count("reload") >= 3  # two actions, one finished step
    assert not any(secret[:8] in json.dumps(entry) for entry in entries)
    ws.guard.check(json.dumps(sidecar(ws)["record"]), "rotation record")


def test_a_credential_without_reload_actions_writes_nothing_for_the_step(ws: Workspace):
    """No reload actions: DEPLOYED goes straight to confirm, with no record write and no event for a reload."""
    trace = ws.root / "trace.txt"
    proc = ws.run("rotate", "trading", env={"ROTATOR_TEST_TRACE_FILE": str(trace)})
    assert proc.returncode == ExitCode.OK, proc.stderr
    points = trace.read_text().split()
    assert points[points.index("deployed.record") + 1] == "verified.record"
    assert not any(point.startswith(("reload", "reloaded")) for point in points)
    assert not any(entry["step"] == "reload" for entry in history(ws))


def test_the_reload_is_a_named_step_between_promote_and_confirm(ws: Workspace):
    """`rotator step` (and so an orchestrator) advances the reload by name; confirm is refused before it."""
    use_script(ws)
    token = "reload-steps-0001"
    for name in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        done = ws.cli("step", "trading", name, "--token", token)
        assert done.exit_code == ExitCode.OK, done.output
    assert "next: reload" in done.output
    early = ws.cli("step", "trading", "confirm", "--token", token)
    assert early.exit_code == ExitCode.BAD_INPUT, early.output
    assert "its next step is reload, not confirm" in early.output
    assert reload_runs(ws) == []

    reloaded = ws.cli("step", "trading", "reload", "--token", token)
    assert reloaded.exit_code == ExitCode.OK, reloaded.output
    assert "next: confirm" in reloaded.output
    assert [run["key_id"] for run in reload_runs(ws)] == [ws.current_id()]
    again = ws.cli("step", "trading", "reload", "--token", token)
    assert "done already" in again.output
    assert len(reload_runs(ws)) == 1, "a step already done does not run again"
    for name in ("confirm", "revoke", "clear"):
        done = ws.cli("step", "trading", name, "--token", token)
        assert done.exit_code == ExitCode.OK, done.output
    assert ws.active_ids() == {ws.current_id()}


def test_a_crash_after_a_reload_reloads_again_on_resume(ws: Workspace):
    use_script(ws)
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "reload.app"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    new_id = ws.current_id()
    assert [run["key_id"] for run in reload_runs(ws)] == [new_id, new_id]
    assert ws.active_ids() == {new_id}


def test_a_rollback_killed_half_way_still_reloads_before_it_revokes_the_new_key(ws: Workspace):
    """The phase a rollback started from is kept in its first record write, so the resumed rollback knows that
    applications may hold the new key and reloads them before revoking it."""
    use_script(ws, mode="fail")
    assert ws.run("rotate", "trading").returncode == ExitCode.INCOMPLETE
    new_id = ws.current_id()
    set_mode(ws, "ok")
    crashed = ws.run("rollback", "trading", env={CRASH_ENV: "rolling_back.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    assert len(reload_runs(ws)) == 1, "killed before the reload"
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.ROLLED_BACK, said(resumed)  # what a finished rollback exits with
    last = reload_runs(ws)[-1]
    assert last["env"]["ROTATOR_RELOAD_FOR"] == "rollback"
    assert last["key_id"] == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}
    assert new_id not in ws.active_ids()
