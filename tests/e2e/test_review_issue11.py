"""Outside review of issue 11 (fleet, daemon, notifications, metrics, consumer reloads): what a careful SRE would hit.

Its findings were fixed and their tests kept: an unwritable metrics textfile found only after the tick, an
enrollment paged as an emergency, a rolled-back rotation retried at every tick, a reload URL's token in the
history, advice for `--every` that did not work, a failed rollback nobody was told of. The other tests are
guarantees the review tried to break and that held. Real parts throughout: the simulator over HTTP, real dotenv
files, the CLI in a subprocess, a webhook receiver and a reload endpoint on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rotator.config.loader import load_config
from rotator.core.errors import ExitCode
from rotator.core.faultpoints import hooked
from rotator.ops.fleet import run_each
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said
from tests.integration.test_fleet import active_keys, fleet_workspace, tenant_log

HOOK_ENV = "REVIEW_HOOK_KEY"
HOOK_KEY = "review-webhook-signing-key-0123456789"


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that answers 204 and keeps every request's path and JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append((self.path, json.loads(body) if body else {}))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def events(self) -> list[str]:
        with self._lock:
            return [str(body.get("event")) for _, body in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def due_at_next_run(ws: Workspace) -> None:
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\nseeded_key_age = "due"')


# --------------------------------------------------------------------------------------------------- metrics


def test_run_due_with_an_unwritable_metrics_textfile_reports_the_tick_it_ran(ws: Workspace) -> None:
    due_at_next_run(ws)
    (ws.root / "not-a-folder").write_text("a file where the textfile's folder should be\n")
    before = ws.current_id()
    proc = ws.run("run-due", "--metrics-textfile", str(ws.root / "not-a-folder" / "bluum_rotator.prom"))
    text = said(proc)
    rotated = ws.current_id() != before
    # Either refuse up front (exit 2, nothing rotated) or rotate and say so; never a traceback with the code that
    # means "rolled back" while the rotation in fact completed.
    assert "Traceback" not in proc.stderr, text[-2000:]
    if rotated:
        assert "rotation complete" in text
        assert proc.returncode != int(ExitCode.ROLLED_BACK)
    else:
        assert proc.returncode == int(ExitCode.BAD_INPUT)


# --------------------------------------------------------------------------------------------------- notifications


def add_webhook(ws: Workspace, url: str, events: str = "") -> None:
    ws.add_config(f'\n[notifications.oncall]\nurl = "{url}/hook"\nsecret_env = "{HOOK_ENV}"\n{events}\n')
    ws.env[HOOK_ENV] = HOOK_KEY


def test_an_enrollment_is_not_announced_as_an_emergency(ws: Workspace, receiver: Receiver) -> None:
    investor = ws.sim.create_investor()
    add_webhook(ws, receiver.url, 'events = ["emergency", "completed"]')
    ws.add_config(
        f"""
[stores.fresh]
type = "env"
path = "fresh.env"

[credentials.fresh]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "fresh"
grace = "0s"
"""
    )
    proc = ws.run("enroll", "fresh")
    assert proc.returncode == 0, said(proc)
    ws.sampled.append(("fresh.env", "BLUUM_"))
    assert "completed" in receiver.events()  # the sink works: the enrollment's end was delivered
    assert "emergency" not in receiver.events(), receiver.requests


def test_webhook_payloads_of_a_fleet_tick_carry_no_secret_and_name_every_credential(
    ws: Workspace, receiver: Receiver
) -> None:
    """Held: every sink payload of a tick (started, completed, findings) goes through the leak guard."""
    due_at_next_run(ws)
    add_webhook(ws, receiver.url)
    proc = ws.run("run-due")
    assert proc.returncode in (0, int(ExitCode.INCOMPLETE)), said(proc)  # the tenant key waits on a person
    ws.guard.check(json.dumps(receiver.requests), "webhook payloads")
    assert {"started", "completed"} <= set(receiver.events()), receiver.events()


# --------------------------------------------------------------------------------------------------- reloads


def test_an_http_reload_whose_token_is_in_its_path_keeps_it_out_of_the_history(
    ws: Workspace, receiver: Receiver
) -> None:
    token = "hk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ url = "{receiver.url}/deploy/{token}" }}]\n')
    proc = ws.run("rotate", "trading")
    assert proc.returncode == 0, said(proc)
    assert [path for path, _ in receiver.requests] == [f"/deploy/{token}"]  # the reload ran
    history = (ws.root / "rotator-history" / "trading.jsonl").read_text()
    assert token not in history
    assert token not in said(proc)


def test_a_failed_reload_with_its_output_split_across_lines_keeps_the_old_key_and_leaks_nothing(
    ws: Workspace,
) -> None:
    """Held: a failing reload that prints the secret on its last stderr line, URL-quoted, with stdout after it;
    the old key stays active, and neither the message, the history nor `status` carries the secret."""
    script = (
        "import sys, urllib.parse\n"
        "from dotenv import dotenv_values\n"
        "v = dotenv_values('app.env')\n"
        "print('reloading with', v['BLUUM_API_KEY'])\n"
        "print('bad secret ' + urllib.parse.quote(v['BLUUM_API_SECRET']), file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    (ws.root / "reload_app.py").write_text(script)
    command = json.dumps([sys.executable, "reload_app.py"])
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ command = {command} }}]\n')
    proc = ws.run("rotate", "trading")
    assert proc.returncode == int(ExitCode.INCOMPLETE), said(proc)
    assert "nothing was revoked" in said(proc)
    assert ws.works(ws.first.pair)  # the old key is alive
    ws.guard.check((ws.root / "rotator-history" / "trading.jsonl").read_text(), "history")
    ws.guard.check(ws.cli("status", "--json").stdout, "status")
    new_pair = ws.pair_in()
    for text in (said(proc), (ws.root / "rotator-history" / "trading.jsonl").read_text()):
        assert new_pair.api_secret.reveal()[:12] not in text


# --------------------------------------------------------------------------------------------------- fleet / I1


def test_a_hand_edit_mid_fleet_that_copies_the_old_key_into_another_credentials_file_stops_its_revoke(
    sim: Simulator, tmp_path: Path
) -> None:
    """Held (I1 through the holdings cache): a fleet of three rotates at once; while app0 is DEPLOYED, a person
    copies app0's old pair into app2's file in place (same inode, same size) and puts the mtime back (`cp -p`,
    `rsync -t`). app2's store was read and cached by the earlier preflights; the revoke of app0's old key must
    still see it there and refuse, and that key must stay active."""
    config, _, investors = fleet_workspace(sim, tmp_path, 3, fleet="[fleet]\nconcurrency = 3\n")
    sim.configure(propagation_delay=0.2)
    old_text = (tmp_path / "app0.env").read_text()
    target = tmp_path / "app2.env"
    edited = threading.Event()

    def copy_old_key(point: str) -> None:
        if point == "deployed.record" and not edited.is_set() and (tmp_path / "app0.env").read_text() != old_text:
            edited.set()
            before = target.stat()
            with target.open("r+") as handle:  # in place: same inode
                handle.write(old_text)
                handle.truncate()
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))

    with RotationService(load_config(config)) as service:
        service.runtime.holdings()  # every store read and cached, as a daemon's earlier ticks would have
        with hooked(copy_old_key):
            outcomes = run_each(service, ["app0", "app1"], service.rotate)
    assert edited.is_set()
    by_name = {o.credential: o for o in outcomes}
    assert by_name["app1"].exit_code is ExitCode.OK, by_name["app1"].message
    assert by_name["app0"].exit_code is ExitCode.INCOMPLETE, by_name["app0"].message
    assert "NOT revoked" in by_name["app0"].message
    assert "app2" in by_name["app0"].message
    assert len(active_keys(sim, investors[0])) == 2  # old (still used from app2.env) and new


# --------------------------------------------------------------------------------------------------- daemon / ticks


def test_a_rolled_back_scheduled_rotation_is_not_retried_at_the_very_next_tick(ws: Workspace) -> None:
    ws.write_config(verify_timeout="1s")
    due_at_next_run(ws)
    ws.delay_new_keys(30)  # new keys never work within the 1s verify budget: each rotation rolls back
    tenant_id = str(ws.tenant["id"])
    first = ws.run("run-due")
    assert first.returncode == int(ExitCode.ROLLED_BACK), said(first)
    before = len(ws.sim.request_log())
    second = ws.run("run-due")
    creates = [
        e for e in tenant_log(ws.sim, tenant_id, before) if e["method"] == "POST" and "api-keys" in str(e["path"])
    ]
    assert creates == [], said(second)
    assert second.returncode == int(ExitCode.ROLLED_BACK), said(second)  # the old key is still the one in use
    assert "The next scheduled try is at" in said(second)
    assert "`rotator rotate trading` tries now" in said(second)
    status = ws.run("status")
    assert "the scheduler tries again at" in status.stdout, status.stdout


def test_a_fractional_every_is_refused_with_a_fix_that_works(ws: Workspace) -> None:
    result = ws.cli("daemon", "--every", "0.5s")
    assert result.exit_code == int(ExitCode.BAD_INPUT), result.output
    assert "--every 0s" not in result.output, result.output


def test_a_rollback_that_fails_itself_is_announced(ws: Workspace) -> None:
    """A rotation whose new key never verifies rolls back; when that rollback cannot revoke the new key (Bluum
    answers 503 to the revoke), the sinks and the history hear of it as a stopped rotation, not silence."""
    ws.write_config(verify_timeout="1s")
    ws.bluum_gives_up_soon()
    ws.delay_new_keys(30)
    ws.sim.inject_fault(method="POST", path=f"/v1/investors/{ws.investor}/api-keys/", status=503, count=50)
    result = ws.run("rotate", "trading")
    assert result.returncode == int(ExitCode.INCOMPLETE), said(result)
    assert "rollback failed" in said(result)
    entries = json.loads(ws.run("history", "trading", "--json").stdout)
    stopped = [e for e in entries if e.get("event") == "stopped" and e.get("step") == "rollback"]
    assert stopped, entries
    assert ws.current_id() == ws.first.info.id  # the old key is current again all the same
