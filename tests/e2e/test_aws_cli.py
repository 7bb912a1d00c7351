"""The CLI end to end with an AWS Secrets Manager store as the primary of `trading` and mirror.env beside it.

Every `rotator` runs in a subprocess whose boto3 reaches moto in server mode through AWS_ENDPOINT_URL (boto3's own
configuration, as a user's would), against the Bluum simulator. The I1 sampler probes the AWSCURRENT version (read
with an explicit stage) beside the file, all through each test.
"""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.e2e.conftest import Workspace
from tests.e2e.sampler import PairSource
from tests.e2e.test_review_scenarios import said

APP_STORE_TABLE = '[stores.app]\ntype = "env"\npath = "app.env"\n'


class AwsPrimary:
    """The AWS side of a workspace whose `trading` credential keeps its key first in Secrets Manager."""

    def __init__(self, ws: Workspace, moto: Moto) -> None:
        self.ws, self.moto = ws, moto
        self.sm = moto.client("secretsmanager")
        self.name = f"bluum/trading-{uuid.uuid4().hex[:10]}"
        pair = ws.first.pair
        self.sm.create_secret(
            Name=self.name,
            SecretString=json.dumps(
                {
                    "api_key": pair.api_key,
                    "api_secret": pair.api_secret.reveal(),
                    "key_id": pair.key_id,
                    "investor_id": ws.investor,
                }
            ),
        )
        ws.env.update(moto.environ())
        ws.edit_config(APP_STORE_TABLE, "")
        ws.add_config(f'\n[stores.aws]\ntype = "aws"\nsecret_id = "{self.name}"\nledger_table = "{LEDGER_TABLE}"\n')
        ws.edit_config('store = "app"\n', 'store = "aws"\n')
        with ws.sampling_paused():  # app.env leaves the sampler's list before it leaves the disk
            ws.sampled = [t for t in ws.sampled if t != ("app.env", "BLUUM_")] + [PairSource("aws", self.read)]
            (ws.root / "app.env").unlink()

    def read(self) -> tuple[str | None, str | None, str | None]:
        value = self.value()
        return value.get("api_key"), value.get("api_secret"), value.get("key_id")

    def value(self, stage: str = "AWSCURRENT") -> dict[str, str]:
        answer = self.sm.get_secret_value(SecretId=self.name, VersionStage=stage)
        parsed: dict[str, str] = json.loads(answer["SecretString"])
        return parsed

    def pair(self, stage: str = "AWSCURRENT") -> KeyPair:
        value = self.value(stage)
        return KeyPair(value["api_key"], Secret(value["api_secret"]), Environment.SANDBOX, value.get("key_id"))

    def labels(self) -> list[set[str]]:
        described = self.sm.describe_secret(SecretId=self.name)
        return [set(stages) for stages in described["VersionIdsToStages"].values() if stages]


@pytest.fixture
def aws(ws: Workspace, moto_server: Moto) -> AwsPrimary:
    return AwsPrimary(ws, moto_server)


def test_rotate_updates_secrets_manager_and_the_file_then_revokes_the_old_key(aws: AwsPrimary, ws: Workspace):
    old = ws.first.pair
    result = ws.run("rotate", "trading")
    assert result.returncode == ExitCode.OK, said(result)
    new = aws.pair()
    assert new.api_key != old.api_key
    assert ws.pair_in("mirror.env", "TRADING_").api_key == new.api_key
    assert aws.value()["investor_id"] == ws.investor, "other fields are carried into the new version"
    assert ws.works(new)
    assert not ws.works(old)
    assert aws.labels() == [{"AWSCURRENT"}], "PENDING and PREVIOUS are gone once the old key is revoked"

    status = json.loads(ws.run("status", "--json").stdout)
    trading = next(entry for entry in status if entry["name"] == "trading")
    assert trading["current_key"] == new.key_id
    history = ws.run("history", "trading", "--json")
    assert history.returncode == ExitCode.OK, said(history)
    assert "completed" in history.stdout


def test_an_emergency_revokes_the_leaked_key_at_once(aws: AwsPrimary, ws: Workspace):
    leaked = ws.first.pair
    ws.excuse(leaked)
    ws.edit_config('grace = "0s"', 'grace = "1h"')  # an emergency skips the grace window anyway
    result = ws.run("rotate", "trading", "--emergency", "--reason", "key pasted in a ticket")
    assert result.returncode == ExitCode.OK, said(result)
    assert not ws.works(leaked)
    assert ws.works(aws.pair())
    assert ws.pair_in("mirror.env", "TRADING_").api_key == aws.pair().api_key


def test_a_crash_after_the_cut_over_is_finished_by_resume(aws: AwsPrimary, ws: Workspace):
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "deployed.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    new = aws.pair()
    assert new.api_key != ws.first.pair.api_key, "the cut-over happened before the crash"
    assert ws.works(ws.first.pair), "the old key stays until the rotation is finished"
    resumed = ws.run("resume", "trading")  # the dead runner's lease is taken over at once on this machine
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert not ws.works(ws.first.pair)
    assert aws.pair().api_key == new.api_key
    assert aws.labels() == [{"AWSCURRENT"}]


def test_a_second_runner_is_kept_out_by_the_dynamodb_lease(aws: AwsPrimary, ws: Workspace, moto_server: Moto):
    from backends.aws.store import AwsStore

    holder = AwsStore(
        "other",
        secret_id=aws.name,
        ledger_table=LEDGER_TABLE,
        secretsmanager=moto_server.client("secretsmanager"),
        dynamodb=moto_server.client("dynamodb"),
    )
    lease = holder.acquire("lambda in us-east-1", 900)
    try:
        refused = ws.run("rotate", "trading")
        assert refused.returncode == ExitCode.IN_PROGRESS, said(refused)
        assert "lambda in us-east-1" in said(refused)
        assert aws.pair().api_key == ws.first.pair.api_key
    finally:
        holder.release(lease)
