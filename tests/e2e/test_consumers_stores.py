"""Issue 19 end to end with consumers that read their key from Vault (OpenBao) or Secrets Manager (moto).

The same real consumer processes as test_consumers_env.py, reading where an application reads in those stores: the
latest KV v2 version at the path (`api_key`, `api_secret`), or the secret's AWSCURRENT version. The primary store of
`trading` is Vault (tests/e2e/vault_primary.py) or Secrets Manager (test_aws_cli.AwsPrimary), mirror.env beside it;
the consumers are declared on that primary store and reloaded by it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from tests.aws_fixtures import Moto
from tests.consumer_fixtures import ConsumerFleet, Source, eventually
from tests.e2e.conftest import Workspace
from tests.e2e.consumer_workspace import consumer_calls, declare, fleet, fp, revoked_at
from tests.e2e.test_aws_cli import AwsPrimary
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import VaultPrimary
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow  # about 6 s each: rotations wait for consumers that reload late or never


@pytest.fixture
def consumers(ws: Workspace) -> Iterator[ConsumerFleet]:
    with fleet(ws) as running:
        yield running


def test_vault_consumers_a_late_one_is_waited_for_and_one_that_never_reloads_is_named(
    ws: Workspace, consumers: ConsumerFleet, openbao: OpenBao, vault_path: str, monkeypatch: pytest.MonkeyPatch
):
    vault = VaultPrimary.install(ws, openbao, vault_path)
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    source = Source.vault(openbao.url, openbao.root_token, vault.path)
    late, stuck = consumers.start_many(
        [("late", source, ("--reload-lag", "1.5")), ("stuck", source, ("--never-reload",))]
    )
    declare(
        ws, consumers, table_line=f'path = "{vault.path}"\n', credential_store='store = "vault"\n', consumer_wait="4s"
    )
    old = ws.first.pair
    try:
        result = ws.run("rotate", "trading")

        assert result.returncode == ExitCode.INCOMPLETE, said(result)
        assert "1 of 2 consumers report the new key; stuck (store vault): reports the old key" in said(result)
        assert ws.works(old), "revoked while `stuck` still reports the old key"
        new = vault.pair()
        assert [e["fp"] for e in late.events("reload")] == [fp(new)], "the late consumer read Vault's new version"
        assert late.count(401) == 0
        assert stuck.count(401) == 0

        forced = ws.run("resume", "trading", "--revoke-anyway", "--reason", "stuck is being replaced")

        assert forced.returncode == ExitCode.OK, said(forced)
        assert "stuck (store vault): reports the old key" in said(forced)
        assert not ws.works(old)
        assert eventually(lambda: stuck.count(401, fp(old)) >= 1)
        assert late.count(401) == 0
    finally:
        vault.close()


def test_secrets_manager_consumers_a_late_one_is_waited_for_and_none_of_their_calls_is_refused(
    ws: Workspace, consumers: ConsumerFleet, moto_server: Moto
):
    aws = AwsPrimary(ws, moto_server)
    source = Source.aws(aws.name, moto_server.environ())
    prompt, late = consumers.start_many([("prompt", source, ()), ("late", source, ("--reload-lag", "2"))])
    declare(ws, consumers, table_line=f'secret_id = "{aws.name}"\n', credential_store='store = "aws"\n')
    old = ws.first.pair

    result = ws.run("rotate", "trading")

    assert result.returncode == ExitCode.OK, said(result)
    new = aws.pair()
    assert not ws.works(old)
    moved = late.events("reload")
    assert [e["fp"] for e in moved] == [fp(new)], "the late consumer read AWSCURRENT's new version"
    assert moved[0]["t"] < revoked_at(ws, str(ws.first.info.id))
    assert eventually(lambda: late.count(200, fp(new)) >= 1)
    assert prompt.count(401) == 0
    assert late.count(401) == 0
    assert consumer_calls(ws, 401) == []
