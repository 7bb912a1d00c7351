"""Bad input: a clear message naming the problem and the fix, the documented exit code, files unchanged."""

from __future__ import annotations

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace


def assert_refused(
    ws: Workspace, before: dict[str, bytes], *args: str, expect: list[str], code: int = ExitCode.BAD_INPUT
) -> None:
    result = ws.cli(*args)
    assert result.exit_code == code, result.output
    for text in expect:
        assert text in result.output, f"{text!r} not in {result.output!r}"
    assert "Traceback" not in result.output
    assert ws.snapshot() == before


def test_malformed_toml(ws: Workspace):
    ws.config.write_text("[credentials.trading\nenvironment = 'sandbox'\n")
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["not valid TOML", "line 1"])


def test_unknown_store(ws: Workspace):
    ws.edit_config('store = "app"', 'store = "ap"')
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["credentials.trading.store", "(did you mean 'app'?)"])


def test_unknown_credential(ws: Workspace):
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "tradin", expect=["tradin", "trading"])


@pytest.mark.key_outage("app.env is removed: there is no key to sample")
def test_missing_dotenv(ws: Workspace):
    (ws.root / "app.env").unlink()
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["app.env", "does not exist"])


@pytest.mark.key_outage("app.env loses its secret line: there is no pair to sample")
def test_malformed_dotenv_missing_secret(ws: Workspace):
    text = (ws.root / "app.env").read_text()
    (ws.root / "app.env").write_text("\n".join(line for line in text.splitlines() if "API_SECRET" not in line) + "\n")
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["BLUUM_API_SECRET"])


def test_wrong_environment_in_the_store(ws: Workspace):
    path = ws.root / "app.env"
    path.write_text(path.read_text().replace("BLUUM_ENVIRONMENT='sandbox'", "BLUUM_ENVIRONMENT='production'"))
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["production key where a sandbox key belongs"])


def test_sandbox_url_on_a_production_credential(ws: Workspace):
    ws.edit_config(
        f'base_url = "{ws.sim.base_url}"\nissuer = "bluum"',
        'base_url = "https://sandbox.api.bluumfinance.com/v1"\nissuer = "bluum"',
    )
    ws.edit_config('environment = "sandbox"', 'environment = "production"')
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["sandbox"])


@pytest.mark.parametrize(("spoil", "code"), [("revoke_key", "BLUM-401-003"), ("expire_key", "BLUM-401-005")])
def test_current_key_revoked_or_expired(ws: Workspace, spoil: str, code: str):
    ws.excuse(ws.first.pair)
    getattr(ws.sim, spoil)(ws.first.info.id)
    before = ws.snapshot()
    keys_before = ws.sim.keys()
    assert_refused(ws, before, "rotate", "trading", expect=[code, "--emergency"])
    assert ws.sim.keys() == keys_before


def test_expired_current_key_is_replaced_by_an_emergency_rotation(ws: Workspace):
    ws.excuse(ws.first.pair)
    ws.sim.expire_key(ws.first.info.id)
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key expired")
    assert result.exit_code == 0, result.output
    assert ws.current_id() != ws.first.info.id
    assert ws.works(ws.pair_in())


def test_manager_key_rejected(ws: Workspace):
    ws.excuse(ws.tenant_pair)
    ws.sim.revoke_key(ws.tenant["id"])
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["BLUM-401-003"])


def test_bluum_unreachable_changes_nothing(ws: Workspace):
    ws.edit_config(ws.sim.base_url, "http://127.0.0.1:9/v1")
    ws.bluum_gives_up_soon()
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", expect=["127.0.0.1:9"], code=ExitCode.UNAVAILABLE)


def test_bluum_answering_5xx_before_any_change_is_safe_to_retry(ws: Workspace):
    ws.bluum_gives_up_soon()
    ws.sim.inject_fault(method="GET", path=f"/v1/investors/{ws.investor}/api-keys", count=2, status=503)
    before, keys = ws.snapshot(), ws.sim.keys()
    assert_refused(ws, before, "rotate", "trading", expect=["503", "try again later"], code=ExitCode.UNAVAILABLE)
    assert ws.sim.keys() == keys
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK  # the same command, retried, just works


def test_bluum_unreachable_after_a_change_exits_incomplete_and_resume_finishes(ws: Workspace):
    """The grace window has passed and the revoke step cannot list keys: something changed already, so 4, not 5."""
    ws.write_config(grace="1h")
    ws.bluum_gives_up_soon()
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    ws.sim.inject_fault(method="GET", path=f"/v1/investors/{ws.investor}/api-keys", count=2, status=503)
    stopped = ws.cli("resume", "trading", "--now")
    assert stopped.exit_code == ExitCode.INCOMPLETE, stopped.output
    assert "rotator resume trading" in stopped.output
    assert ws.works(ws.first.pair), "the old key must not have been revoked"
    finished = ws.cli("resume", "trading", "--now")
    assert finished.exit_code == ExitCode.OK, finished.output
    assert not ws.works(ws.first.pair)


def test_missing_config_file(ws: Workspace, tmp_path):
    from click.testing import CliRunner

    from rotator.cli.commands import cli

    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "status"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "nope.toml" in result.output


def test_new_key_file_malformed(ws: Workspace):
    bad = ws.root / "new.json"
    bad.write_text('{"api_key": "x"}')
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "tenant", "--new-key-file", str(bad), expect=["api_secret"])


def test_name_and_all_together(ws: Workspace):
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "trading", "--all", expect=["exactly one of NAME or --all"])


def test_new_key_file_holding_the_current_pair_is_refused(ws: Workspace):
    import json

    same = ws.root / "same.json"
    same.write_text(
        json.dumps(
            {
                "api_key": ws.tenant_pair.api_key,
                "api_secret": ws.tenant_pair.api_secret.reveal(),
                "key_id": ws.tenant["id"],
            }
        )
    )
    before = ws.snapshot()
    assert_refused(ws, before, "rotate", "tenant", "--new-key-file", str(same), expect=["is the current pair"])


def test_simulator_refuses_a_non_loopback_address():
    from click.testing import CliRunner

    from rotator.cli.commands import cli

    result = CliRunner().invoke(cli, ["simulator", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "loopback only" in result.output


def test_emergency_on_an_expired_key_when_bluum_refuses_to_revoke_it(ws: Workspace):
    """A strict Bluum may answer 409 to revoking a key that already expired: that key is dead, which is the goal."""
    ws.sim.configure(revoke_repeat="conflict")
    ws.excuse(ws.first.pair)
    ws.sim.expire_key(ws.first.info.id)
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key expired")
    assert result.exit_code == 0, result.output
    assert ws.active_ids() == {ws.current_id()}
    assert ws.current_id() != ws.first.info.id
