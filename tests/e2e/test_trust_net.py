"""Issue 16, items 4 and 9, at the real CLI: what a second local user, or a Vault address and a redirect, could turn
the rotator against.

Item 4: `[bluum] shared_budget_dir` is a folder several users share (the daemon's user, root for an emergency). A
member of its group (`nobody`, through `setpriv`) plants a symbolic link named like a key pair's window file, pointing
at a root-only file; root's rotation must not write through it. A folder every user may write (not sticky) is refused
before anything changes; and the files root makes there can be used by the group's other users.

Item 9: a Vault store over plain http to a host off loopback is refused before anything is contacted unless the store
says `allow_insecure_http = true`; a Vault that answers with a redirect to another origin never gets the token
forwarded there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.bluum.throttle import key_hash
from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.second_user import NOBODY, SETPRIV, folder_nobody_can_reach, needs_nobody_to_run_the_rotator
from tests.e2e.test_review_scenarios import said
from tests.recording_http import RecordingHandler, RecordingServer, json_reply, redirecting_to


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` as uid/gid 65534 with no other groups (the second local user)."""
    return subprocess.run(
        [*SETPRIV, *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder under /tmp that `nobody` can reach (pytest's tmp_path is 0700 root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to play a second local user")
    yield from folder_nobody_can_reach("trust-net-")


def group_folder(where: Path) -> Path:
    """The budget folder as the README says to make it: root's, group nogroup, 2770 (nobody is a member)."""
    folder = where / "budget"
    folder.mkdir()
    os.chown(folder, 0, NOBODY)
    folder.chmod(0o2770)
    return folder


def use_budget(ws: Workspace, folder: Path) -> None:
    ws.add_config(f'\n[bluum]\nshared_budget_dir = "{folder}"\n')


def test_a_link_planted_by_a_group_member_is_never_written_through(ws: Workspace, shared_tmp: Path) -> None:
    precious = shared_tmp / "root-only"
    precious.write_text("root's data\n")
    precious.chmod(0o600)
    folder = group_folder(shared_tmp)
    window = folder / f"{key_hash(ws.tenant_pair.api_key)}.window"  # the tenant key pays for the rotation
    planted = as_nobody(sys.executable, "-c", f"import os; os.symlink({str(precious)!r}, {str(window)!r})")
    assert planted.returncode == 0, planted.stderr
    assert window.is_symlink()
    assert window.lstat().st_uid == NOBODY
    use_budget(ws, folder)

    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert precious.read_text() == "root's data\n", "root wrote through the link planted by another user"
    assert precious.stat().st_mode & 0o777 == 0o600
    assert window.is_symlink(), "the link is left for a person to look at"
    assert "is a symbolic link" in rotated.stderr
    assert "paces itself alone" in rotated.stderr
    assert ws.current_id() != ws.first.info.id, "the rotation went ahead, paced by this process alone"


def test_a_hard_link_to_a_root_file_is_never_written_through(ws: Workspace, shared_tmp: Path) -> None:
    """Where fs.protected_hardlinks is off, a group member can link a file it cannot read; root's hand plays that."""
    precious = shared_tmp / "root-only"
    precious.write_text("root's data\n")
    precious.chmod(0o600)
    folder = group_folder(shared_tmp)
    window = folder / f"{key_hash(ws.tenant_pair.api_key)}.window"
    os.link(precious, window)
    use_budget(ws, folder)

    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert precious.read_text() == "root's data\n"
    assert "has 2 names" in rotated.stderr


def test_a_folder_every_user_may_write_is_refused_before_anything_changes(ws: Workspace, shared_tmp: Path) -> None:
    folder = shared_tmp / "budget"
    folder.mkdir()
    folder.chmod(0o777)
    use_budget(ws, folder)
    before = (ws.snapshot(), len(ws.investor_keys()))

    refused = ws.run("rotate", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    message = said(refused)
    assert f"shared_budget_dir {folder}" in message
    assert "every user of this host may write in it" in message
    assert "chmod 2770" in message
    assert "chmod +t" in message
    assert (ws.snapshot(), len(ws.investor_keys())) == before
    assert list(folder.iterdir()) == []

    folder.chmod(0o1777)  # sticky: only a file's owner may replace it, so it is usable
    assert ws.run("rotate", "trading").returncode == ExitCode.OK


def test_the_window_files_root_makes_are_shared_with_the_group(ws: Workspace, shared_tmp: Path) -> None:
    """The daemon's user and root (an operator's emergency) count in one window: root's file is 0660 and the
    folder's group, whatever root's umask, so `nobody` (a member) counts its sends in the same file."""
    folder = group_folder(shared_tmp)
    use_budget(ws, folder)
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    window = folder / f"{key_hash(ws.tenant_pair.api_key)}.window"
    made = window.stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o7777) == (0, NOBODY, 0o660)
    sent_by_root = len(window.read_text().split())
    assert sent_by_root >= 1
    # nobody counts a send at root's last one: at the time it runs (a loaded machine can take over a second to start
    # it), root's sends would have left the window and been dropped, and the count below would prove nothing.
    last = max(float(t) for t in window.read_text().split())

    script = (
        "import sys, time; from pathlib import Path; from rotator.bluum.shared_window import SharedWindow; "
        f"print(SharedWindow(Path({str(window)!r}), 0.05).admit({last!r}, 1000))"
    )
    needs_nobody_to_run_the_rotator()
    shared = as_nobody(sys.executable, "-c", script)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.strip() == "0.0", shared.stdout + shared.stderr  # None would mean "pacing alone"
    assert len(window.read_text().split()) == sent_by_root + 1
    assert window.stat().st_uid == 0, "nobody counted in root's file, it did not replace it"


def test_the_folder_the_rotator_makes_is_setgid_and_group_only(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "run" / "bluum-rotator"
    use_budget(ws, folder)
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    assert folder.stat().st_mode & 0o7777 == 0o2770
    assert [p.stat().st_mode & 0o777 for p in folder.iterdir()] == [0o660] * len(list(folder.iterdir()))


# ------------------------------------------------------------------------------------------------ item 9: Vault


@pytest.fixture
def redirecting() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    """A "Vault" on loopback that answers every request with 307 to a second server on another port."""

    def elsewhere(handler: RecordingHandler) -> None:
        json_reply(handler, b'{"data": {"data": {}, "metadata": {"version": 1}}}')

    with redirecting_to(elsewhere) as pair:
        yield pair


TOKEN = "hvs.trust-net-token-1234567890"


def vault_store(url: str, extra: str = "") -> str:
    return f"""
[stores.vault]
type = "vault"
url = "{url}"
path = "bluum/trading"
timeout = 2
{extra}
"""


def use_vault_mirror(ws: Workspace, url: str, extra: str = "") -> None:
    """The trading credential also deploys to a Vault store at `url`."""
    ws.add_config(vault_store(url, extra))
    ws.edit_config('also_deploy_to = ["mirror"]', 'also_deploy_to = ["mirror", "vault"]')


def test_a_redirect_to_another_origin_never_gets_the_token(
    ws: Workspace, redirecting: tuple[RecordingServer, RecordingServer]
) -> None:
    first, other = redirecting
    ws.guard.watch(TOKEN)
    use_vault_mirror(ws, first.url)
    before = (ws.snapshot(), len(ws.investor_keys()))

    rotated = ws.run("rotate", "trading", env={"VAULT_TOKEN": TOKEN})

    assert first.seen, "the store did talk to Vault"
    assert all(token is None for _, _, token, _ in other.seen), f"the token went to {other.url}: {other.seen}"
    assert rotated.returncode == ExitCode.BAD_INPUT, said(rotated)
    message = said(rotated)
    assert f"redirected to {other.url}" in message, message
    assert "the token is never sent to another address" in message
    assert (ws.snapshot(), len(ws.investor_keys())) == before


@pytest.mark.parametrize("url", ["http://10.1.2.3:8200", "http://vault.example.com:8200", "http://[fd00::1]:8200"])
def test_plain_http_off_loopback_is_refused_before_anything_is_contacted(ws: Workspace, url: str) -> None:
    use_vault_mirror(ws, url)
    before = (ws.snapshot(), len(ws.investor_keys()))
    for args in (("status",), ("rotate", "trading"), ("rotate", "trading", "--dry-run")):
        refused = ws.run(*args, env={"VAULT_TOKEN": TOKEN})
        assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
        message = said(refused)
        assert "stores.vault.url" in message, message
        assert "plain http" in message
        assert "allow_insecure_http = true" in message
        assert "https://" in message
    assert (ws.snapshot(), len(ws.investor_keys())) == before


def test_vault_addr_over_plain_http_off_loopback_is_refused_too(ws: Workspace) -> None:
    ws.add_config(vault_store("").replace('url = ""\n', ""))
    ws.edit_config('also_deploy_to = ["mirror"]', 'also_deploy_to = ["mirror", "vault"]')
    refused = ws.run("rotate", "trading", env={"VAULT_TOKEN": TOKEN, "VAULT_ADDR": "http://10.1.2.3:8200"})
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "VAULT_ADDR" in said(refused)
    assert "allow_insecure_http = true" in said(refused)


def test_allow_insecure_http_lets_a_deployer_choose_plain_http(ws: Workspace) -> None:
    """With the option the address passes the check and the store goes on to log in there (what answers at that
    address, if anything, depends on the network: only "it was not refused for plain http" is asserted)."""
    use_vault_mirror(ws, "http://10.255.255.1:8200", "allow_insecure_http = true")
    answered = ws.run("verify", "trading", env={"VAULT_TOKEN": TOKEN})
    assert answered.returncode != ExitCode.OK, said(answered)
    assert "plain http" not in said(answered)
    assert "logging in to Vault" in said(answered), said(answered)
