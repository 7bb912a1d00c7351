"""The rotation Lambda's handler, driven the way Secrets Manager drives it, on moto (server mode) and the simulator.

moto cannot run a Lambda here (no Docker), so each test plays Secrets Manager: `rotate_secret` with a function
registered in moto starts a rotation (it adds the empty AWSPENDING version under the token, as AWS does), and the test
then calls `handler` with createSecret, setSecret, testSecret and finishSecret under that token, as the service would.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.aws.store import AwsStore
from rotator.aws_lambda import entry as aws_lambda
from rotator.bluum.client import BluumClient
from rotator.cli.demo import Account, open_account
from rotator.core.errors import RotationFailed, RotationInProgress
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.conftest import LeakGuard

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def pair_json(pair: KeyPair, sim: Simulator, **extra: str) -> str:
    return json.dumps(
        {
            "api_key": pair.api_key,
            "api_secret": pair.api_secret.reveal(),
            "key_id": pair.key_id,
            "environment": "sandbox",
            "base_url": sim.base_url,
            **extra,
        }
    )


class Lambda:
    """One managed secret and its manager secret on moto, the function's environment, and Secrets Manager's part."""

    def __init__(self, moto: Moto, sim: Simulator, account: Account) -> None:
        self.moto, self.sim, self.account = moto, sim, account
        self.sm = moto.client("secretsmanager")
        suffix = uuid.uuid4().hex[:10]
        self.manager = self.sm.create_secret(
            Name=f"bluum/tenant-{suffix}", SecretString=pair_json(account.tenant_pair, sim)
        )["ARN"]
        self.secret = self.sm.create_secret(
            Name=f"bluum/trading-{suffix}",
            SecretString=pair_json(account.first.pair, sim, investor_id=account.investor),
        )["ARN"]
        self.function = self._register_function(suffix)

    def _register_function(self, suffix: str) -> str:
        iam, lam = self.moto.client("iam"), self.moto.client("lambda")
        role = iam.create_role(
            RoleName=f"rotator-{suffix}",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("rotator/aws_lambda/__init__.py", "def handler(event, context): pass\n")
        return str(
            lam.create_function(
                FunctionName=f"rotator-{suffix}",
                Runtime="python3.12",
                Role=role,
                Handler="rotator.aws_lambda.handler",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
        )

    def start_rotation(self, *, immediately: bool = True) -> str:
        """What Secrets Manager does first: an empty AWSPENDING version under a new token. `immediately=False` is
        rotation turned on without a rotation now: Secrets Manager then calls only testSecret (its configuration
        test) under the token."""
        token = str(uuid.uuid4())
        self.sm.rotate_secret(
            SecretId=self.secret,
            ClientRequestToken=token,
            RotationLambdaARN=self.function,
            RotationRules={"AutomaticallyAfterDays": 90},
            RotateImmediately=immediately,
        )
        return token

    def configured(self, *arns: str) -> str:
        """ROTATOR_SECRETS for `arns` (the fixture's secret by default): what the deployer says about each."""
        entry = {"investor_id": self.account.investor, "environment": "sandbox", "base_url": self.sim.base_url}
        return json.dumps({arn: entry for arn in arns or (self.secret,)})

    def event(self, token: str, step: str) -> dict[str, str]:
        return {"SecretId": self.secret, "ClientRequestToken": token, "Step": step}

    def labels(self) -> dict[str, set[str]]:
        described = self.sm.describe_secret(SecretId=self.secret)
        return {v: set(s) for v, s in described["VersionIdsToStages"].items() if s}

    def pair_at(self, stage: str) -> KeyPair:
        value = json.loads(self.sm.get_secret_value(SecretId=self.secret, VersionStage=stage)["SecretString"])
        return KeyPair(value["api_key"], Secret(value["api_secret"]), Environment.SANDBOX, value.get("key_id"))

    def works(self, pair: KeyPair) -> bool:
        with BluumClient(self.sim.base_url) as client:
            return client.check(pair).outcome.value == "works"

    def key_status(self, key_id: str) -> str:
        return next(str(k["status"]) for k in self.sim.keys() if k["id"] == key_id)


def deployed(
    moto_server: Moto,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    more_env: Callable[[Lambda], dict[str, str]] = lambda fn: {},
) -> Iterator[Lambda]:
    """One managed secret and the manager secret on moto, the function's environment as its deployer sets it (plus
    `more_env`), and no boto3 client left from another test: the body of a fixture (`yield from deployed(...)`)."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(
            f"{moto_server.url}/moto-api/config",
            data=json.dumps({"lambda": {"use_docker": False}}).encode(),
            method="POST",
        )
    ).read()
    account = open_account(sim, "first")
    fn = Lambda(moto_server, sim, account)
    for name, value in {
        **moto_server.environ(),
        "ROTATOR_MANAGER_SECRET_ID": fn.manager,
        "ROTATOR_SECRETS": fn.configured(),
        "ROTATOR_ALLOWED_HOSTS": "127.0.0.1",  # the simulator: a host the deployer names explicitly
        "ROTATOR_GRACE": "0s",
        "ROTATOR_VERIFY_TIMEOUT": "3s",
        "ROTATOR_LEDGER_TABLE": LEDGER_TABLE,
        "TMPDIR": str(tmp_path),
        **more_env(fn),
    }.items():
        monkeypatch.setenv(name, value)
    aws_lambda._clients.clear()
    yield fn
    aws_lambda._clients.clear()


@pytest.fixture
def function(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    yield from deployed(moto_server, sim, monkeypatch, tmp_path)


def test_the_four_steps_then_the_tick_rotate_the_key(function: Lambda) -> None:
    old = function.account.first.pair
    token = function.start_rotation()
    for step in STEPS:
        result = aws_lambda.handler(function.event(token, step))
        assert result["step"] == step
        assert result["outcome"] in ("ok", "already current"), result
    new = function.pair_at("AWSCURRENT")
    assert new.api_key != old.api_key
    assert function.labels()[token] == {"AWSCURRENT"}
    assert function.works(new)
    assert function.works(old), "finishSecret must not revoke: applications need the overlap"
    assert function.pair_at("AWSPREVIOUS").api_key == old.api_key

    tick = aws_lambda.handler({"rotator": "tick"})
    assert tick["outcome"] == "ok"
    assert not function.works(old), "the tick revokes the old key once the grace window has passed"
    assert function.works(new)
    assert list(function.labels().values()) == [{"AWSCURRENT"}]


def test_every_step_can_be_sent_twice(function: Lambda) -> None:
    token = function.start_rotation()
    for step in STEPS:
        aws_lambda.handler(function.event(token, step))
        aws_lambda.handler(function.event(token, step))
    created = [k for k in function.sim.keys() if k.get("owner") == function.account.investor]
    assert len(created) == 2, "a repeated createSecret must not mint a second key"
    assert function.labels()[token] == {"AWSCURRENT"}


def test_a_failing_test_secret_rolls_back_and_raises(function: Lambda) -> None:
    old = function.account.first.pair
    function.sim.advance_clock(3600)
    function.sim.configure(propagation_delay=3600)  # the new key never works in time
    token = function.start_rotation()
    aws_lambda.handler(function.event(token, "createSecret"))
    aws_lambda.handler(function.event(token, "setSecret"))
    new_id = function.pair_at("AWSPENDING").key_id
    with pytest.raises(RotationFailed, match="rolled back"):
        aws_lambda.handler(function.event(token, "testSecret"))
    assert function.pair_at("AWSCURRENT").api_key == old.api_key
    assert all("AWSPENDING" not in stages for stages in function.labels().values())
    assert new_id is not None
    assert function.key_status(new_id) == "revoked"
    assert function.works(old)


def test_a_cli_rotation_in_progress_keeps_the_lambda_out(function: Lambda, moto_server: Moto) -> None:
    cli_store = AwsStore(
        "cli",
        secret_id=function.secret,
        ledger_table=LEDGER_TABLE,
        secretsmanager=moto_server.client("secretsmanager"),
        dynamodb=moto_server.client("dynamodb"),
    )
    lease = cli_store.acquire("ops@laptop pid 1", 900)
    try:
        token = function.start_rotation()
        with pytest.raises(RotationInProgress):
            aws_lambda.handler(function.event(token, "createSecret"))
        assert [k for k in function.sim.keys() if k.get("owner") == function.account.investor][1:] == []
    finally:
        cli_store.release(lease)


def test_a_step_for_an_unknown_token_or_a_bad_event_says_why(function: Lambda) -> None:
    function.start_rotation()  # rotation enabled: the token is what is wrong
    with pytest.raises(aws_lambda.LambdaConfigError, match="no stage for rotation"):
        aws_lambda.handler(function.event(str(uuid.uuid4()), "createSecret"))
    with pytest.raises(aws_lambda.LambdaConfigError, match="unknown Step"):
        aws_lambda.handler({"SecretId": "x", "ClientRequestToken": "y", "Step": "rotate"})
    with pytest.raises(aws_lambda.LambdaConfigError, match="lacks ClientRequestToken"):
        aws_lambda.handler({"SecretId": "x", "Step": "createSecret"})


def test_a_missing_manager_variable_fails_the_first_step_with_a_message(
    function: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTATOR_MANAGER_SECRET_ID")
    token = function.start_rotation()
    with pytest.raises(aws_lambda.LambdaConfigError, match="set ROTATOR_MANAGER_SECRET_ID"):
        aws_lambda.handler(function.event(token, "createSecret"))


def test_importing_the_handler_loads_no_engine_sdk_or_cli() -> None:
    """Cold start: the module itself needs only the standard library (httpx would pull click in when installed)."""
    code = "import rotator.aws_lambda, sys, json; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    heavy = {"click", "httpx", "boto3", "botocore", "hvac", "requests", "schedule", "rotator.rotation.service"}
    assert heavy.isdisjoint(loaded), sorted(heavy.intersection(loaded))


def test_the_tick_revokes_only_its_own_orphans(function: Lambda) -> None:
    """A key this rotator minted for the secret that no store holds (a createSecret whose answer was lost) is
    revoked by the tick; a key of the same investor made by anyone else is left alone."""
    from rotator.rules import machine

    tenant, investor = function.account.tenant_pair, function.account.investor
    with BluumClient(function.sim.base_url) as client:
        lost = client.create_investor_key(
            tenant,
            investor,
            name=machine.key_name(aws_lambda.credential_name(function.secret), uuid.uuid4().hex),
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
        foreign = client.create_investor_key(
            tenant,
            investor,
            name="made by the ops team",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    function.sim.advance_clock(60)
    result = aws_lambda.handler({"rotator": "tick"})
    assert result["secrets"][0]["revoked_orphans"] == [lost.info.id]
    assert function.key_status(lost.info.id) == "revoked"
    assert function.key_status(foreign.info.id) == "active"
    assert function.works(function.account.first.pair)


def test_many_secrets_rotated_at_once_stay_within_the_tenant_keys_rate_limit(
    function: Lambda, moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    """Four instances at once (ROTATOR_CONCURRENCY=4, the reserved concurrency), each rotating its own secret with
    the one tenant key in its own process: each paces itself to its share, so Bluum never answers 429. (With
    ROTATOR_CONCURRENCY=1, each instance taking the whole limit, the same run drew 1 and 2 answers 429 in two
    tries when this test was written.)"""
    sim.configure(rate_limits={"TEST": 10, "PRODUCTION": 25})
    monkeypatch.setenv("ROTATOR_CONCURRENCY", "4")
    secrets = [function.secret]
    with BluumClient(sim.base_url) as client:
        for n in range(3):
            first = client.create_investor_key(
                function.account.tenant_pair,
                function.account.investor,
                name=f"app {n}",
                environment=Environment.SANDBOX,
                idempotency_key=uuid.uuid4().hex,
            )
            secrets.append(
                function.sm.create_secret(
                    Name=f"bluum/app-{n}-{uuid.uuid4().hex[:8]}",
                    SecretString=pair_json(first.pair, sim, investor_id=function.account.investor),
                )["ARN"]
            )
    monkeypatch.setenv("ROTATOR_SECRETS", function.configured(*secrets))
    sim.advance_clock(60)
    before = len(sim.request_log())
    tokens = {}
    for arn in secrets:
        function.secret = arn
        tokens[arn] = function.start_rotation()
    # Each instance is its own process, as Lambda instances are (a throttle is shared within a process only).
    script = (
        "import json, sys\nfrom rotator import aws_lambda\n"
        "arn, token = sys.argv[1], sys.argv[2]\n"
        "for step in ('createSecret', 'setSecret', 'testSecret', 'finishSecret'):\n"
        "    aws_lambda.handler({'SecretId': arn, 'ClientRequestToken': token, 'Step': step})\n"
    )
    instances = [
        subprocess.Popen(
            [sys.executable, "-c", script, arn, tokens[arn]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for arn in secrets
    ]
    outputs = []
    for process in instances:
        output, _ = process.communicate(timeout=120)
        outputs.append((process.returncode, output))
    for code, output in outputs:
        leak_guard.check(output, "instance output")
        assert code == 0, output[-2000:]
    statuses = [entry["status"] for entry in sim.request_log()[before:]]
    assert statuses, "the simulator saw the rotations' requests"
    assert 429 not in statuses, f"{statuses.count(429)} requests answered 429"
    for arn in secrets:
        function.secret = arn
        assert function.labels()[tokens[arn]] == {"AWSCURRENT"}


def test_secrets_managers_configuration_test_is_not_an_error(function: Lambda) -> None:
    """Rotation set up without rotating at once: AWS calls testSecret under a token it never staged (rotation is on:
    tests/integration/test_trust_lambda.py has the case where AWS staged its copy of AWSCURRENT under it)."""
    function.start_rotation()  # rotation enabled, as it is when Secrets Manager runs its test
    result = aws_lambda.handler(function.event(str(uuid.uuid4()), "testSecret"))
    assert result["outcome"] == "configuration test"


def test_a_failed_rotation_and_an_overdue_key_are_logged_for_the_modules_alarms(
    function: Lambda, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Terraform module's metric filters count records whose `metric` is rotation_failed or key_overdue."""
    function.sim.advance_clock(3600)
    function.sim.configure(propagation_delay=3600)
    token = function.start_rotation()
    aws_lambda.handler(function.event(token, "createSecret"))
    aws_lambda.handler(function.event(token, "setSecret"))
    with caplog.at_level("INFO", logger="rotator.lambda"), pytest.raises(RotationFailed):
        aws_lambda.handler(function.event(token, "testSecret"))
    metrics = [getattr(r, "fields", {}).get("metric") for r in caplog.records if r.name == "rotator.lambda"]
    assert metrics.count("rotation_failed") == 1
    failed = next(r for r in caplog.records if getattr(r, "fields", {}).get("metric") == "rotation_failed")
    ids = failed.fields["bluum_request_ids"]  # type: ignore[attr-defined]
    directive = failed.fields["_aws"]["CloudWatchMetrics"]  # type: ignore[attr-defined]
    assert directive == [
        {"Namespace": "BluumRotator", "Dimensions": [[]], "Metrics": [{"Name": "RotationFailed", "Unit": "Count"}]}
    ]
    assert failed.fields["RotationFailed"] == 1  # type: ignore[attr-defined]
    assert ids, "the step's record names the Bluum requests it made"
    assert all(str(i).startswith("req_") for i in ids)

    caplog.clear()
    monkeypatch.setattr("rotator.aws_lambda.entry.time.time", lambda: 4_102_444_800.0)  # 2100: far past its period
    with caplog.at_level("INFO", logger="rotator.lambda"):
        tick = aws_lambda.handler({"rotator": "tick"})
    assert tick["secrets"][0]["overdue"] is True
    metrics = [getattr(r, "fields", {}).get("metric") for r in caplog.records if r.name == "rotator.lambda"]
    assert metrics.count("key_overdue") == 1


def test_the_tick_leaves_the_old_key_alone_until_the_grace_window_has_passed(
    function: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATOR_GRACE", "1h")
    old = function.account.first.pair
    token = function.start_rotation()
    for step in STEPS:
        aws_lambda.handler(function.event(token, step))
    aws_lambda.handler({"rotator": "tick"})
    assert function.works(old), "revoked before the grace window ended"
    assert function.pair_at("AWSPREVIOUS").api_key == old.api_key
    # An hour later: the record's revoke_after is moved into the past, as the passing hour would have.
    dynamodb, key = function.moto.client("dynamodb"), {"ledger_id": {"S": function.secret}}
    item = dynamodb.get_item(TableName=LEDGER_TABLE, Key=key, ConsistentRead=True)["Item"]
    record = json.loads(item["record"]["S"])
    assert record["revoke_after"] is not None
    record["revoke_after"] = record["revoke_after"] - 3601
    dynamodb.update_item(
        TableName=LEDGER_TABLE,
        Key=key,
        UpdateExpression="SET #r = :r",
        ExpressionAttributeNames={"#r": "record"},
        ExpressionAttributeValues={":r": {"S": json.dumps(record)}},
    )
    aws_lambda.handler({"rotator": "tick"})
    assert not function.works(old), "the tick after the grace window revokes the old key"
    assert list(function.labels().values()) == [{"AWSCURRENT"}]


def test_a_crash_between_steps_is_repaired_by_the_services_retry(function: Lambda) -> None:
    """Secrets Manager retries a step whose invocation died; here createSecret died after Bluum made the key and
    before anything was stored past it (the process killed at the record write), and the retry finishes with that
    same key, never a second one."""
    from rotator.core.faultpoints import hooked

    token = function.start_rotation()

    class Killed(BaseException):
        """Stands in for the runtime killing the invocation (not an Exception: nothing may catch it)."""

    def kill(point: str) -> None:
        if point == "pending.record":
            raise Killed

    with hooked(kill), pytest.raises(Killed):
        aws_lambda.handler(function.event(token, "createSecret"))
    minted = [k for k in function.sim.keys() if k.get("owner") == function.account.investor]
    for step in STEPS:
        aws_lambda.handler(function.event(token, step))
    after = [k for k in function.sim.keys() if k.get("owner") == function.account.investor]
    assert len(after) == len(minted) == 2, "the retry must finish with the key the dead invocation made"
    assert function.labels()[token] == {"AWSCURRENT"}


def test_bluum_5xx_and_429_answers_are_counted_in_an_emf_record(
    function: Lambda, caplog: pytest.LogCaptureFixture
) -> None:
    """What /metrics shows the command line (bluum_rotator_bluum_requests_total by status), the Lambda's alarms get
    as EMF counts: every attempt answered 5xx or 429, retried ones included."""
    token = function.start_rotation()
    function.sim.inject_fault(method="POST", path="/v1/investors/", status=503, count=2)
    function.sim.inject_fault(method="GET", path="/v1/investors/", status=429, count=1, retry_after=0)
    with caplog.at_level("INFO", logger="rotator.lambda"):
        aws_lambda.handler(function.event(token, "createSecret"))
    (record,) = [r for r in caplog.records if getattr(r, "fields", {}).get("metric") == "bluum_trouble"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["BluumServerErrors"] == 2
    assert fields["BluumRateLimited"] == 1
    (directive,) = fields["_aws"]["CloudWatchMetrics"]
    assert [m["Name"] for m in directive["Metrics"]] == ["BluumServerErrors", "BluumRateLimited"]
    assert fields["secret_arn"] == function.secret
