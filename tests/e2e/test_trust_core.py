"""Issue 16, the rotation engine: the key revoked is the one identified at the start (item 2), one application's
broken file does not stop another credential's rotation (item 15), and a reload command that cannot run is refused
before anything is created (item 19).

Every test drives the real CLI against the simulator with real dotenv files. The second writer of item 2 is a real
second uid (`nobody`, through `setpriv`) whom the dotenv file's group lets write, as the finding had it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.faultpoints import HOLD_ENV, RELEASE_ENV, TRACE_ENV
from rotator.core.model import CreatedKey, Environment, KeyPair, fingerprint
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace, dotenv_text
from tests.e2e.second_user import NOBODY, SETPRIV, folder_nobody_can_reach
from tests.e2e.test_review_scenarios import current_everywhere, key_status, record, said
from tests.e2e.test_sweep import add_second_credential

pytestmark = pytest.mark.slow


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """The workspace in a folder `nobody` can pass through (0711, like a service's home), so a file whose group
    lets `nobody` write can be written by it; pytest's own temporary folders are 0700."""
    yield from folder_nobody_can_reach("trust-core-", 0o711)


def needs_second_uid() -> None:
    if os.geteuid() != 0:
        pytest.skip("playing a second local user (setpriv --reuid) needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")


def as_nobody_write(path: Path, text: str) -> None:
    """Rewrite `path` in place as uid/gid 65534 (no other groups): only the file's group mode lets it."""
    proc = subprocess.run(
        [*SETPRIV, "sh", "-c", 'cat > "$1"', "sh", path],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"nobody could not write {path}: {proc.stderr}"


def group_writable_for_nobody(path: Path) -> None:
    os.chown(path, 0, NOBODY)
    path.chmod(0o660)


def bystander_key(ws: Workspace) -> CreatedKey:
    """Another active key of the same investor that no configured store holds (another team's, say)."""
    with BluumClient(ws.sim.base_url) as client:
        return client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name="another team's app",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )


class Held:
    """A `rotator` run parked at a fault point until released; its output goes through the leak guard."""

    def __init__(self, ws: Workspace, point: str, *args: str) -> None:
        self.ws = ws
        self.release_file = ws.root / f"release-{uuid.uuid4().hex}"
        self.trace = ws.root / f"trace-{uuid.uuid4().hex}"
        env = {**os.environ, HOLD_ENV: point, RELEASE_ENV: str(self.release_file), TRACE_ENV: str(self.trace)}
        self.point = point
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "-vv", "--config", str(ws.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ws.root,
            env=env,
        )

    def wait_parked(self, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.trace.exists() and self.point in self.trace.read_text().split():
                return
            assert self.proc.poll() is None, f"the run ended before {self.point}: {self.proc.communicate()}"
            time.sleep(0.05)
        raise AssertionError(f"the run never reached {self.point}")

    def release(self) -> subprocess.CompletedProcess[str]:
        self.release_file.write_text("go")
        out, err = self.proc.communicate(timeout=90)
        self.ws.guard.check(out, "held run stdout")
        self.ws.guard.check(err, "held run stderr")
        self.ws.probe()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def history_text(ws: Workspace, name: str = "trading") -> str:
    path = ws.root / "rotator-history" / f"{name}.jsonl"
    text = path.read_text() if path.exists() else ""
    ws.guard.check(text, "history file")
    return text


# ----------------------------------------------------------------------------- item 2: the key identified at the start


@pytest.mark.parametrize("emergency", [True, False], ids=["emergency", "plain"])
def test_a_public_key_written_into_the_dotenv_mid_rotation_is_never_revoked(ws: Workspace, emergency: bool):
    """During the propagation wait `nobody` (the file's group may write it) puts a bystander key's API key and id
    into app.env; no secret is needed. The rotation must stop before promote (exit 4, nothing more changed, the
    store and both keys named), never revoke the bystander, and after the file is put right, resume revokes the key
    identified at the start."""
    needs_second_uid()
    leaked = ws.first
    bystander = bystander_key(ws)
    app = ws.root / "app.env"
    group_writable_for_nobody(app)
    original = app.read_text()
    ws.excuse(KeyPair(bystander.pair.api_key, leaked.pair.api_secret, Environment.SANDBOX))

    args = (
        ("rotate", "trading", "--emergency", "--reason", "pasted in a ticket") if emergency else ("rotate", "trading")
    )
    held = Held(ws, "staged.record", *args)
    held.wait_parked()
    forged = original.replace(leaked.pair.api_key, bystander.pair.api_key).replace(
        str(leaked.info.id), bystander.info.id
    )
    assert forged != original
    as_nobody_write(app, forged)
    stopped = held.release()

    message = said(stopped)
    assert stopped.returncode == ExitCode.INCOMPLETE, message
    assert "store 'app'" in message, message
    assert fingerprint(bystander.pair.api_key) in message, message
    assert leaked.info.id in message, message
    assert "nothing more was changed" in message, message
    assert key_status(ws, bystander.info.id) == "active", "the bystander key was revoked"
    assert ws.works(bystander.pair)
    assert key_status(ws, leaked.info.id) == "active"
    assert ws.current_id("mirror.env", "TRADING_") == leaked.info.id, "the new key was deployed after the stop"
    assert record(ws)["phase"] == "accepted"
    assert record(ws)["old_public_key"] == leaked.pair.api_key
    assert "revoked" not in history_text(ws).replace("NOT revoked", "").replace("nothing was revoked", "")
    if emergency:
        assert "still active at Bluum" in message, message
    rows = {row["name"]: row for row in json.loads(ws.cli("status", "--json").stdout)}
    assert "someone changed it during the rotation" in rows["trading"]["waiting"], rows["trading"]

    app.write_text(original)  # the fix the message names: the old key back in the store
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert key_status(ws, leaked.info.id) == "revoked"
    assert key_status(ws, bystander.info.id) == "active"
    assert record(ws)["phase"] == "completed"


def test_targets_showing_different_keys_at_the_start_are_refused(ws: Workspace):
    """The old key is pinned at the start, so one credential's targets must agree on it then: a mirror holding
    another key is refused before anything is created (exit 2), naming the store, rather than stopped at promote."""
    bystander = bystander_key(ws)
    mirror = ws.root / "mirror.env"
    mirror.write_text(dotenv_text(bystander.pair, "sandbox", ws.sim.base_url).replace("BLUUM_", "TRADING_"))
    files, keys = ws.snapshot(), ws.sim.keys()
    for args in (("rotate", "trading", "--dry-run"), ("rotate", "trading", "--emergency", "--reason", "leaked")):
        proc = ws.run(*args)
        message = said(proc)
        assert proc.returncode == ExitCode.BAD_INPUT, f"{args}: {message}"
        assert "store 'mirror'" in message, message
        assert fingerprint(bystander.pair.api_key) in message, message
        assert "Nothing was changed" in message, message
        assert ws.snapshot() == files
        assert ws.sim.keys() == keys


def test_a_previous_changed_before_the_revoke_stops_it(ws: Workspace):
    """After promote the old key sits in PREVIOUS (the rotator's own state). Whatever puts another key there before
    the revoke (here: the state file edited while the run is parked) stops the revoke: exit 4, the bystander lives."""
    leaked = ws.first
    bystander = bystander_key(ws)
    held = Held(ws, "verified.record", "rotate", "trading", "--emergency", "--reason", "leaked")
    held.wait_parked()
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    assert data["previous"]["api_key"] == leaked.pair.api_key
    data["previous"].update(api_key=bystander.pair.api_key, key_id=bystander.info.id)
    path.write_text(json.dumps(data, indent=2) + "\n")
    stopped = held.release()

    message = said(stopped)
    assert stopped.returncode == ExitCode.INCOMPLETE, message
    assert "store 'app'" in message, message
    assert "PREVIOUS" in message, message
    assert fingerprint(bystander.pair.api_key) in message, message
    assert "Nothing was revoked" in message, message
    assert key_status(ws, bystander.info.id) == "active"
    assert key_status(ws, leaked.info.id) == "active"
    assert record(ws)["phase"] == "verified"


def test_a_record_of_an_older_version_still_revokes_what_previous_holds(ws: Workspace):
    """A record written before the old key's public key was kept (no `old_public_key`): resume revokes the key whose
    public key PREVIOUS holds, as that version did, and completes."""
    ws.write_config(grace="1h")
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    del data["record"]["old_public_key"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    resumed = ws.run("resume", "trading", "--now")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert record(ws)["phase"] == "completed"


def test_the_person_revoking_a_manual_key_is_never_pointed_at_another_key(ws: Workspace):
    """The manual issuer (a tenant key; a person revokes in the dashboard): `nobody` writes a bystander tenant key's
    API key into tenant.env during the propagation wait. The rotation stops before promote, so nobody is asked to
    revoke (or told is revoked) anything but the key identified at the start."""
    needs_second_uid()
    old_tenant = ws.tenant_pair
    bystander = ws.sim.create_tenant_key()
    new_tenant = ws.sim.create_tenant_key()
    pair_file = ws.root / "new-tenant.json"
    pair_file.write_text(
        json.dumps(
            {"api_key": new_tenant["public_key"], "api_secret": new_tenant["secret_key"], "key_id": new_tenant["id"]}
        )
    )
    ws.guard.watch(new_tenant["secret_key"], bystander["secret_key"])
    tenant_env = ws.root / "tenant.env"
    group_writable_for_nobody(tenant_env)
    original = tenant_env.read_text()
    ws.excuse(KeyPair(bystander["public_key"], old_tenant.api_secret, Environment.SANDBOX))

    held = Held(ws, "staged.record", "rotate", "tenant", "--new-key-file", str(pair_file))
    held.wait_parked()
    forged = original.replace(old_tenant.api_key, bystander["public_key"]).replace(
        str(old_tenant.key_id), bystander["id"]
    )
    as_nobody_write(tenant_env, forged)
    stopped = held.release()

    message = said(stopped)
    assert stopped.returncode == ExitCode.INCOMPLETE, message
    assert "store 'tenant'" in message, message
    assert fingerprint(bystander["public_key"]) in message, message
    assert bystander["public_key"][:12] not in message, "the person was pointed at the bystander key"
    tenant_record: dict[str, Any] = json.loads(ws.sidecar_path("tenant.env").read_text())["record"]
    assert tenant_record["phase"] == "accepted"
    assert tenant_record["old_public_key"] == old_tenant.api_key
    with BluumClient(ws.sim.base_url) as client:
        bystander_pair = KeyPair(bystander["public_key"], Secret(bystander["secret_key"]), Environment.SANDBOX)
        assert client.check(bystander_pair).outcome.value == "works"


# ----------------------------------------------------------------------- item 15: another application's broken file


def break_reports(ws: Workspace, how: str) -> str:
    """Another credential (`reports`) whose dotenv file is malformed (no secret line), or not a file at all; returns
    the file's text from before, to put it right."""
    add_second_credential(ws)
    path = ws.root / "reports.env"
    text = path.read_text()
    if how == "malformed":
        path.write_text("\n".join(line for line in text.splitlines() if "API_SECRET" not in line) + "\n")
    else:
        path.unlink()
        path.mkdir()
    return text


@pytest.mark.parametrize("how", ["malformed", "not a file"])
def test_an_emergency_is_never_stopped_by_another_applications_broken_file(ws: Workspace, how: str):
    """The leaked key is revoked; the store that could not be checked is named in the output and the history."""
    break_reports(ws, how)
    plan = ws.run("rotate", "trading", "--emergency", "--reason", "leaked", "--dry-run")
    assert plan.returncode == ExitCode.OK, said(plan)
    assert "store 'reports'" in said(plan), said(plan)

    proc = ws.run("rotate", "trading", "--emergency", "--reason", "leaked")
    message = said(proc)
    assert proc.returncode == ExitCode.OK, message
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert "store 'reports'" in message, message
    assert "revoked anyway" in message, message
    assert "store 'reports'" in history_text(ws)
    assert current_everywhere(ws) != ws.first.info.id


def test_a_scheduled_rotation_waits_before_the_revoke_while_another_store_is_unreadable(ws: Workspace):
    """It goes as far as it safely can (new key deployed and verified, the old one still active), waits with the
    reason in `status` and a `stopped` event (an alert), and each tick waits until the file reads again."""
    reports_text = break_reports(ws, "malformed")
    plan = ws.run("rotate", "trading", "--dry-run")
    assert plan.returncode == ExitCode.OK, said(plan)
    assert "revoked only once it reads" in said(plan), said(plan)

    proc = ws.run("rotate", "trading")
    message = said(proc)
    assert proc.returncode == ExitCode.INCOMPLETE, message
    assert "store 'reports'" in message, message
    assert "was NOT revoked" in message, message
    new_id = current_everywhere(ws)
    assert new_id != ws.first.info.id
    assert key_status(ws, ws.first.info.id) == "active"
    assert ws.works(ws.first.pair)
    assert record(ws)["phase"] == "verified"
    rows = {row["name"]: row for row in json.loads(ws.cli("status", "--json").stdout)}
    assert "store 'reports'" in rows["trading"]["waiting"], rows["trading"]
    stops = [json.loads(line) for line in history_text(ws).splitlines() if '"stopped"' in line]
    assert any("store 'reports'" in str(entry) for entry in stops), stops

    tick = ws.run("run-due")
    assert tick.returncode == ExitCode.INCOMPLETE, said(tick)
    assert key_status(ws, ws.first.info.id) == "active"

    (ws.root / "reports.env").write_text(reports_text)  # the fix: the other application's file put right
    tick = ws.run("run-due")
    assert tick.returncode == ExitCode.OK, said(tick)
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert record(ws)["phase"] == "completed"


def test_rotate_all_rotates_the_others_when_one_file_is_broken(ws: Workspace):
    break_reports(ws, "not a file")
    proc = ws.run("rotate", "--all", "--emergency", "--reason", "a leak in the shared CI logs")
    message = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, message  # reports' own rotation: its file is a folder
    assert "is a directory" in message, message
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert current_everywhere(ws) != ws.first.info.id


# ----------------------------------------------------------------------- item 19: a reload command that cannot run


def give_app_reload(ws: Workspace, command: list[str]) -> None:
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ command = {json.dumps(command)} }}]\n')


@pytest.mark.parametrize(
    ("command", "said_of_it"),
    [
        (["systemctl-typo", "reload", "trading"], "is not found on the PATH"),
        (["./reload-trading.sh"], "is not executable"),
        (["bin/missing-reload"], "does not exist"),
    ],
)
def test_a_reload_command_that_cannot_run_is_refused_before_anything_is_created(
    ws: Workspace, command: list[str], said_of_it: str
):
    (ws.root / "reload-trading.sh").write_text("#!/bin/sh\nexit 0\n")  # 0644: not executable
    give_app_reload(ws, command)
    files, keys = ws.snapshot(), ws.sim.keys()
    for args in (
        ("rotate", "trading", "--dry-run"),
        ("rotate", "trading"),
        ("rotate", "trading", "--emergency", "--reason", "leaked"),
        ("run-due",),
    ):
        proc = ws.run(*args)
        message = said(proc)
        if args == ("run-due",):  # a seeded key is counted, not due: the tick has nothing to start
            assert proc.returncode in (ExitCode.OK, ExitCode.BAD_INPUT), message
            continue
        assert proc.returncode == ExitCode.BAD_INPUT, f"{args}: {message}"
        assert command[0] in message, message
        assert said_of_it in message, message
        assert "[stores.app]" in message, message
        assert "Nothing was changed" in message, message
        assert ws.sim.keys() == keys, f"{args}: a key was created or revoked"
        assert {k: v for k, v in ws.snapshot().items() if k != "rotator.toml"} == {
            k: v for k, v in files.items() if k != "rotator.toml"
        }, f"{args}: a file changed"


def test_the_dry_run_plan_shows_the_reload_step(ws: Workspace):
    give_app_reload(ws, ["true", "reload", "trading"])
    plan = ws.run("rotate", "trading", "--dry-run")
    text = said(plan)
    assert plan.returncode == ExitCode.OK, text
    order = [text.index(word) for word in ("deploy:", "reload:", "confirm:", "revoke:")]
    assert order == sorted(order), text
    assert "app: true reload trading" in text, text
    assert "5. reload:" in text, text
    assert "7. revoke:" in text, text
