"""Issue 16, items 8, 16 and 20: the rotator's own state files (the env stores' stage documents, the history, the lock
files) are trusted only when nobody else could have read or swapped them, and every command says what to fix when
they are not usable, instead of crashing or asking to be retried.

Driven through the real CLI in a subprocess against the simulator, with real files; the second local user is `nobody`
(uid 65534) played through `setpriv`, so these tests run only as root. Their workspace lives under /tmp (which every
user can reach) rather than pytest's 0700 tmp_path.

- Item 8: a state folder another user owns or can write is refused (exit 2, nothing changed, the fix named), and so is
  a stage document another user owns: before, the sidecar kept the owner of whatever file was there, and that user
  read the live secret from it.
- Item 16: after `sudo rotator rotate` left root's state behind, the service user's `rotate` exited 4 ("unexpected
  PermissionError ... report it") and `status` and `run-due` crashed with a traceback. Every command now names the
  file, its owner and the `chown` that fixes it, exit 2, nothing changed; following that advice makes it work.
- Item 20: a state folder that is a plain file exited 5 ("safe to retry") for ever: it is exit 2 with the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.stage_document import StageDocument
from rotator.cli.demo import open_account
from rotator.core.errors import ExitCode
from rotator.core.model import KeyPair
from rotator.simulator import Simulator
from tests.conftest import LeakGuard
from tests.e2e.conftest import dotenv_text
from tests.e2e.second_user import NOBODY, SETPRIV, needs_nobody_to_run_the_rotator

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to play a second local user (nobody, uid 65534)",
)


@dataclass
class Shared:
    """A workspace two users share: rotator.toml and the rotator's state in `root` (root's, 0755), the dotenv
    files in `app/`."""

    root: Path
    sim: Simulator
    guard: LeakGuard
    investor: str
    pairs: list[KeyPair]

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def config(self) -> Path:
        return self.root / "rotator.toml"

    @property
    def state(self) -> Path:
        return self.root / "rotator-state"

    @property
    def history(self) -> Path:
        return self.root / "rotator-history"

    def write_config(self, state_dir: str | None = None) -> None:
        extra = f'state_dir = "{state_dir}"\n' if state_dir is not None else ""
        self.config.write_text(
            f"""
[stores.tenant]
type = "env"
path = "app/tenant.env"
{extra}
[stores.app]
type = "env"
path = "app/app.env"
{extra}
[credentials.tenant]
environment = "sandbox"
base_url = "{self.sim.base_url}"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
base_url = "{self.sim.base_url}"
issuer = "bluum"
investor_id = "{self.investor}"
manager = "tenant"
store = "app"
rotate_every = "90d"
grace = "0s"
verify_timeout = "5s"
"""
        )
        self.config.chmod(0o644)

    def run(self, *args: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
        """`rotator ARGS` in a subprocess, as root or as nobody (with a HOME of its own); output to the leak guard."""
        env = {**os.environ, "HOME": str(self.root / "home")}
        proc = subprocess.run(
            [*(SETPRIV if as_nobody else ()), sys.executable, "-m", "rotator", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            cwd=self.root / "home",
            check=False,
        )
        self.guard.check(proc.stdout, f"stdout of {args}")
        self.guard.check(proc.stderr, f"stderr of {args}")
        return proc

    def as_nobody(self, *args: str) -> subprocess.CompletedProcess[str]:
        needs_nobody_to_run_the_rotator()
        return self.run(*args, as_nobody=True)

    def give_to_nobody(self, *paths: Path) -> None:
        for path in paths:
            os.chown(path, NOBODY, NOBODY)

    def nobody_reads(self, path: Path) -> str:
        """What nobody can read of `path` (empty when it may not)."""
        proc = subprocess.run([*SETPRIV, "cat", str(path)], capture_output=True, text=True, check=False)
        return proc.stdout

    def snapshot(self) -> dict[str, tuple[bytes, int, int]]:
        """Every file of the workspace: content, owner and mode (lock files excluded, as tests/e2e/conftest.py's
        snapshot does: taking a lock is not a change)."""
        files: dict[str, tuple[bytes, int, int]] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.endswith(".lock"):
                st = path.stat()
                files[str(path.relative_to(self.root))] = (path.read_bytes(), st.st_uid, st.st_mode)
        return files

    def keys_at_bluum(self) -> list[tuple[str, str]]:
        return sorted((str(k["id"]), str(k["status"])) for k in self.sim.keys())

    def secrets(self) -> list[str]:
        return list(self.sim.all_secrets())


@pytest.fixture
def shared(sim: Simulator, leak_guard: LeakGuard) -> Iterator[Shared]:
    root = Path(tempfile.mkdtemp(prefix="rotator-trust-state-", dir="/tmp"))
    try:
        root.chmod(0o755)
        account = open_account(sim, "initial")
        workspace = Shared(root, sim, leak_guard, account.investor, [account.tenant_pair, account.first.pair])
        (root / "home").mkdir()
        workspace.give_to_nobody(root / "home")
        workspace.app.mkdir(mode=0o755)
        (workspace.app / "tenant.env").write_text(dotenv_text(account.tenant_pair, "sandbox", sim.base_url))
        (workspace.app / "app.env").write_text(dotenv_text(account.first.pair, "sandbox", sim.base_url))
        for name in ("tenant.env", "app.env"):
            (workspace.app / name).chmod(0o600)
        workspace.write_config()
        yield workspace
    finally:
        leak_guard.watch(*sim.all_secrets())
        shutil.rmtree(root, ignore_errors=True)


def _said(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def _assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    said = _said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, f"exit {proc.returncode}, wanted 2:\n{said}"
    assert "Traceback" not in said, said
    assert "report it" not in said, said
    for needle in needles:
        assert needle in said, f"{needle!r} is not in:\n{said}"


# --------------------------------------------------------------------------------------------------- item 16


def test_state_a_sudo_run_left_behind_is_named_with_its_owner_and_fix_by_every_command(shared: Shared) -> None:
    """Root rotates once (creating the state folder and the history as root's); the application's files are then
    handed to the service user. Every command the service user runs names the state, its owner and the chown, exits 2
    and changes nothing; after the chown it names the lock file root left, and after that chown too it rotates."""
    first = shared.run("rotate", "trading")
    assert first.returncode == ExitCode.OK, _said(first)
    assert shared.state.stat().st_uid == 0
    assert shared.history.stat().st_uid == 0
    lock = shared.app / "app.env.rotator.lock"
    assert lock.stat().st_uid == 0
    shared.give_to_nobody(shared.app, shared.app / "app.env", shared.app / "tenant.env")
    before, keys = shared.snapshot(), shared.keys_at_bluum()

    commands = (
        ["rotate", "trading"],
        ["rotate", "trading", "--emergency", "--reason", "leaked"],
        ["status"],
        ["run-due"],
        ["resume"],
        ["resume", "trading"],
        ["rollback", "trading"],
        ["verify", "trading"],
        ["sweep"],
    )
    for args in commands:
        proc = shared.as_nobody(*args)
        _assert_refused(proc, "belongs to root", "sudo chown -R nobody")
        named = [f"{folder} belongs to root" for folder in (shared.state, shared.history)]
        assert any(f"{text}" in _said(proc) for text in named), _said(proc)
    history = shared.as_nobody("history", "trading")
    _assert_refused(history, str(shared.history), "belongs to root", f"chown -R nobody {shared.history}")
    assert shared.snapshot() == before, "a refused command changed a file"
    assert shared.keys_at_bluum() == keys, "a refused command changed a key at Bluum"

    # The fix named, applied: now the lock file root left in the application's folder is what stands in the way.
    subprocess.run(["chown", "-R", "nobody:", str(shared.state), str(shared.history)], check=True)
    proc = shared.as_nobody("rotate", "trading")
    _assert_refused(proc, str(lock), "belongs to root", f"chown nobody {lock}")
    assert shared.keys_at_bluum() == keys

    os.chown(lock, NOBODY, NOBODY)
    done = shared.as_nobody("rotate", "trading")
    assert done.returncode == ExitCode.OK, _said(done)
    status = shared.as_nobody("status")
    assert status.returncode == ExitCode.OK, _said(status)
    history = shared.as_nobody("history", "trading")
    assert history.returncode == ExitCode.OK, _said(history)
    assert "completed" in history.stdout, _said(history)


def test_a_stage_document_root_left_in_the_service_users_folder_is_named_with_the_chown(shared: Shared) -> None:
    """The service user's state folder holds a stage document of root's (what an older `sudo rotator ...` wrote
    there): each command names that file, root and the chown, exit 2, nothing changed; after the chown it works."""
    shared.give_to_nobody(shared.app, shared.app / "app.env", shared.app / "tenant.env")
    for folder in (shared.state, shared.history):
        folder.mkdir(mode=0o700)
        shared.give_to_nobody(folder)
    first = shared.as_nobody("rotate", "trading")
    assert first.returncode == ExitCode.OK, _said(first)
    tick = shared.as_nobody("run-due")  # the tenant key's age is counted now, not by the run-due below
    assert tick.returncode == ExitCode.OK, _said(tick)
    document = shared.state / "app.json"
    os.chown(document, 0, 0)
    before, keys = shared.snapshot(), shared.keys_at_bluum()

    for args in (["rotate", "trading"], ["status"], ["run-due"], ["resume", "trading"]):
        proc = shared.as_nobody(*args)
        _assert_refused(proc, f"{document} belongs to root", f"sudo chown nobody {document}")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys

    os.chown(document, NOBODY, NOBODY)
    done = shared.as_nobody("rotate", "trading")
    assert done.returncode == ExitCode.OK, _said(done)


def test_a_root_run_refuses_state_the_service_user_owns_instead_of_leaving_roots_behind(shared: Shared) -> None:
    """The other half of item 16: `sudo rotator rotate` on the service user's state folder stops before anything
    changes (exit 2) and says to run as that user, instead of leaving root's files that break the service."""
    shared.give_to_nobody(shared.app, shared.app / "app.env", shared.app / "tenant.env")
    for folder in (shared.state, shared.history):  # as `install -d -o nobody -m 700` makes them
        folder.mkdir(mode=0o700)
        shared.give_to_nobody(folder)
    first = shared.as_nobody("rotate", "trading")
    assert first.returncode == ExitCode.OK, _said(first)
    before, keys = shared.snapshot(), shared.keys_at_bluum()

    proc = shared.run("rotate", "trading")
    _assert_refused(proc, str(shared.state), "belongs to nobody", "sudo -u nobody rotator")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys
    assert all(path.stat().st_uid == NOBODY for path in [shared.state, *shared.state.iterdir()])


# --------------------------------------------------------------------------------------------------- item 8


@pytest.mark.parametrize(
    ("owner", "mode", "said"),
    [
        (NOBODY, 0o755, "belongs to nobody"),
        (0, 0o777, "can be written by every user"),
        (0, 0o1777, "can be written by every user"),
        (0, 0o775, "can be written by its group"),
    ],
    ids=["owned-by-another-user", "world-writable", "world-writable-sticky", "group-writable"],
)
def test_a_state_folder_another_user_controls_is_refused_and_nobody_reads_a_secret(
    shared: Shared, owner: int, mode: int, said: str
) -> None:
    """state_dir in a folder another user controls: that user plants a stage document of its own there (before, the
    rotator kept the planted file's owner and wrote the live secrets into it). Refused, exit 2, nothing changed."""
    folder = shared.root / "shared-state"
    folder.mkdir()
    os.chown(folder, owner, owner)
    folder.chmod(mode)
    planted = folder / "app.json"
    planted.write_text(StageDocument().to_json())
    os.chown(planted, NOBODY, NOBODY)
    planted.chmod(0o600)
    shared.write_config(state_dir=str(folder))
    before, keys = shared.snapshot(), shared.keys_at_bluum()

    proc = shared.run("rotate", "trading")
    readable = shared.nobody_reads(planted)
    leaked = sum(secret in readable for secret in shared.secrets())  # a count: the assertion must not show a secret
    assert leaked == 0, f"nobody read {leaked} secret(s) from the stage document it planted"
    _assert_refused(proc, str(folder), said, "state_dir of [stores.")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys


def test_a_stage_document_another_user_owns_is_refused_not_written_into(shared: Shared) -> None:
    """The state folder is root's and closed, but the document in it is nobody's (left from an earlier setup): root
    neither reads nor rewrites it (before, it wrote the new secrets into it, keeping nobody as the owner)."""
    shared.state.mkdir(mode=0o700)
    planted = shared.state / "app.json"
    planted.write_text(StageDocument().to_json())
    os.chown(planted, NOBODY, NOBODY)
    planted.chmod(0o600)
    before, keys = shared.snapshot(), shared.keys_at_bluum()

    proc = shared.run("rotate", "trading")
    _assert_refused(proc, str(planted), "belongs to nobody", f"chown root {planted}")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys
    assert sum(secret in planted.read_text() for secret in shared.secrets()) == 0


def test_the_rotators_own_files_are_new_files_of_the_running_user_mode_0600(shared: Shared) -> None:
    """A first rotation as the service user: the state folder is 0700 and every stage document is that user's, 0600,
    whatever the umask."""
    shared.give_to_nobody(shared.root, shared.app, shared.app / "app.env", shared.app / "tenant.env")
    proc = shared.as_nobody("rotate", "trading")
    assert proc.returncode == ExitCode.OK, _said(proc)
    assert shared.state.stat().st_uid == NOBODY
    assert shared.state.stat().st_mode & 0o777 == 0o700
    documents = list(shared.state.iterdir())
    assert documents, "no stage document was written"
    for path in documents:
        st = path.lstat()
        assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o600), path


# --------------------------------------------------------------------------------------------------- item 20


def test_a_state_folder_that_is_a_plain_file_is_a_configuration_problem(shared: Shared) -> None:
    """state_dir naming a plain file: every command exits 2 (not 5, "safe to retry"), naming the file and the fix."""
    plain = shared.root / "state-file"
    plain.write_text("not a folder\n")
    shared.write_config(state_dir=str(plain))
    before, keys = shared.snapshot(), shared.keys_at_bluum()
    for args in (
        ["rotate", "trading"],
        ["rotate", "trading", "--emergency", "--reason", "leak"],
        ["status"],
        ["run-due"],
        ["resume"],
    ):
        proc = shared.run(*args)
        _assert_refused(proc, f"{plain} is a file, not a folder", "state_dir of [stores.")
    assert shared.snapshot() == before
    assert shared.keys_at_bluum() == keys
