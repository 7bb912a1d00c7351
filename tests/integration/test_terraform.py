"""The Terraform module (terraform/), for real: fmt, validate, `terraform test` with a mocked provider, and an apply
of examples/basic against moto in server mode followed by plans that show no change (also after a rotation moved
the labels, which is the module's promise not to fight the rotator) and a destroy.

terraform and the provider mirror are found at run time; when either is missing these tests FAIL, they do not skip
(tests/integration/terraform_support.py). Everything runs in a copy of terraform/ under tmp_path.
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
from pathlib import Path

import pytest

from rotator.aws_lambda import entry as aws_lambda
from tests.aws_fixtures import Moto
from tests.integration.terraform_support import ZIP_NAME, Terraform, build_lambda_zip, copy_module, offline_terraform

pytestmark = pytest.mark.slow

EXAMPLE_SECRET = "bluum/example/api-key"
EXAMPLE_NAME = "bluum-rotator-example"


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real deployment package, built by scripts/build_lambda_zip.py into a tmp folder (1-3 s)."""
    output = tmp_path_factory.mktemp("lambda-zip") / ZIP_NAME
    build_lambda_zip(output)
    return output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, lambda_zip: Path) -> Path:
    """A copy of terraform/ with the package beside it, as `make lambda-zip` leaves it."""
    return copy_module(tmp_path_factory.mktemp("tf"), lambda_zip)


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    return offline_terraform(tmp_path_factory.mktemp("tf-config"))


@pytest.fixture(scope="module")
def initialised(terraform: Terraform, workdir: Path) -> Path:
    """The copy, with `terraform init -backend=false` run in the module and in examples/basic."""
    terraform.init(workdir)
    terraform.init(workdir / "examples" / "basic")
    return workdir


def test_fmt(terraform: Terraform, workdir: Path):
    result = terraform.run("fmt", "-check", "-diff", "-recursive", cwd=workdir)
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("folder", [".", "examples/basic"])
def test_validate(terraform: Terraform, initialised: Path, folder: str):
    out = terraform.ok("validate", cwd=initialised / folder, label=f"validate {folder}")
    assert "Success! The configuration is valid." in out


def test_terraform_test_with_mocked_provider(terraform: Terraform, initialised: Path):
    """terraform/tests/module.tftest.hcl: 90 days by default, the lambda permission's principal and source, refusals
    (scheduler.tftest.hcl runs in tests/integration/test_terraform_scheduler.py)."""
    out = terraform.ok("test", "-filter=tests/module.tftest.hcl", cwd=initialised)
    assert " 0 failed" in out, out
    assert 'run "defaults_rotate_every_90_days"... pass' in out
    assert 'run "permissions_are_scoped_to_their_source"... pass' in out


# ------------------------------------------------------------------------------------------- apply against moto


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_for_terraform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """A moto server of its own, in a separate process: its state (and the lambda setting below) is not shared with
    the session's moto, which runs in this process, and its secrets' reserved names go away with it."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto-tf") / "moto.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, f"moto exited early: {log_path.read_text()[-2000:]}"
                try:
                    with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "moto did not answer within 30 s"
                    time.sleep(0.05)
            # No Docker here: moto's "simple" Lambda backend, so configuring rotation does not fail (test-infra.md).
            request = urllib.request.Request(
                url + "/moto-api/config",
                data=json.dumps({"lambda": {"use_docker": False}}).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status in (200, 201)
            yield Moto(url=url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _moto_provider_override(url: str) -> str:
    services = [
        "cloudwatch",
        "cloudwatchevents",
        "cloudwatchlogs",
        "dynamodb",
        "iam",
        "kms",
        "lambda",
        "secretsmanager",
        "sns",
        "sts",
    ]
    endpoints = "\n".join(f'    {service} = "{url}"' for service in services)
    return (
        "# Written by tests/integration/test_terraform.py into a copy: the example's provider, pointed at moto.\n"
        'provider "aws" {\n'
        '  region                      = "us-east-1"\n'
        '  access_key                  = "testing"\n'
        '  secret_key                  = "testing"\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_requesting_account_id  = true\n"
        "  skip_region_validation      = true\n"
        "  max_retries                 = 2\n"
        "  endpoints {\n"
        f"{endpoints}\n"
        "  }\n"
        "}\n"
    )


def _rotate_like_the_rotator(moto: Moto, arn: str, rounds: int = 2) -> str:
    """What finishSecret and the tick leave behind: a new version made AWSCURRENT, AWSPENDING removed, twice, so
    the placeholder version Terraform created ends up with no label at all."""
    sm = moto.client("secretsmanager")
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = str(next(version for version, labels in stages.items() if "AWSCURRENT" in labels))
    for pending in [v for v, labels in stages.items() if "AWSPENDING" in labels and "AWSCURRENT" not in labels]:
        sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=pending)
    for _ in range(rounds):
        token = uuid.uuid4().hex
        value = {"environment": "sandbox", "investor_id": "inv_example", "key_id": f"key_{token[:8]}"}
        sm.put_secret_value(
            SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"]
        )
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
        sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
        current = token
    return current


@pytest.mark.timeout(900)
def test_example_applies_against_moto_and_plans_clean(
    terraform: Terraform, tmp_path: Path, lambda_zip: Path, moto_for_terraform: Moto
):
    moto = moto_for_terraform
    example = copy_module(tmp_path, lambda_zip) / "examples" / "basic"
    (example / "moto_override.tf").write_text(_moto_provider_override(moto.url))
    terraform.ok("init", "-backend=false", "-input=false", cwd=example, label="init for apply")

    out = terraform.ok("apply", "-auto-approve", "-input=false", cwd=example)
    assert "Apply complete!" in out

    # What AWS (moto) now holds, read back with boto3 rather than from Terraform's state.
    sm = moto.client("secretsmanager")
    arn = sm.describe_secret(SecretId=EXAMPLE_SECRET)["ARN"]
    described = sm.describe_secret(SecretId=arn)
    assert described["RotationEnabled"] is True
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 90
    function = moto.client("lambda").get_function(FunctionName=EXAMPLE_NAME)["Configuration"]
    assert function["Handler"] == "rotator.aws_lambda.handler"
    assert function["Runtime"] == "python3.12"
    assert described["RotationLambdaARN"] == function["FunctionArn"]
    variables = function["Environment"]["Variables"]
    # The function is told each secret's investor and environment: the secret's own JSON is not trusted for them.
    assert json.loads(variables["ROTATOR_SECRETS"]) == {arn: {"investor_id": "inv_example", "environment": "sandbox"}}
    assert "ROTATOR_ALLOWED_HOSTS" not in variables, "only Bluum's documented hosts by default"
    # The tenant key: only the function's role (and principals the deployer names) may read it.
    manager_arn = variables["ROTATOR_MANAGER_SECRET_ID"]
    (deny,) = json.loads(sm.get_resource_policy(SecretId=manager_arn)["ResourcePolicy"])["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] in ("secretsmanager:GetSecretValue", ["secretsmanager:GetSecretValue"])
    role_arn = moto.client("iam").get_role(RoleName=f"{EXAMPLE_NAME}-lambda")["Role"]["Arn"]
    assert deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == role_arn
    # A customer-managed key, made by the module and rotated, encrypts the secrets (and the rest).
    key_id = described["KmsKeyId"]
    assert sm.describe_secret(SecretId=manager_arn)["KmsKeyId"] == key_id
    kms = moto.client("kms")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyManager"] == "CUSTOMER"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert function["KMSKeyArn"] == kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert variables["ROTATOR_LEDGER_TABLE"] == f"{EXAMPLE_NAME}-ledger"
    assert variables["ROTATOR_CONCURRENCY"] == "2"
    assert variables["ROTATOR_METRIC_NAMESPACE"] == "BluumRotator"
    assert (
        moto.client("lambda").get_function_concurrency(FunctionName=EXAMPLE_NAME)["ReservedConcurrentExecutions"] == 2
    )
    assert variables["ROTATOR_MANAGER_SECRET_ID"].startswith("arn:aws:secretsmanager:")
    policy = json.loads(moto.client("lambda").get_policy(FunctionName=EXAMPLE_NAME)["Policy"])
    principals = {statement["Principal"]["Service"]: statement for statement in policy["Statement"]}
    assert principals["secretsmanager.amazonaws.com"]["Condition"]["ArnLike"]["AWS:SourceArn"] == arn
    assert "events.amazonaws.com" in principals
    table = moto.client("dynamodb").describe_table(TableName=f"{EXAMPLE_NAME}-ledger")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "ledger_id", "KeyType": "HASH"}]
    groups = moto.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{EXAMPLE_NAME}")["logGroups"]
    assert [group["retentionInDays"] for group in groups] == [365]
    alarms = moto.client("cloudwatch").describe_alarms(AlarmNamePrefix=EXAMPLE_NAME)["MetricAlarms"]
    assert sorted(alarm["AlarmName"] for alarm in alarms) == [
        f"{EXAMPLE_NAME}-bluum-429",
        f"{EXAMPLE_NAME}-bluum-5xx",
        f"{EXAMPLE_NAME}-errors",
        f"{EXAMPLE_NAME}-overdue-keys",
        f"{EXAMPLE_NAME}-rotation-failed",
    ]
    watched = {alarm["MetricName"]: alarm.get("Namespace") for alarm in alarms}
    emf_names = ("RotationFailed", "KeyOverdue", "BluumServerErrors", "BluumRateLimited")
    assert all(watched[name] == "BluumRotator" for name in emf_names), "the names the function's EMF uses"
    assert set(emf_names) == {
        *aws_lambda.EMF_METRICS.values(),
        aws_lambda.BLUUM_SERVER_ERRORS,
        aws_lambda.BLUUM_RATE_LIMITED,
    }

    plan = terraform.run("plan", "-detailed-exitcode", "-input=false", cwd=example, label="plan after apply")
    assert plan.returncode == 0, f"the plan after apply is not empty (rc {plan.returncode}):\n{plan.stdout[-4000:]}"

    current = _rotate_like_the_rotator(moto, arn)
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert [version for version, labels in stages.items() if "AWSCURRENT" in labels] == [current], stages
    plan = terraform.run("plan", "-detailed-exitcode", "-input=false", cwd=example, label="plan after rotations")
    assert plan.returncode == 0, f"after two rotations Terraform wants to change something:\n{plan.stdout[-4000:]}"

    # Nothing changed since the last plan's refresh, so the destroy need not refresh again.
    out = terraform.ok("destroy", "-auto-approve", "-input=false", "-refresh=false", cwd=example)
    assert "Destroy complete!" in out
    print(f"terraform timings (s): {terraform.timings}")
