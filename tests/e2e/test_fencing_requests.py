"""The take-over wait covers store requests too, through the real CLI (issue 17): a store's `timeout` (Vault's, and
now AWS's, which bounds the boto3 clients' connect and read timeouts) counts in the longest request a runner may
still have in flight (`rotator.core.in_flight`). A lease shorter than two of them is bad input, and the ledger is told
the lease plus the longest of them, so another runner takes over only once such a request has surely ended."""

from __future__ import annotations

import time

import pytest

from rotator.core.errors import ExitCode
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.e2e.conftest import Workspace
from tests.e2e.test_aws_cli import AwsPrimary
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import Background

pytestmark = pytest.mark.slow

SLOW_VAULT = """
[stores.vault]
type = "vault"
url = "https://vault.example.com:8200"
path = "bluum/trading"
timeout = 60
"""


def test_a_lease_shorter_than_two_requests_to_a_slow_vault_is_refused_naming_the_store_timeout(ws: Workspace) -> None:
    """A Vault store whose requests may take 60 s to connect and 60 s to answer, and a 200 s lease: enough for two
    Bluum calls (80 s), not for two such requests (240 s). Refused before anything is read or sent, exit 2, with the
    fix; before, the lease was checked against the Bluum call alone."""
    ws.add_config(SLOW_VAULT + '\n[ledger]\nlease_ttl = "200s"\n')
    before, sent = ws.snapshot(), len(ws.sim.request_log())
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "ledger.lease_ttl" in result.output, result.output
    assert "shorter than 2 requests to store 'vault' (4m:" in result.output, result.output  # 240 s
    assert 'lease_ttl = "4m1s"' in result.output, result.output
    assert "[stores.vault] timeout" in result.output, result.output
    assert ws.snapshot() == before
    assert len(ws.sim.request_log()) == sent


def test_the_ledger_holds_the_lease_for_the_lease_plus_two_aws_store_timeouts(ws: Workspace, moto_server: Moto) -> None:
    """An AWS primary with `timeout = 45` (each request: 45 s to connect, 45 s to answer) and a 3-minute lease: while
    a rotation holds it, the DynamoDB item says it lasts 180 s + 90 s, longer than the Bluum call's 40 s would make
    it. Before, `timeout` was no option of the AWS store, and boto3's own 60 s + 60 s per attempt (5 attempts) were
    left out of the take-over wait."""
    aws = AwsPrimary(ws, moto_server)
    ws.edit_config('type = "aws"\n', 'type = "aws"\ntimeout = 45\n')
    ws.add_config('\n[ledger]\nlease_ttl = "3m"\n')
    run, release = Background.parked(ws, "pending.record", "rotate", "trading")
    try:
        items = moto_server.client("dynamodb").scan(TableName=LEDGER_TABLE)["Items"]
        # Only this secret's item: the session's moto server keeps other tests' items, leases not released included.
        mine = [item for item in items if aws.name in item["ledger_id"]["S"]]
        held = [float(item["expires_at"]["N"]) - time.time() for item in mine if "expires_at" in item]
        release.touch()
        done = run.finish()
    finally:
        run.kill()
    assert done.returncode == ExitCode.OK, said(done)
    assert len(held) == 1, held
    assert 180 + 90 - 30 < held[0] <= 180 + 90, held
    assert aws.pair() != ws.first.pair
