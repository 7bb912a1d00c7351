"""Files as applications have them on real hosts, rotated through the CLI against the simulator: a dotenv file
reached through a symlink (release/.env -> ../shared/app.env), readable by its application's group (0640,
root:daemon). After a rotation the link is still a link, the shared file holds the new key, and mode, owner and
group are as they were; the key sampler reads through the link the whole time."""

from __future__ import annotations

import os
import stat

from dotenv import dotenv_values

from rotator.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said


def test_a_symlinked_group_readable_target_keeps_its_link_mode_owner_and_group(ws: Workspace):
    shared, release = ws.root / "shared", ws.root / "release"
    shared.mkdir()
    release.mkdir()
    target = shared / "app.env"
    os.replace(ws.root / "app.env", target)
    os.chown(target, 0, 1)  # root:daemon: the application reads it through its group
    target.chmod(0o640)
    (release / ".env").symlink_to("../shared/app.env")
    (ws.root / "app.env").symlink_to("release/.env")  # the path rotator.toml names: two links deep
    before = dotenv_values(target)["BLUUM_API_KEY"]

    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)

    assert (ws.root / "app.env").is_symlink()
    assert (release / ".env").is_symlink()
    info = target.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 1)
    after = dotenv_values(target)
    assert after["BLUUM_API_KEY"] != before
    assert after["BLUUM_KEY_ID"] == ws.current_id("mirror.env", "TRADING_")
    assert ws.works(ws.pair_in())
    assert not ws.works(ws.first.pair)
    assert sorted(p.name for p in shared.iterdir()) == ["app.env"], "no temporary file left beside the target"
