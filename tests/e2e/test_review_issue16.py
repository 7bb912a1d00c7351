"""An outside review of the fixes for issue 16 (items 2, 3, 6, 13, 15): variants the authors' tests did not try, each
played through the real CLI against the simulator, with real files and a second local user (`nobody`, through
`setpriv`) where the finding needs one.

- A symlink that another user can change, planted BEFORE the rotation starts (the pin only guards changes during
  one): the owner of the application's folder points `app.env` at another application's file, or a folder anyone may
  write holds a symlinked folder on the way to the file. Either made root rewrite a file that user cannot write and
  revoke the key in it (a bystander's), exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.model import Environment, KeyPair
from tests.e2e.conftest import Workspace, dotenv_text
from tests.e2e.second_user import NOBODY, as_nobody, folder_nobody_can_reach, needs_second_user
from tests.e2e.test_review_scenarios import key_status, said


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """The workspace in a folder `nobody` can pass through (0711), so a file whose group lets it write can be written
    by it (pytest's own temporary folders are 0700)."""
    yield from folder_nobody_can_reach("review-issue16-ws-", 0o711)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder under /tmp that `nobody` can reach."""
    needs_second_user("needs root: the link is planted by a second local user through setpriv")
    yield from folder_nobody_can_reach("review-issue16-")


def bystander(ws: Workspace, folder: Path, name: str) -> tuple[Path, KeyPair]:
    """Another application's dotenv file (root's, in a folder only root can write), holding another key of the same
    investor that this rotator.toml does not manage."""
    folder.mkdir(mode=0o755, exist_ok=True)
    with BluumClient(ws.sim.base_url) as client:
        created = client.create_investor_key(
            ws.tenant_pair,
            ws.investor,
            name="billing-app",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    path = folder / name
    path.write_text(dotenv_text(created.pair, "sandbox", ws.sim.base_url))
    path.chmod(0o600)
    return path, created.pair


def only_app(ws: Workspace, app: Path) -> None:
    """`trading` deploys to app only (no mirror to disagree with a redirected file), at `app`."""
    ws.mirror = False
    ws.write_config()
    ws.edit_config('path = "app.env"', f'path = "{app}"')
    ws.edit_config('[stores.mirror]\ntype = "env"\npath = "mirror.env"\nprefix = "TRADING_"\n', "")
    ws.sampled = [("tenant.env", "BLUUM_")]


def assert_refused_and_untouched(
    ws: Workspace, args: tuple[str, ...], victim: Path, victim_pair: KeyPair, *, expect: str
) -> None:
    before = victim.read_bytes()
    keys = len(ws.investor_keys())
    refused = ws.run(*args)
    told = said(refused)
    assert refused.returncode == ExitCode.BAD_INPUT, told
    assert expect in told, told
    assert "Nothing was changed" in told, told
    assert victim.read_bytes() == before, "root rewrote another application's file through a planted link"
    assert ws.works(victim_pair), "the bystander key was revoked"
    assert len(ws.investor_keys()) == keys, "a key was minted for a rotation that had to be refused"


def test_a_link_the_folder_owner_planted_before_the_start_to_another_apps_file_is_refused(
    outside: Path, ws: Workspace
) -> None:
    """The application's folder is its user's (as the authors' tests allow); before a scheduled rotation that user
    replaces app.env with a link to root's billing file. Main rotated the billing key: it wrote the investor's new key
    into billing.env (a file `nobody` cannot write) and revoked billing's key."""
    ws.sampled = [("tenant.env", "BLUUM_")]  # app.env moves: the sampler must not see it gone
    victim, victim_pair = bystander(ws, outside / "billing", "billing.env")
    folder = outside / "app"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    app = folder / "app.env"
    shutil.move(ws.root / "app.env", app)
    only_app(ws, app)
    as_nobody("sh", "-c", f"mv {app} {app}.orig && ln -s {victim} {app}")

    for args in (("rotate", "trading"), ("rotate", "trading", "--emergency", "--reason", "leak")):
        assert_refused_and_untouched(ws, args, victim, victim_pair, expect=f"uid {NOBODY}")


def test_a_deployers_link_inside_the_app_folder_is_still_written_through(outside: Path, ws: Workspace) -> None:
    """The rule above keeps the deployer's release link (it leads below the folder its owner controls)."""
    ws.sampled = [("tenant.env", "BLUUM_")]  # app.env moves: the sampler must not see it gone
    folder = outside / "app"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    release = folder / "releases" / "3"
    release.mkdir(parents=True)
    shutil.move(ws.root / "app.env", release / "app.env")
    app = folder / "app.env"
    app.symlink_to("releases/3/app.env")
    os.lchown(app, NOBODY, NOBODY)
    only_app(ws, app)

    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert os.readlink(app) == "releases/3/app.env"
    assert not ws.works(ws.first.pair)


def test_a_symlinked_folder_planted_in_a_folder_anyone_can_write_is_refused(outside: Path, ws: Workspace) -> None:
    """path = /shared/app/app.env with /shared writable by every user: anyone replaces `app` with a link to a folder
    of root's holding a file of that name. Main checked only the last folder (root's, safe) and rotated that key."""
    ws.sampled = [("tenant.env", "BLUUM_")]  # app.env moves: the sampler must not see it gone
    victim, victim_pair = bystander(ws, outside / "billing", "app.env")
    shared = outside / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    real = shared / "app"
    real.mkdir(mode=0o755)
    app = real / "app.env"
    shutil.move(ws.root / "app.env", app)
    only_app(ws, app)
    as_nobody("sh", "-c", f"mv {real} {shared}/app.orig && ln -s {victim.parent} {real}")
    entries = sorted(p.name for p in victim.parent.iterdir())

    for args in (("rotate", "trading"), ("rotate", "trading", "--emergency", "--reason", "leak")):
        assert_refused_and_untouched(ws, args, victim, victim_pair, expect=f"folder {shared} (mode 0o777")
        assert sorted(p.name for p in victim.parent.iterdir()) == entries, "root made a file in root's folder"


# ----------------------------------------------------------------------------------------------- item 2, variants


def test_a_bystander_written_into_the_mirror_between_two_promotes_is_caught_before_the_mirrors_promote(
    ws: Workspace,
) -> None:
    """The mirror's second writer (the file's group lets `nobody` write it) waits until app is promoted, then puts a
    bystander's API key and id (no secret needed) into mirror.env before mirror is promoted. Main checked every store
    once, before the first promote: mirror's promote moved the bystander into its PREVIOUS, the stop's advice ("put
    the old key back there, then resume") could not work (PREVIOUS is in the rotator's state), resume stopped for
    ever, and `rollback` put the bystander's API key back into mirror.env (a key Bluum rejects), reporting "the old
    key is current again", exit 0. Each store is checked again right before its own promote."""
    from tests.e2e.test_trust_core import Held, as_nobody_write, bystander_key, group_writable_for_nobody

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to play the mirror file's second writer")
    leaked = ws.first
    other = bystander_key(ws)
    mirror = ws.root / "mirror.env"
    group_writable_for_nobody(mirror)
    original = mirror.read_text()
    ws.excuse(KeyPair(other.pair.api_key, leaked.pair.api_secret, Environment.SANDBOX))

    held = Held(ws, "promote.app", "rotate", "trading")
    held.wait_parked()
    forged = original.replace(leaked.pair.api_key, other.pair.api_key).replace(str(leaked.info.id), other.info.id)
    as_nobody_write(mirror, forged)
    stopped = held.release()

    told = said(stopped)
    assert stopped.returncode == ExitCode.INCOMPLETE, told
    assert "store 'mirror'" in told, told
    assert "as the key this rotation replaces" in told, told
    sidecar = json.loads(ws.sidecar_path("mirror.env").read_text())
    assert (sidecar.get("previous") or {}).get("api_key") != other.pair.api_key, "the bystander became PREVIOUS"
    assert mirror.read_text() == forged, "mirror was promoted after the stop"
    assert key_status(ws, other.info.id) == "active"

    as_nobody_write(mirror, original)  # the stop's advice: the old key back where it was changed
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert key_status(ws, leaked.info.id) == "revoked"
    assert key_status(ws, other.info.id) == "active"
    new_id = ws.current_id()
    assert ws.current_id("mirror.env", "TRADING_") == new_id != leaked.info.id


def test_a_rollback_never_restores_a_key_someone_got_into_previous(ws: Workspace) -> None:
    """Whatever put a bystander's API key into a target's PREVIOUS (here the state file edited while the run is
    parked, as the authors' revoke test does; a writer racing one store's promote gets there too), the revoke stops
    (exit 4). Main's `rollback` then restored the bystander's API key into app.env (a key Bluum rejects: the
    application is broken) and said "the old key is current again", exit 0."""
    from tests.e2e.test_trust_core import Held, bystander_key

    leaked = ws.first
    other = bystander_key(ws)
    ws.excuse(KeyPair(other.pair.api_key, leaked.pair.api_secret, Environment.SANDBOX))
    held = Held(ws, "verified.record", "rotate", "trading", "--emergency", "--reason", "leaked")
    held.wait_parked()
    path = ws.sidecar_path("app.env")
    data = json.loads(path.read_text())
    data["previous"].update(api_key=other.pair.api_key, key_id=other.info.id)
    path.write_text(json.dumps(data, indent=2) + "\n")
    stopped = held.release()
    assert stopped.returncode == ExitCode.INCOMPLETE, said(stopped)
    app_before, mirror_before = ws.root.joinpath("app.env").read_bytes(), ws.root.joinpath("mirror.env").read_bytes()

    rolled = ws.run("rollback", "trading")
    told = said(rolled)
    assert rolled.returncode == ExitCode.INCOMPLETE, told
    assert "store 'app'" in told, told
    assert "Nothing was rolled back" in told, told
    assert ws.values().get("BLUUM_API_KEY") != other.pair.api_key, "the bystander's API key was restored into app.env"
    assert ws.root.joinpath("app.env").read_bytes() == app_before
    assert ws.root.joinpath("mirror.env").read_bytes() == mirror_before
    assert key_status(ws, other.info.id) == "active"
    new_id = ws.current_id()
    assert new_id is not None
    assert key_status(ws, new_id) == "active", "the key in use was revoked"


# ----------------------------------------------------------------------------------------------- item 13, a variant


def test_a_crashed_writes_copy_of_a_file_the_application_owns_is_removed_too(ws: Workspace) -> None:
    """app.env belongs to the application's user (`chown app .env`, as deployers do), so the rotator gives its
    temporary copy that owner before the rename. A crash between fsync and rename left a copy of the new secret that
    main's sweep skipped as "another user's" for ever, and never reported."""
    from rotator.core.faultpoints import CRASH_ENV

    if os.geteuid() != 0:
        pytest.skip("needs root: the file belongs to another user")
    app = ws.root / "app.env"
    os.chown(app, NOBODY, NOBODY)
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "dotenv.written"})
    assert crashed.returncode == -9, said(crashed)
    left = [p for p in ws.root.iterdir() if p.name.startswith(".app.env.") and p.name.endswith(".tmp")]
    assert len(left) == 1, "the crash left the temporary copy (with the new secret) beside the file"
    assert left[0].stat().st_uid == NOBODY

    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert not left[0].exists(), "a copy of the secret stays beside the file for ever"
    assert f"removed 1 temporary copy of {app}" in resumed.stderr
    assert app.stat().st_uid == NOBODY


def test_an_enrollment_never_appends_its_key_to_a_file_a_planted_link_leads_to(outside: Path, ws: Workspace) -> None:
    """Item 3's own example, planted before the start: the application's user links app.env to a copy of
    /etc/passwd (root's, in root's folder). Main's `enroll` appended the new key to it."""
    ws.sampled = [("tenant.env", "BLUUM_")]  # app.env moves: the sampler must not see it gone
    victim_folder = outside / "etc"
    victim_folder.mkdir(mode=0o755)
    passwd = victim_folder / "passwd"
    shutil.copyfile("/etc/passwd", passwd)
    before = passwd.read_bytes()
    folder = outside / "app"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    app = folder / "app.env"
    (ws.root / "app.env").unlink()
    only_app(ws, app)
    keys = len(ws.investor_keys())
    as_nobody("ln", "-s", str(passwd), str(app))

    refused = ws.run("enroll", "trading")
    told = said(refused)
    assert refused.returncode == ExitCode.BAD_INPUT, told
    assert f"uid {NOBODY} can change" in told, told
    assert passwd.read_bytes() == before, "root appended the new key to the file a planted link leads to"
    assert len(ws.investor_keys()) == keys


# ----------------------------------------------------------------------------------------------- item 15, a variant


def test_an_emergency_is_not_stalled_by_a_named_pipe_where_another_apps_file_was(outside: Path, ws: Workspace) -> None:
    """The reports application's user (its folder is theirs) replaces reports.env with a named pipe. Main's read of
    it, in the survey before the revoke, waited for a writer for ever: the emergency rotation of the unrelated leaked
    key never finished (nor did any other command that reads every store), holding its lease."""
    from tests.e2e.test_sweep import add_second_credential

    add_second_credential(ws)
    folder = outside / "reports"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    reports = folder / "reports.env"
    shutil.move(ws.root / "reports.env", reports)
    os.chown(reports, NOBODY, NOBODY)
    ws.edit_config('path = "reports.env"', f'path = "{reports}"')
    as_nobody("sh", "-c", f"rm {reports} && mkfifo {reports}")

    try:
        proc = ws.run("rotate", "trading", "--emergency", "--reason", "leaked", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the emergency rotation hung reading another application's named pipe")
    told = said(proc)
    assert proc.returncode == ExitCode.OK, told
    assert key_status(ws, ws.first.info.id) == "revoked"
    assert "store 'reports'" in told, told
    assert "not a regular file" in told, told
    assert "revoked anyway" in told, told

    status = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(ws.config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ws.guard.check(status.stdout + status.stderr, "status")
    assert "reports" in status.stdout + status.stderr
