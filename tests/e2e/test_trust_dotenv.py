"""Issue 16, items 3, 6 and 13: how the env store writes the application's dotenv file, driven through the real CLI
against the simulator, with real symlinks, hard links, a bind mount and a second local user (`nobody`, through
`setpriv`) who can write the application's folder.

- Item 3: a swap of the dotenv file (for a link to a copy of /etc/passwd, or of a deployer's symlink towards the
  tenant's own file) while the rotation waits on Bluum stops the rotation (exit 4), writes nothing to the new target,
  says which path changed from what to what, keeps the new key for `resume`; a folder other users can write is
  refused before anything changes (exit 2) with the chmod that fixes it, and a deployer's symlink present at the
  start is still written through.
- Item 6: a hard-linked file and a single-file bind mount are refused before anything changes, with the fix;
  `write_mode = "in_place"` rewrites the one file every name (or the mount) shows.
- Item 13: a crash between fsync and rename leaves a temporary copy of the new secret beside the file; the next run
  removes it and says so, and removes nothing that is not its own leftover.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.e2e.conftest import Workspace
from tests.e2e.second_user import NOBODY, as_nobody, folder_nobody_can_reach, needs_second_user
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import Background


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder under /tmp that `nobody` can reach (pytest's tmp_path is 0700 under a 0700 root folder)."""
    needs_second_user("needs root: the swap is done by a second local user through setpriv, as the review did")
    yield from folder_nobody_can_reach("trust-dotenv-")


def move_app_to(ws: Workspace, folder: Path, *, owner: int = 0, mode: int = 0o755) -> Path:
    """The store `app` now names `folder/app.env` (the application's folder, owned by `owner`)."""
    folder.mkdir(exist_ok=True)
    os.chown(folder, owner, owner)
    folder.chmod(mode)
    target = folder / "app.env"
    with ws.sampling_paused():  # the sampler follows the file as it moves
        shutil.move(ws.root / "app.env", target)
        ws.sampled = [("tenant.env", "BLUUM_"), (str(target), "BLUUM_"), ("mirror.env", "TRADING_")]
    ws.edit_config('path = "app.env"', f'path = "{target}"')
    return target


def files_under(*folders: Path) -> dict[str, bytes | str]:
    """Every entry below the folders: a file's bytes, a link's text (lock files excluded: not a change)."""
    found: dict[str, bytes | str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.name.endswith(".lock") or path.parent.name == "runs":
                continue
            if path.is_symlink():
                found[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def key_count(ws: Workspace) -> int:
    return len(ws.investor_keys())


def pending_in_record(ws: Workspace) -> str | None:
    """The key id the sidecar keeps as PENDING (the new key a `resume` finishes with)."""
    data = json.loads(ws.sidecar_path("app.env").read_text())
    pending = data.get("pending")
    return None if pending is None else pending.get("key_id")


# ----------------------------------------------------------------------------------------------- item 3


@pytest.mark.key_outage("app.env leads to a passwd file (no key) from the swap until it is put back")
def test_a_file_swapped_for_a_link_to_passwd_during_the_wait_is_not_written_and_the_rotation_stops(
    outside: Path, ws: Workspace
) -> None:
    passwd = outside / "passwd"  # a copy: never the real /etc/passwd
    shutil.copyfile("/etc/passwd", passwd)
    passwd_before = passwd.read_bytes()
    app = move_app_to(ws, outside / "app", owner=NOBODY)  # the application's folder belongs to its user
    old = ws.pair_in(str(app))
    mirror_before = (ws.root / "mirror.env").read_bytes()

    run, release = Background.parked(ws, "staged.record", "rotate", "trading", name="swap")  # the propagation wait
    as_nobody("sh", "-c", f"mv {app} {app}.orig && ln -s {passwd} {app}")
    release.touch()
    stopped = run.finish()

    assert stopped.returncode == ExitCode.INCOMPLETE, said(stopped)
    told = said(stopped)
    assert f"{app} changed during rotation" in told
    assert f"now it is a symlink to '{passwd}'" in told
    assert "Nothing was written to it" in told
    assert passwd.read_bytes() == passwd_before, "the rotator wrote through a link swapped in mid-rotation"
    assert (ws.root / "mirror.env").read_bytes() == mirror_before
    new_id = pending_in_record(ws)
    assert new_id is not None, "the record keeps the new key for resume/rollback"
    assert new_id in ws.active_ids()
    assert ws.works(old), "the old key is still in use and active"

    # Put back as it was: resume finishes, through the pinned file, and still never touches the link's target.
    as_nobody("sh", "-c", f"rm {app} && mv {app}.orig {app}")
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert dotenv_values(app)["BLUUM_KEY_ID"] == new_id
    assert passwd.read_bytes() == passwd_before
    assert not ws.works(old)


def test_a_deployers_symlink_retargeted_to_the_tenant_file_mid_rotation_is_refused(
    outside: Path, ws: Workspace
) -> None:
    app_folder = outside / "app"
    app = move_app_to(ws, app_folder, owner=NOBODY)
    release = app_folder / "releases" / "1"
    release.mkdir(parents=True)
    shutil.move(app, release / "app.env")
    app.symlink_to("releases/1/app.env")  # the deployer's link: followed when the rotation starts
    os.lchown(app, NOBODY, NOBODY)
    tenant = ws.root / "tenant.env"
    tenant_before = tenant.read_bytes()

    run, release_file = Background.parked(ws, "staged.record", "rotate", "trading", name="retarget")
    as_nobody("ln", "-sfn", str(tenant), str(app))
    release_file.touch()
    stopped = run.finish()

    assert stopped.returncode == ExitCode.INCOMPLETE, said(stopped)
    told = said(stopped)
    assert f"the path was a symlink to 'releases/1/app.env', now it is a symlink to '{tenant}'" in told
    assert f"it resolved to {release / 'app.env'}, now it resolves to {tenant}" in told
    assert tenant.read_bytes() == tenant_before, "the tenant key was overwritten with the investor key"
    assert ws.works(ws.tenant_pair)

    # The operator undoes it; the tenant file is never touched.
    as_nobody("ln", "-sfn", "releases/1/app.env", str(app))
    rolled = ws.run("rollback", "trading")
    assert rolled.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), said(rolled)
    assert tenant.read_bytes() == tenant_before
    assert ws.works(ws.first.pair)
    assert ws.active_ids() == {ws.first.info.id}


def test_a_deployers_symlink_present_at_the_start_is_still_written_through(outside: Path, ws: Workspace) -> None:
    app_folder = outside / "app"
    app = move_app_to(ws, app_folder, owner=NOBODY)
    release = app_folder / "releases" / "2"
    release.mkdir(parents=True)
    shutil.move(app, release / "app.env")
    app.symlink_to("releases/2/app.env")

    rotated = ws.run("rotate", "trading")

    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert app.is_symlink()
    assert os.readlink(app) == "releases/2/app.env"
    assert dotenv_values(release / "app.env")["BLUUM_KEY_ID"] == ws.current_id("mirror.env", "TRADING_")
    assert not ws.works(ws.first.pair)


@pytest.mark.parametrize(
    ("mode", "owner", "who"),
    [
        (0o777, 0, "every user"),
        (0o775, 0, "its group"),
        (0o1777, NOBODY, "every user"),  # sticky, but the file is not the rotator's: its owner may swap it
    ],
)
def test_a_folder_others_can_write_is_refused_before_anything_changes(
    outside: Path, ws: Workspace, mode: int, owner: int, who: str
) -> None:
    folder = outside / "app"
    app = move_app_to(ws, folder, mode=mode)
    os.chown(app, owner, owner)
    before = files_under(outside, ws.root)
    keys = key_count(ws)

    for args in (("rotate", "trading"), ("rotate", "trading", "--emergency", "--reason", "leak")):
        refused = ws.run(*args)
        assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
        told = said(refused)
        assert f"folder {folder} (mode {oct(mode)}, owner uid 0) can be written by {who}" in told
        assert f"chmod go-w {folder}" in told
        if mode & stat.S_ISVTX:
            assert f"chown 0 {app}" in told
        assert "Nothing was changed" in told
    assert files_under(outside, ws.root) == before
    assert key_count(ws) == keys, "a key was minted for a rotation that had to be refused"


def test_a_sticky_folder_protecting_the_rotators_own_file_is_accepted(outside: Path, ws: Workspace) -> None:
    move_app_to(ws, outside / "app", mode=0o1777)  # like /tmp: others cannot rename or remove root's file
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert not ws.works(ws.first.pair)


# ----------------------------------------------------------------------------------------------- item 6


def test_a_hard_linked_file_is_refused_before_anything_changes_then_written_in_place(ws: Workspace) -> None:
    app, other = ws.root / "app.env", ws.root / "billing.env"
    os.link(app, other)  # another application reads the same file under its own name
    inode = app.stat().st_ino
    before = ws.snapshot()
    keys = key_count(ws)

    refused = ws.run("rotate", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    told = said(refused)
    assert f"{app} has 2 names (hard links)" in told
    assert 'write_mode = "in_place"' in told
    assert ws.snapshot() == before
    assert key_count(ws) == keys

    ws.edit_config('path = "app.env"', 'path = "app.env"\nwrite_mode = "in_place"')
    ws.sampled = [*ws.sampled, ("billing.env", "BLUUM_")]
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert app.stat().st_ino == inode, "the one file was rewritten, not split"
    assert app.stat().st_nlink == 2
    new_id = ws.current_id("mirror.env", "TRADING_")
    assert dotenv_values(other)["BLUUM_KEY_ID"] == new_id == ws.current_id()
    assert ws.works(ws.pair_in("billing.env"))
    assert not ws.works(ws.first.pair)


def unmount(target: Path) -> None:
    """umount, again while the file is busy (the key sampler reads it every few ms, and a loaded machine may still hold
    it open), then lazily: a mount left behind made the teardown copy the file onto itself (ci12, SameFileError)."""
    for _ in range(50):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    subprocess.run(["umount", "-l", str(target)], check=True, capture_output=True)


@pytest.fixture
def bind_mounted(ws: Workspace) -> Iterator[Path]:
    """app.env is a single-file bind mount of volume/app.env, as a container's file volume is."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a bind mount")
    volume = ws.root / "volume"
    volume.mkdir()
    source = volume / "app.env"
    shutil.copyfile(ws.root / "app.env", source)
    source.chmod(0o600)
    done = subprocess.run(["mount", "--bind", str(source), str(ws.root / "app.env")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"bind mounts are not allowed here: {done.stderr.strip()}")
    try:
        yield source
    finally:
        unmount(ws.root / "app.env")
        shutil.copyfile(source, ws.root / "app.env")  # what the application saw through the mount, for the sampler


def test_a_single_file_bind_mount_is_refused_before_anything_changes_then_written_in_place(
    ws: Workspace, bind_mounted: Path
) -> None:
    app = ws.root / "app.env"
    before = bind_mounted.read_bytes()
    keys = key_count(ws)

    refused = ws.run("rotate", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    told = said(refused)
    assert f"{app} is a mount point (a single-file bind mount" in told
    assert 'set `write_mode = "in_place"`' in told
    assert bind_mounted.read_bytes() == before
    assert key_count(ws) == keys

    ws.edit_config('path = "app.env"', 'path = "app.env"\nwrite_mode = "in_place"')
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert dotenv_values(bind_mounted)["BLUUM_KEY_ID"] == ws.current_id("mirror.env", "TRADING_")
    assert app.read_bytes() == bind_mounted.read_bytes()
    assert not ws.works(ws.first.pair)


# ----------------------------------------------------------------------------------------------- item 13


def leftovers(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def test_a_crash_between_fsync_and_rename_leaves_a_copy_the_next_run_removes(ws: Workspace) -> None:
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "dotenv.written"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    left = leftovers(ws.root, "app.env")
    assert len(left) == 1, "the crash left the temporary copy (with the new secret) beside the file"
    assert stat.S_IMODE(left[0].stat().st_mode) == 0o600
    new_id = json.loads(ws.sidecar_path("app.env").read_text())["current"]["key_id"]  # promoted in the sidecar
    assert new_id != ws.current_id()
    assert f"BLUUM_KEY_ID='{new_id}'" in left[0].read_text()

    resumed = ws.run("resume", "trading")

    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert leftovers(ws.root, "app.env") == []
    assert "removed 1 temporary copy of" in resumed.stderr
    assert str(left[0]) in resumed.stderr
    assert ws.current_id() == new_id


def test_only_the_rotators_own_leftovers_are_removed(ws: Workspace) -> None:
    """Not a file of another user, not a symlink, not another name; a leftover of ours is removed at the start."""
    ours = ws.root / ".app.env.k3j9x0_q.tmp"
    ours.write_text("BLUUM_API_SECRET=left-by-a-crash\n")
    theirs = ws.root / ".app.env.abcdefgh.tmp"
    theirs.write_text("someone else's\n")
    os.chown(theirs, NOBODY, NOBODY)
    link = ws.root / ".app.env.linklink.tmp"
    link.symlink_to(ws.root / "tenant.env")
    other_name = ws.root / ".app.env.notours.tmp.bak"
    other_name.write_text("kept\n")
    tenant_before = (ws.root / "tenant.env").read_bytes()

    rotated = ws.run("rotate", "trading")

    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert not ours.exists()
    assert theirs.exists()
    assert link.is_symlink()
    assert other_name.exists()
    assert (ws.root / "tenant.env").read_bytes() == tenant_before
    assert f"removed 1 temporary copy of {ws.root / 'app.env'}" in rotated.stderr
