"""`rotator plan` on an AWS Secrets Manager primary, against moto in server mode WITH IAM enforced (its own process:
`/moto-api/reset-auth` switches enforcement on for the whole server), through a recording proxy that names every
operation the plan sent, so a write would be seen.

What moto can and cannot prove: it enforces IAM on every request, so a read the runner may not make (GetSecretValue)
is refused as AWS would refuse it, and a missing ledger table or secret is reported. It does not implement IAM's
policy simulator (iam:SimulatePrincipalPolicy answers 500), so the write actions (PutSecretValue,
UpdateSecretVersionStage, dynamodb:UpdateItem) cannot be proven without writing here: the plan says "NOT CHECKED"
for them (and exits 0 for that alone), never that they are fine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.fault_proxy import Decision, Fate, FaultProxy, Request

REGION = "us-east-1"
TABLE = "plan-ledger"
ALL_ACTIONS = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "sts:GetCallerIdentity",
    "iam:SimulatePrincipalPolicy",
]
READ_PREFIXES = ("Get", "Describe", "List", "Simulate", "BatchGet", "Query", "Scan")


@dataclass
class Recorder:
    """A pass-through plan for the proxy that keeps every AWS operation's name (X-Amz-Target, or a query's Action)."""

    seen: list[str] = field(default_factory=list)

    def decide(self, request: Request) -> Decision:
        target = request.headers.get("X-Amz-Target") or request.headers.get("x-amz-target")
        action = parse_qs(request.body.decode(errors="replace")).get("Action", ["?"])[0]
        self.seen.append(target.rsplit(".", 1)[-1] if target else action)
        return Decision(Fate.FORWARD)

    def writes(self) -> list[str]:
        return [op for op in self.seen if not op.startswith(READ_PREFIXES)]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()  # this test's own server: its state is thrown away (SIGTERM takes Werkzeug 1-2 s)
        proc.wait(10)


def _client(url: str, service: str, **keys: str) -> Any:
    import boto3

    from backends.aws.store import quiet_body_loggers

    quiet_body_loggers()  # the test's own calls carry a key's secret and an access key's secret
    creds = keys or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=url, **creds)


def _set_auth(url: str, count: str) -> None:
    request = urllib.request.Request(
        url + "/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=5).close()


@pytest.fixture
def aws_ws(ws: Workspace, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Recorder, str]]:
    """`trading` kept first in a Secrets Manager secret (app.env gone), a runner user whose policy a test narrows
    (`policy` in the fixture's answer is the user name), IAM enforced, and the CLI pointed at the recording proxy."""
    _set_auth(moto_url, "inf")
    suffix = uuid.uuid4().hex[:10]
    secret, user = f"bluum/plan/{suffix}", f"runner-{suffix}"
    pair = ws.first.pair
    value = {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": str(pair.key_id)}
    _client(moto_url, "secretsmanager").create_secret(Name=secret, SecretString=json.dumps(value))
    dynamodb = _client(moto_url, "dynamodb")
    if TABLE not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "ledger_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "ledger_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    iam = _client(moto_url, "iam")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    ws.guard.watch(key["SecretAccessKey"])
    grant(moto_url, user, ALL_ACTIONS)
    with ws.sampling_paused():
        ws.sampled = [t for t in ws.sampled if t != ("app.env", "BLUUM_")]
        (ws.root / "app.env").unlink()
    ws.edit_config('[stores.app]\ntype = "env"\npath = "app.env"\n', "")
    ws.edit_config('store = "app"\n', 'store = "aws"\n')
    ws.add_config(
        f'\n[stores.aws]\ntype = "aws"\nsecret_id = "{secret}"\nregion = "{REGION}"\nledger_table = "{TABLE}"\n'
    )
    recorder = Recorder()
    with FaultProxy(moto_url, recorder) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        yield ws, recorder, user
    _set_auth(moto_url, "inf")


def grant(url: str, user: str, actions: list[str]) -> None:
    """The runner's only policy: `actions` on everything (enforcement off while it is written)."""
    _set_auth(url, "inf")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    _client(url, "iam").put_user_policy(UserName=user, PolicyName="rotator", PolicyDocument=json.dumps(document))
    _set_auth(url, "0")


def run_plan(ws: Workspace, recorder: Recorder) -> tuple[str, int]:
    recorder.seen.clear()
    result = ws.cli("plan", "--all")
    assert recorder.seen, "the proxy saw no AWS request"
    assert recorder.writes() == [], result.output
    return result.output, result.exit_code


def line(output: str, *words: str) -> str:
    found = [text for text in output.splitlines() if text.startswith("trading ") and all(w in text for w in words)]
    assert found, output
    return found[0]


def test_writes_are_not_checked_on_moto_and_reads_pass(aws_ws: tuple[Workspace, Recorder, str]) -> None:
    ws, recorder, _ = aws_ws
    output, code = run_plan(ws, recorder)
    text = line(output, "NOT CHECKED", "store aws", "secretsmanager:PutSecretValue", "not proven without writing")
    assert "iam:SimulatePrincipalPolicy" in text.split("fix:", 1)[1]
    assert "PROBLEM" not in output
    assert code == ExitCode.OK
    assert "GetSecretValue" in recorder.seen
    assert "GetItem" in recorder.seen


def test_missing_iam_action_is_named(aws_ws: tuple[Workspace, Recorder, str], moto_url: str) -> None:
    ws, recorder, user = aws_ws
    grant(moto_url, user, [a for a in ALL_ACTIONS if a != "secretsmanager:GetSecretValue"])
    output, code = run_plan(ws, recorder)
    text = line(output, "PROBLEM", "store aws", "GetSecretValue")
    assert "grant the runner" in text
    assert code == ExitCode.BAD_INPUT


def test_missing_ledger_table_is_named_with_the_command(aws_ws: tuple[Workspace, Recorder, str]) -> None:
    ws, recorder, _ = aws_ws
    ws.edit_config(f'ledger_table = "{TABLE}"', 'ledger_table = "no-such-ledger"')
    output, code = run_plan(ws, recorder)
    text = line(output, "PROBLEM", "ledger (aws)")
    assert "aws dynamodb create-table --table-name no-such-ledger" in text
    assert code == ExitCode.BAD_INPUT


def test_missing_secret_is_named(aws_ws: tuple[Workspace, Recorder, str]) -> None:
    ws, recorder, _ = aws_ws
    ws.edit_config('secret_id = "bluum/plan/', 'secret_id = "bluum/gone/')
    output, code = run_plan(ws, recorder)
    text = line(output, "PROBLEM", "store aws")
    assert "rotator enroll trading" in text
    assert code == ExitCode.BAD_INPUT
