"""An outside review of the fixes for issue 16 (items 4, 5, 7-10, 16-21): the variants the fixes' own tests did not
try, each driven through the real CLI (or the real daemon) against the simulator, with real files and a second local
user (`nobody`, uid 65534, played through `setpriv` or a `chown`) where the finding needs one.

- A symbolic link on the way to rotator.toml or to a state folder whose own folder belongs to another user, two
  hops away (`a -> b/link -> c`): the folder `b` is on neither the written path nor the resolved one, so the checks
  judged neither, and its owner could point the link at a file of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.second_user import NOBODY
from tests.e2e.test_review_scenarios import said
from tests.e2e.test_trust_state import Shared, _assert_refused, shared  # noqa: F401 - fixture


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test hands a folder to uid 65534 (chown)")


def status_with(ws: Workspace, config: Path, what: str) -> subprocess.CompletedProcess[str]:
    """`rotator --config CONFIG status` as a deployer types it (no -vv, none of the workspace's variables), for a
    rotator.toml the workspace did not write where it keeps its own; the output goes through the leak guard."""
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ws.root,
        check=False,
    )
    ws.guard.check(proc.stdout + proc.stderr, what)
    return proc


def config_with_absolute_paths(ws: Workspace) -> str:
    """The workspace's rotator.toml with every dotenv path and state folder absolute, to be read from elsewhere."""
    text = ws.config.read_text()
    for name in ("tenant.env", "app.env", "mirror.env"):
        text = text.replace(f'"{name}"', f'"{ws.root / name}"\nstate_dir = "{ws.root / "rotator-state"}"')
    return text


# --------------------------------------------------------------------------------------------- links two hops away


def test_a_config_reached_through_a_link_in_another_users_folder_is_refused(ws: Workspace) -> None:
    """rotator.toml -> nobodys/cfg/rotator.toml, and nobodys/cfg -> real/: every file is root's, but nobody owns the
    folder that holds the middle link and could point it at a rotator.toml of their own (with a reload command run as
    root). On main the file was trusted (exit 0)."""
    needs_root()
    real = ws.root / "real"
    real.mkdir(mode=0o755)
    shutil.move(ws.config, real / "rotator.toml")
    nobodys = ws.root / "nobodys"
    nobodys.mkdir(mode=0o755)
    (nobodys / "cfg").symlink_to(real)
    os.chown(nobodys, NOBODY, NOBODY)
    ws.config.symlink_to(nobodys / "cfg" / "rotator.toml")
    keys_before = ws.sim.keys()
    proc = ws.run("rotate", "trading")
    text = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, text
    assert f"the folder {nobodys} belongs to nobody (uid {NOBODY})" in text, text
    assert f"chown root {nobodys}" in text, text
    assert ws.sim.keys() == keys_before, "nothing was minted"
    os.chown(nobodys, 0, 0)
    assert ws.run("status").returncode == ExitCode.OK, "trusted once the folder is root's"


def test_a_state_folder_reached_through_a_link_in_another_users_folder_is_refused(shared: Shared) -> None:  # noqa: F811
    """state_dir -> nobodys/link, and nobodys/link -> a folder of root's: nobody could point the link at a folder of
    their own and read the stage document (which holds the new secret). On main the rotation ran (exit 0)."""
    real = shared.root / "real-state"
    real.mkdir(mode=0o700)
    nobodys = shared.root / "nobodys"
    nobodys.mkdir(mode=0o755)
    (nobodys / "link").symlink_to(real)
    os.chown(nobodys, NOBODY, NOBODY)
    (shared.root / "state").symlink_to(nobodys / "link")
    shared.write_config(state_dir=str(shared.root / "state"))
    before, keys = shared.snapshot(), shared.keys_at_bluum()
    proc = shared.run("rotate", "trading")
    _assert_refused(proc, f"{nobodys} (above {shared.root / 'state'}) belongs to nobody")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys
    os.chown(nobodys, 0, 0)
    assert shared.run("rotate", "trading").returncode == ExitCode.OK


# --------------------------------------------------------------------------------------------- history lines


@pytest.mark.parametrize(
    "damaged",
    [
        b'{"at": 1, "event": null, "message": "an entry with a null event"}\n',
        b'{"event": ["completed"], "message": "an event that is a list"}\n',
        b'{"time": "2026-01-01T00:00:00Z", "event": {"kind": "started"}}\n',
        b"\x00\x00\x00\x00\x00\x00\x00\x00\n",  # what a crash leaves in a file's last block on some file systems
    ],
)
def test_a_history_line_that_is_json_but_not_an_entry_is_skipped_and_reported(ws: Workspace, damaged: bytes) -> None:
    """A line that parses as a JSON object but whose fields are not an entry's (an event that is null, a list, an
    object) made `rotator history` crash with a traceback (exit 1) on main: it is skipped and reported like a line
    that is not JSON, and the others are shown."""
    first = ws.run("rotate", "trading")
    assert first.returncode == ExitCode.OK, said(first)
    history = ws.root / "rotator-history" / "trading.jsonl"
    lines = history.read_bytes().splitlines(keepends=True)
    history.write_bytes(lines[0] + damaged + b"".join(lines[1:]))
    shown = ws.run("history", "trading")
    assert shown.returncode == ExitCode.OK, said(shown)
    assert "Traceback" not in said(shown)
    assert "skipped 1 damaged line(s) (not a UTF-8 JSON entry): line 2" in shown.stderr, said(shown)
    shown_entries = [line for line in shown.stdout.splitlines() if not line.startswith(" ")]
    assert len(shown_entries) == len(lines), "every other entry is shown (a started entry adds a 'by' line)"
    as_json = ws.run("history", "trading", "--json")
    assert as_json.returncode == ExitCode.OK, said(as_json)
    assert len(json.loads(as_json.stdout)) == len(lines)


# --------------------------------------------------------------------------------------------- the lock file


def test_a_lock_file_that_is_a_hard_link_to_another_file_is_refused(shared: Shared) -> None:  # noqa: F811
    """Root rotates over the service user's application folder (the README's cron as root, the files the
    application's): the lock file `<file>.rotator.lock` is the one file of the rotator's own that sits in a folder
    another user controls. A hard link planted there under that name (on a host with fs.protected_hardlinks=0, any
    file: here root makes it, as such a user could) was opened, checked for its owner only (root's: passes), chmod-ed
    to 0600 and truncated to the lock's JSON: root emptied the file it points to. It is refused like a hard-linked
    shared-budget file: exit 2, the file named, the other file untouched."""
    shared.give_to_nobody(shared.app)
    victim = shared.root / "victim"
    victim.write_text("root's file, not a lock\n")
    victim.chmod(0o644)
    lock = shared.app / "app.env.rotator.lock"
    lock.unlink(missing_ok=True)
    os.link(victim, lock)
    keys = shared.keys_at_bluum()
    proc = shared.run("rotate", "trading")
    _assert_refused(proc, str(lock), "hard link")
    assert victim.read_text() == "root's file, not a lock\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert shared.keys_at_bluum() == keys
    lock.unlink()
    assert shared.run("rotate", "trading").returncode == ExitCode.OK, "a fresh lock file is made"


# --------------------------------------------------------------------------------------------- read-only mounts


def test_a_read_only_mount_of_another_users_folder_is_still_that_users_to_change(ws: Workspace) -> None:
    """rotator.toml in a folder of nobody's, bind-mounted read-only where the rotator reads it (a container's `-v
    /home/alice/cfg:/etc/bluum:ro`). The mount is read-only here, but nobody changes the file where it is mounted
    writable, and the rotator reads the change at its next run. On main the read-only flag waived every rule (exit 0);
    the owner rule still holds (a ConfigMap's files are root's and still pass)."""
    needs_root()
    source, mounted = ws.root / "alices", ws.root / "etc"
    source.mkdir(mode=0o755)
    mounted.mkdir(mode=0o755)
    text = config_with_absolute_paths(ws)
    (source / "rotator.toml").write_text(text)
    (source / "rotator.toml").chmod(0o644)
    os.chown(source / "rotator.toml", NOBODY, NOBODY)
    os.chown(source, NOBODY, NOBODY)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("needs mount(8) to make a read-only bind mount")
    if subprocess.run([mount, "--bind", str(source), str(mounted)], check=False).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run([mount, "-o", "remount,ro,bind", str(mounted)], check=True)
        proc = status_with(ws, mounted / "rotator.toml", "status over a read-only mount")
        assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
        assert "refused: it decides which commands" in proc.stderr, said(proc)
        assert f"belongs to nobody (uid {NOBODY})" in proc.stderr, said(proc)
        os.chown(source / "rotator.toml", 0, 0)
        os.chown(source, 0, 0)
        source.chmod(0o777)  # root's, and the mount is read-only: the mode bits cannot be used through it
        again = status_with(ws, mounted / "rotator.toml", "status again")
        assert again.returncode == ExitCode.OK, said(again)
    finally:
        subprocess.run(["umount", str(mounted)], check=False)


# --------------------------------------------------------------------------------------------- the README's layouts


def test_the_readmes_service_user_layout_works_and_root_is_told_to_use_that_user(shared: Shared) -> None:  # noqa: F811
    """The README's advice for a service user, followed to the letter: rotator.toml root's (0640, the user's group)
    in root's folder, `install -d -o USER -m 700` for the state and history folders, the dotenv folder the user's.
    The user rotates (exit 0); a `sudo rotator rotate` is refused before anything changes, naming the user to run
    as."""
    os.chown(shared.config, 0, NOBODY)
    shared.config.chmod(0o640)
    for folder in (shared.state, shared.history):
        subprocess.run(["install", "-d", "-o", str(NOBODY), "-m", "700", str(folder)], check=True)
    shared.give_to_nobody(shared.app, shared.app / "app.env", shared.app / "tenant.env")
    rotated = shared.as_nobody("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, rotated.stdout + rotated.stderr
    before, keys = shared.snapshot(), shared.keys_at_bluum()
    as_root = shared.run("rotate", "trading")
    _assert_refused(as_root, "belongs to nobody", "sudo -u nobody rotator")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys


# --------------------------------------------------------------------------------------------- shared_budget_dir


def test_the_budget_folder_made_is_given_its_mode_without_following_a_link_swapped_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[bluum] shared_budget_dir` is made when missing, then given mode 2770. Between the two, whoever can write its
    parent can swap the new folder for a link: `os.chmod` followed it and root made the link's target 2770 (here a
    0600 file standing for /etc/shadow). Played deterministically: the swap happens as the folder is made. The mode
    is set on the folder as opened without following links; the link is then refused (exit 2 through ConfigError)."""
    from rotator.bluum.shared_window import check_budget_dir
    from rotator.core.errors import ConfigError

    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    folder = tmp_path / "shared" / "budget"
    real_mkdir = Path.mkdir

    def mkdir_then_swapped(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == folder:  # another user of the parent folder, right after the mkdir
            self.rmdir()
            self.symlink_to(victim)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_swapped)
    with pytest.raises(ConfigError, match="symbolic link"):
        check_budget_dir(folder)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600, "the link's target was not touched"


# --------------------------------------------------------------------------------------------- reload programs


@pytest.mark.parametrize("how", ["owned_by_nobody", "world_writable", "folder_of_nobody"])
def test_a_reload_program_another_user_can_change_is_refused_before_anything_is_created(
    ws: Workspace, how: str
) -> None:
    """The README's `{ command = ["./reload-lambda.sh"] }`, a script beside rotator.toml: rotator.toml itself is
    judged (item 10), but the program it names was not, and the rotator runs it as root after every rotation. A
    script another user owns or can write (or one in their folder) is that user's command run as root. On main the
    rotation ran it (exit 0); it is refused at preflight, exit 2, nothing minted, the script not run."""
    needs_root()
    marker = ws.root / "ran-as-root"
    folder = ws.root / "scripts" if how == "folder_of_nobody" else ws.root
    folder.mkdir(exist_ok=True, mode=0o755)
    script = folder / "reload.sh"
    script.write_text(f"#!/bin/sh\nid -u > {marker}\n")
    script.chmod(0o755)
    expected = f"belongs to nobody (uid {NOBODY})"
    if how == "owned_by_nobody":
        os.chown(script, NOBODY, NOBODY)
    elif how == "world_writable":
        script.chmod(0o777)
        expected = "can be written by everyone"
    else:
        os.chown(folder, NOBODY, NOBODY)
    program = f"./{script.relative_to(ws.root)}"
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreload = [{{ command = ["{program}"] }}]\n')
    keys_before = ws.sim.keys()
    before = ws.snapshot()
    proc = ws.run("rotate", "trading")
    text = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, text
    assert expected in text, text
    assert "Nothing was changed" in text, text
    assert not marker.exists(), "the other user's program ran as root"
    assert ws.sim.keys() == keys_before, "nothing was minted"
    assert ws.snapshot() == before
    dry = ws.run("rotate", "trading", "--dry-run")
    assert dry.returncode == ExitCode.BAD_INPUT, said(dry)
    assert expected in said(dry)


# --------------------------------------------------------------------------------------------- state folders (item 20)


def test_a_state_folder_that_is_a_link_loop_or_leads_nowhere_is_a_configuration_problem(
    shared: Shared,  # noqa: F811
) -> None:
    """Item 20's variants: a state_dir that is a symbolic link loop made every command exit 5 ("safe to retry") for
    ever on main, so monitoring retried and never paged; a link to a folder that does not exist was called "a file,
    not a folder". Both are exit 2 with what the link is and the fix, nothing changed."""
    (shared.root / "a").symlink_to(shared.root / "b")
    (shared.root / "b").symlink_to(shared.root / "a")
    shared.write_config(state_dir=str(shared.root / "a"))
    before, keys = shared.snapshot(), shared.keys_at_bluum()
    for args in (["rotate", "trading"], ["status"], ["run-due"]):
        _assert_refused(shared.run(*args), "a symbolic link on its way leads back to itself")
    dangling = shared.root / "dangling"
    dangling.symlink_to(shared.root / "nowhere")
    shared.write_config(state_dir=str(dangling))
    _assert_refused(shared.run("rotate", "trading"), f"{dangling} is a symbolic link to {shared.root / 'nowhere'}")
    assert shared.keys_at_bluum() == keys
    assert {k: v for k, v in shared.snapshot().items() if k != "rotator.toml"} == {
        k: v for k, v in before.items() if k != "rotator.toml"
    }


def test_a_config_reached_through_another_users_link_in_a_sticky_folder_is_refused(ws: Workspace) -> None:
    """`--config /tmp/cfg/rotator.toml` where /tmp/cfg is a symbolic link that nobody made: /tmp's sticky bit lets
    nobody (its owner) replace that link whenever they like, so they choose which rotator.toml root reads. The folders
    were judged (/tmp: sticky, fine) but the link's owner was not; on main the file was trusted (exit 0)."""
    needs_root()
    link = Path("/tmp") / f"rotator-review-cfg-{uuid.uuid4().hex}"
    link.symlink_to(ws.root)
    try:
        os.lchown(link, NOBODY, NOBODY)
        proc = status_with(ws, link / "rotator.toml", "status through nobody's link")
        assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
        assert f"the symbolic link {link} belongs to nobody (uid {NOBODY})" in proc.stderr, said(proc)
        os.lchown(link, 0, 0)
        again = status_with(ws, link / "rotator.toml", "status again")
        assert again.returncode == ExitCode.OK, said(again)
    finally:
        link.unlink()


def test_a_state_dir_with_dot_dot_after_a_link_is_judged_where_the_system_goes(shared: Shared) -> None:  # noqa: F811
    """state_dir = "ROOT/lnk/../state", lnk -> a folder inside nobody's: the check normalized the text (ROOT/state,
    root's) while the system goes up from where the link leads (into nobody's folder), so the stage documents were
    made where nobody could swap them. Judged as the system resolves it: exit 2, nobody's folder named."""
    nobodys = shared.root / "nobodys"
    (nobodys / "sub").mkdir(parents=True, mode=0o755)
    os.chown(nobodys, NOBODY, NOBODY)
    (shared.root / "lnk").symlink_to(nobodys / "sub")
    shared.write_config(state_dir=f"{shared.root}/lnk/../state")
    keys = shared.keys_at_bluum()
    _assert_refused(shared.run("rotate", "trading"), f"{nobodys} (above {shared.root}/lnk/../state) belongs to nobody")
    assert not (nobodys / "state").exists()
    assert shared.keys_at_bluum() == keys


def test_a_folder_inside_a_read_only_view_is_judged_by_its_modes(ws: Workspace) -> None:
    """systemd's ProtectSystem=strict (deploy/bluum-rotator.service) shows the daemon every folder outside
    ReadWritePaths on a read-only mount, so the read-only waiver made it trust rotator.toml in a folder every user may
    write (outside the unit, where they write it): on main (exit 0) while the same command outside the unit exits 2.
    Played with a read-only bind mount of a folder holding that world-writable folder. Only the mount point of a
    read-only volume (a ConfigMap's) has its modes waived."""
    needs_root()
    source, view = ws.root / "src", ws.root / "view"
    (source / "shared").mkdir(parents=True, mode=0o755)
    (source / "shared").chmod(0o777)  # anyone may replace rotator.toml here (outside the read-only view)
    view.mkdir(mode=0o755)
    text = config_with_absolute_paths(ws)
    (source / "shared" / "rotator.toml").write_text(text)
    if subprocess.run(["mount", "--bind", str(source), str(view)], check=False).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        proc = status_with(ws, view / "shared" / "rotator.toml", "status inside a read-only view")
        assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
        assert f"the folder {view / 'shared'} (drwxrwxrwx) can be written by everyone" in proc.stderr, said(proc)
    finally:
        subprocess.run(["umount", str(view)], check=False)
