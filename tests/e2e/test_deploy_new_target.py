"""A store added to `also_deploy_to` after the credential was enrolled (issue 20, found as a new user would).

Before: `rotate` and `verify` refused with the store's own "does not exist ... `rotator enroll`" and `enroll` said the
credential is enrolled, "rotate it": no way forward. Now both name `rotator deploy NAME`, which copies the primary's
current key there once it is checked (its environment, Bluum accepts it), under the credential's lease, never over
another key, and says what it copied where. The real CLI in a subprocess, the simulator, env stores and OpenBao.
"""

from __future__ import annotations

import sys

from dotenv import dotenv_values

from rotator.core.errors import ExitCode
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace, dotenv_text
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import VaultSource
from tests.openbao import OpenBao

EXTRA = '\n[stores.extra]\ntype = "env"\npath = "extra.env"\n'


def add_extra_target(ws: Workspace, tables: str = EXTRA, name: str = "extra") -> None:
    """A second target for `trading` (beside its mirror), added after the credential has its key."""
    ws.add_config(tables)
    ws.edit_config('also_deploy_to = ["mirror"]', f'also_deploy_to = ["mirror", "{name}"]')


def extra_pair(ws: Workspace) -> KeyPair:
    values = dotenv_values(ws.root / "extra.env")
    return KeyPair(str(values["BLUUM_API_KEY"]), Secret(str(values["BLUUM_API_SECRET"])), Environment.SANDBOX)


def test_rotate_and_enroll_name_deploy_which_copies_the_checked_key_and_says_so(ws: Workspace) -> None:
    add_extra_target(ws)
    for command in ("rotate", "verify"):
        refused = ws.run(command, "trading")
        assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
        assert "rotator deploy trading" in said(refused), f"{command} names the way out"
        assert "rotator enroll" not in said(refused), f"{command} must not send an enrolled credential to enroll"
    enroll = ws.run("enroll", "trading")
    assert enroll.returncode == ExitCode.BAD_INPUT
    assert "rotator deploy trading" in said(enroll)
    assert "extra hold(s) no key yet" in said(enroll)
    assert not (ws.root / "extra.env").exists()

    calls = len(ws.sim.request_log())
    deployed = ws.run("deploy", "trading")
    assert deployed.returncode == ExitCode.OK, said(deployed)
    assert extra_pair(ws).api_key == ws.first.pair.api_key
    assert extra_pair(ws).api_secret == ws.first.pair.api_secret
    ws.sampled.append(("extra.env", "BLUUM_"))  # watched from now on
    label = ws.first.info.id
    assert f"copied {label} from app into extra" in deployed.stdout, deployed.stdout
    assert f"copied the current key {label} (Bluum accepts it) into extra; already there: mirror" in deployed.stdout
    assert len(ws.sim.request_log()) > calls, "the key was checked at Bluum before it was copied"
    history = ws.run("history", "trading")
    assert f"copied {label} from app into extra" in history.stdout, history.stdout

    again = ws.run("deploy", "trading")
    assert again.returncode == ExitCode.OK, said(again)
    assert "nothing copied" in again.stdout
    assert ws.run("verify", "trading").returncode == ExitCode.OK
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, said(rotated)
    assert extra_pair(ws).api_key == ws.pair_in().api_key != ws.first.pair.api_key, "the new target rotates too"


def test_deploy_writes_an_openbao_path_added_as_a_target(ws: Workspace, openbao: OpenBao, vault_path: str) -> None:
    path = f"{vault_path}/trading"
    add_extra_target(
        ws, f'\n[stores.vaulted]\ntype = "vault"\nurl = "{openbao.url}"\npath = "{path}"\n', name="vaulted"
    )
    root = {"VAULT_TOKEN": "root"}
    refused = ws.run("rotate", "trading", env=root)
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "rotator deploy trading" in said(refused)

    deployed = ws.run("deploy", "trading", env=root)
    assert deployed.returncode == ExitCode.OK, said(deployed)
    assert "into vaulted (" in deployed.stdout, deployed.stdout
    data = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert data["api_key"] == ws.first.pair.api_key
    ws.sampled.append(VaultSource(openbao, path).target("vaulted"))
    assert ws.run("verify", "trading", env=root).returncode == ExitCode.OK
    assert ws.run("rotate", "trading", env=root).returncode == ExitCode.OK


def test_deploy_never_overwrites_a_target_that_holds_another_key(ws: Workspace) -> None:
    # Another live key (the tenant's, here): what an application may be reading from that file now.
    (ws.root / "extra.env").write_text(dotenv_text(ws.tenant_pair, "sandbox", ws.sim.base_url))
    (ws.root / "extra.env").chmod(0o600)
    add_extra_target(ws)
    before = ws.snapshot()
    refused = ws.run("deploy", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    message = said(refused)
    assert "store 'extra'" in message
    assert "never overwritten" in message
    assert "Nothing was changed" in message
    assert ws.snapshot() == before


def test_deploy_never_spreads_a_key_bluum_rejects(ws: Workspace) -> None:
    ws.excuse(ws.first.pair)
    ws.sim.revoke_key(ws.first.info.id)
    add_extra_target(ws)
    refused = ws.run("deploy", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "not copied anywhere" in said(refused)
    assert "--emergency" in said(refused)
    assert not (ws.root / "extra.env").exists()


def test_deploy_never_puts_a_sandbox_key_where_a_production_key_belongs(ws: Workspace) -> None:
    add_extra_target(ws)
    # trading made a production credential (manual: a sandbox tenant key may not mint for it); its key is sandbox.
    ws.edit_config(f'issuer = "bluum"\ninvestor_id = "{ws.investor}"\nmanager = "tenant"\n', 'issuer = "manual"\n')
    text = ws.config.read_text()
    trading = text.index("[credentials.trading]")
    ws.config.write_text(
        text[:trading] + text[trading:].replace('environment = "sandbox"', 'environment = "production"', 1)
    )
    refused = ws.run("deploy", "trading")
    assert refused.returncode == ExitCode.BAD_INPUT, said(refused)
    assert "sandbox key where a production key belongs" in said(refused)
    assert not (ws.root / "extra.env").exists()


def test_deploy_runs_under_the_credentials_lease(ws: Workspace) -> None:
    from rotator.config.loader import load_config
    from rotator.rotation.service import RotationService

    add_extra_target(ws)
    with RotationService(load_config(ws.config)) as service:
        ledger = service.runtime.ledger(service.config.credential("trading"))
        lease = ledger.acquire("ops@elsewhere pid 1", 900)
        try:
            busy = ws.run("deploy", "trading")
        finally:
            ledger.release(lease)
    assert busy.returncode == ExitCode.IN_PROGRESS, said(busy)
    assert not (ws.root / "extra.env").exists()
    assert ws.run("deploy", "trading").returncode == ExitCode.OK
    ws.sampled.append(("extra.env", "BLUUM_"))


def test_deploy_completes_credential_names(ws: Workspace) -> None:
    completed = ws.run_command(
        [sys.executable, "-c", "from rotator.cli.commands import cli; cli(prog_name='rotator')"],
        env={
            "_ROTATOR_COMPLETE": "bash_complete",
            "COMP_WORDS": "rotator deploy tr",
            "COMP_CWORD": "2",
            "ROTATOR_CONFIG": str(ws.config),
        },
    )
    assert "plain,trading" in completed.stdout.splitlines(), completed.stdout + completed.stderr
