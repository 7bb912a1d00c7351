"""A Doppler config as a deploy target, end to end: the real `rotator` CLI in a subprocess, the Bluum simulator, a
dotenv primary (`app`) and the Doppler stand-in as `also_deploy_to` (named `mirror`, so the store-named fault points
`stage.mirror`, `promote.mirror`, `clear.mirror` and `restore.mirror` are Doppler's); once with a Vault primary on
OpenBao instead.

The sampler watches what `doppler run` would inject (the config's computed values) beside app.env all through each
test: a key Bluum does not accept there fails the test (I1). The Doppler token is watched by the leak guard, so it
appearing in any output, log line or message fails every test here.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.doppler_standin import DopplerStandIn, doppler_standin
from tests.e2e.conftest import Workspace
from tests.e2e.sampler import PairSource
from tests.e2e.vault_primary import VaultPrimary
from tests.openbao import OpenBao

TOKEN = "dp.st.prd.e2e9f3b1c7d2a4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
TOKEN_ENV = "ROTATOR_TEST_DOPPLER_TOKEN"
MIRROR_ENV_TABLE = '[stores.mirror]\ntype = "env"\npath = "mirror.env"\nprefix = "TRADING_"\n'


@pytest.fixture
def doppler(ws: Workspace) -> Iterator[DopplerStandIn]:
    """`ws` with its `mirror` store moved from mirror.env to the Doppler config backend/prd, holding the first key."""
    with doppler_standin() as standin:
        first = ws.first.pair
        standin.add_config(
            "backend",
            "prd",
            {
                "APP_NAME": "trader",
                "BLUUM_API_KEY": first.api_key,
                "BLUUM_API_SECRET": first.api_secret.reveal(),
                "BLUUM_KEY_ID": str(first.key_id),
            },
        )
        standin.add_token(TOKEN, project="backend", config="prd")
        ws.guard.watch(TOKEN)
        ws.env[TOKEN_ENV] = TOKEN
        ws.edit_config(MIRROR_ENV_TABLE, _doppler_table(standin.url))
        with ws.sampling_paused():
            ws.sampled = [s for s in ws.sampled if s != ("mirror.env", "TRADING_")]
            ws.sampled.append(PairSource("doppler backend/prd", lambda: _injected(standin)))
        yield standin


def _doppler_table(url: str) -> str:
    return (
        f'[stores.mirror]\ntype = "doppler"\nproject = "backend"\nconfig = "prd"\nurl = "{url}"\n'
        f'token_env = "{TOKEN_ENV}"\nfields = ["key_id"]\ntimeout = 5\n'
    )


def _injected(standin: DopplerStandIn) -> tuple[str | None, str | None, str | None]:
    secrets = standin.secrets("backend", "prd")
    return secrets.get("BLUUM_API_KEY"), secrets.get("BLUUM_API_SECRET"), secrets.get("BLUUM_KEY_ID")


def _doppler_id(standin: DopplerStandIn) -> str | None:
    return standin.secrets("backend", "prd").get("BLUUM_KEY_ID")


def test_rotate_deploys_to_doppler_and_the_token_never_shows(ws: Workspace, doppler: DopplerStandIn) -> None:
    first = ws.first.info.id
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, rotated.stderr
    new = ws.current_id()
    assert new != first
    assert _doppler_id(doppler) == new
    assert doppler.secrets("backend", "prd")["APP_NAME"] == "trader", "the config's other secrets are kept"
    assert ws.active_ids() == {new}, "the old key was revoked once Doppler showed the new one"
    status = ws.run("status", "--json")
    verify = ws.run("verify", "trading")
    assert verify.returncode == ExitCode.OK, verify.stderr
    for output in (rotated.stdout, rotated.stderr, status.stdout, status.stderr, verify.stdout, verify.stderr):
        assert TOKEN not in output


def test_a_bad_token_stops_the_rotation_before_anything_changes(ws: Workspace, doppler: DopplerStandIn) -> None:
    ws.env[TOKEN_ENV] = "dp.st.prd.revoked0000000000000000000000000000000000"
    ws.guard.watch(ws.env[TOKEN_ENV])
    before = ws.snapshot()
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode != ExitCode.OK
    assert f"${TOKEN_ENV} is not valid" in rotated.stderr
    assert ws.active_ids() == {ws.first.info.id}, "no key was minted"
    assert ws.snapshot() == before
    assert doppler.writes() == 0


def test_doppler_as_a_primary_is_refused_with_the_fix(ws: Workspace, doppler: DopplerStandIn) -> None:
    ws.edit_config('store = "app"\nalso_deploy_to = ["mirror"]', 'store = "mirror"\nalso_deploy_to = ["app"]')
    refused = ws.run("rotate", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stderr
    assert "credentials.trading.store" in refused.stderr
    assert "no compare-and-set" in refused.stderr
    assert 'also_deploy_to = ["mirror"]' in refused.stderr
    assert doppler.writes() == 0


CRASH_POINTS = ("stage.mirror", "promote.app", "promote.mirror")
"""The forward boundaries around the Doppler target's writes before the old key is revoked (`tests/fault_points.py`);
`clear.mirror` (after the revoke, only PREVIOUS is forgotten) is left out to keep the suite's time down."""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_crash_at_each_doppler_boundary_is_finished_by_resume(ws: Workspace, doppler: DopplerStandIn) -> None:
    for point in CRASH_POINTS:
        old = ws.current_id()
        crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
        assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {crashed.stderr}"
        active = ws.active_ids()
        assert len(active) <= 2, f"{point}: I4"
        assert ws.current_id() in active, f"{point}: app.env shows a key Bluum does not accept (I1)"
        assert _doppler_id(doppler) in active, f"{point}: Doppler shows a key Bluum does not accept (I1)"
        if old not in active:  # I2: revoked only once its successor is current everywhere
            assert ws.current_id() == _doppler_id(doppler) != old, point
        resumed = ws.run("resume", "trading")
        assert resumed.returncode == ExitCode.OK, f"{point}: {resumed.stdout} {resumed.stderr}"
        new = ws.current_id()
        assert new != old, f"{point}: resume did not finish the rotation"
        assert _doppler_id(doppler) == new, f"{point}: Doppler does not show the new key"
        assert ws.active_ids() == {new}, f"{point}: exactly the current key is active (I3, I4)"
    status = json.loads(ws.run("status", "--json").stdout)
    assert next(r for r in status if r["name"] == "trading")["stage"] == "idle"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_crash_in_a_rollback_leaves_doppler_on_the_old_key(ws: Workspace, doppler: DopplerStandIn) -> None:
    ws.write_config(verify_timeout="1s")
    ws.edit_config(MIRROR_ENV_TABLE, _doppler_table(doppler.url))
    ws.delay_new_keys(3600)  # a new key is never accepted: every rotation rolls back
    for point in ("restore.app", "restore.mirror"):
        crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
        assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {crashed.stderr}"
        resumed = ws.run("resume", "trading")
        assert resumed.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), f"{point}: {resumed.stderr}"
        assert ws.current_id() == ws.first.info.id
        assert _doppler_id(doppler) == ws.first.info.id, f"{point}: Doppler was not rolled back"
        assert ws.active_ids() == {ws.first.info.id}, f"{point}: the new key was not revoked"


def test_a_read_only_token_rolls_the_rotation_back_with_the_fix(ws: Workspace, doppler: DopplerStandIn) -> None:
    read_only = "dp.st.prd.readonly9f3b1c7d2a4e6f8091a2b3c4d5e6f708192a3b4c5"
    doppler.add_token(read_only, project="backend", config="prd", write=False)
    ws.guard.watch(read_only)
    ws.env[TOKEN_ENV] = read_only
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.ROLLED_BACK, rotated.stderr
    assert "read/write access" in rotated.stderr
    assert ws.current_id() == ws.first.info.id
    assert _doppler_id(doppler) == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}, "the new key was revoked"
    assert doppler.writes() == 0


def test_a_vault_primary_deploys_to_doppler(
    ws: Workspace, doppler: DopplerStandIn, openbao: OpenBao, vault_path: str
) -> None:
    vault = VaultPrimary.install(ws, openbao, vault_path, also=("mirror",))
    try:
        ws.edit_config(MIRROR_ENV_TABLE, _doppler_table(doppler.url))  # install wrote the workspace's file again
        rotated = ws.run("rotate", "trading")
        assert rotated.returncode == ExitCode.OK, rotated.stderr
        new = vault.latest()["key_id"]
        assert new != ws.first.info.id
        assert _doppler_id(doppler) == new
        assert ws.active_ids() == {new}
        assert TOKEN not in rotated.stdout + rotated.stderr
    finally:
        vault.close()
