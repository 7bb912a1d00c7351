"""Files as applications have them on real hosts, rotated through the CLI against the simulator: a dotenv file
reached through a symlink (release/.env -> ../shared/app.env), readable by its application's group (0640,
root:daemon). After a rotation the link is still a link, the shared file holds the new key, and mode, owner and
group are as they were; the key sampler reads through the link the whole time."""

from __future__ import annotations

import json
import os
import stat

from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator
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


def env_file_reader(text: str) -> dict[str, str]:
    """What `docker run --env-file` and `kubectl create secret --from-env-file` read: NAME=the rest of the line."""
    values = {}
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#"):
            name, _, value = stripped.partition("=")
            values[name] = value
    return values


def read_as_env_file(ws: Workspace) -> KeyPair:
    values = env_file_reader((ws.root / "mirror.env").read_text())
    return KeyPair(values["TRADING_API_KEY"], Secret(values["TRADING_API_SECRET"]), Environment.SANDBOX)


def use_env_file_reader(ws: Workspace, *, quoted: bool) -> None:
    ws.edit_config('prefix = "TRADING_"', 'prefix = "TRADING_"\nreader = "env-file"')
    pair = ws.first.pair
    secret = pair.api_secret.reveal()
    q = "'" if quoted else ""
    (ws.root / "mirror.env").write_text(
        f"TRADING_API_KEY={q}{pair.api_key}{q}\nTRADING_API_SECRET={q}{secret}{q}\nTRADING_KEY_ID={q}{pair.key_id}{q}\n"
    )


def test_an_env_file_read_by_docker_gets_bare_values_that_work(ws: Workspace):
    use_env_file_reader(ws, quoted=False)
    assert ws.works(read_as_env_file(ws))
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    text = (ws.root / "mirror.env").read_text()
    assert "'" not in text
    assert '"' not in text
    fresh = read_as_env_file(ws)
    assert fresh.api_key != ws.first.pair.api_key
    assert ws.works(fresh), "what a Docker container reads from the rotated file is a working key"
    assert not ws.works(ws.first.pair)


def test_an_env_file_whose_values_are_quoted_is_refused_with_the_fix(ws: Workspace):
    """The state a python-dotenv-style writer leaves for a Docker reader: the container reads the quotes too."""
    use_env_file_reader(ws, quoted=True)
    files, keys = ws.snapshot(), ws.sim.keys()
    refused = ws.run("rotate", "trading")
    message = said(refused)
    assert refused.returncode == ExitCode.BAD_INPUT, message
    assert "keep the quotes as part of the value" in message, message
    assert "Remove the quotes" in message, message
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys


def test_a_sandbox_pair_handed_over_for_a_production_credential_is_refused_before_anything_changes(ws: Workspace):
    """Bluum serves sandbox and production from separate hosts with separate credentials: the simulator plays a
    production host here. A sandbox tenant pair given with --new-key-file (no environment field) must be refused."""
    with Simulator(serves="PRODUCTION", shares=ws.sim) as production:
        live_tenant = ws.sim.create_tenant_key(environment="PRODUCTION")
        ws.guard.watch(live_tenant["secret_key"])
        (ws.root / "live.env").write_text(
            f"BLUUM_API_KEY={live_tenant['public_key']}\nBLUUM_API_SECRET={live_tenant['secret_key']}\n"
            f"BLUUM_KEY_ID={live_tenant['id']}\nBLUUM_ENVIRONMENT=production\n"
        )
        (ws.root / "live.env").chmod(0o600)
        ws.add_config(
            f"""
[stores.live]
type = "env"
path = "live.env"

[credentials.live]
environment = "production"
base_url = "{production.base_url}"
issuer = "manual"
store = "live"
verify_timeout = "1s"
"""
        )
        sandbox_pair = ws.sim.create_tenant_key(environment="TEST")
        ws.guard.watch(sandbox_pair["secret_key"])
        handed = ws.root / "new-live.json"
        handed.write_text(json.dumps({"api_key": sandbox_pair["public_key"], "api_secret": sandbox_pair["secret_key"]}))
        sandbox_key = KeyPair(sandbox_pair["public_key"], Secret(sandbox_pair["secret_key"]), Environment.SANDBOX)
        assert ws.works(sandbox_key), "the pair works, at the sandbox host"
        files, keys = ws.snapshot(), ws.sim.keys()

        proc = ws.run("rotate", "live", "--new-key-file", str(handed))

        message = said(proc)
        assert proc.returncode == ExitCode.BAD_INPUT, message
        assert "not accepted by production Bluum" in message, message
        assert "another environment" in message, message
        assert ws.snapshot() == files, "nothing was deployed"
        assert ws.sim.keys() == keys


def test_rotation_state_stays_out_of_the_applications_folder(ws: Workspace):
    """The sidecar holds the current and previous secrets: `git add -A` in the app's folder must not find it."""
    ws.write_config(grace="1h")
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert not list(ws.root.glob("*.rotator.json"))
    state = ws.sidecar_path("app.env")
    assert state.parent == ws.root / "rotator-state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert json.loads(state.read_text())["previous"] is not None, "PREVIOUS is kept there during the grace window"


def test_state_an_older_version_left_beside_the_file_is_used_and_moved(ws: Workspace):
    ws.write_config(grace="1h")
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    for name in ("app.env", "mirror.env"):  # as the previous version kept it
        os.replace(ws.sidecar_path(name), ws.root / f"{name}.rotator.json")
    resumed = ws.run("resume", "trading", "--now")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert not ws.works(ws.first.pair), "the old key, known only from the old-place state, was revoked"
    assert not list(ws.root.glob("*.rotator.json")), "the old-place state was moved"
    assert json.loads(ws.sidecar_path("app.env").read_text())["record"]["phase"] == "completed"
