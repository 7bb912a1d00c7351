"""Issue 16, items 1, 11 and 14: the Lambda trusts only what the deployer configured, never a managed secret's JSON.

The handler is called directly, as Secrets Manager calls it, with boto3 pointed at moto (server mode) and the
simulator over HTTP as Bluum (tests/integration/test_aws_lambda.py has the set-up). Each attack is played the way a
person with `PutSecretValue` on one managed secret (an application team's CI, the README's "first rotation" step)
would play it; each test checks that nothing was minted or sent, the current key is untouched, and the error names
the secret, what is wrong and the fix.

The fixture sets ROTATOR_SECRET_IDS as well as ROTATOR_SECRETS, so that these tests run (and fail) on a checkout from
before the fix too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.bluum.client import BluumClient
from rotator.core.errors import RotationFailed
from rotator.core.model import Environment
from rotator.simulator import Simulator
from tests.aws_fixtures import LEDGER_TABLE, Moto
from tests.conftest import LeakGuard
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed, pair_json


@pytest.fixture
def fn(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    """One managed secret and the manager secret on moto; the function configured by its deployer."""
    # ROTATOR_SECRET_IDS: what a checkout before the fix reads instead of ROTATOR_SECRETS
    yield from deployed(
        moto_server, sim, monkeypatch, tmp_path, lambda function: {"ROTATOR_SECRET_IDS": function.secret}
    )


def value_of(fn: Lambda, stage: str = "AWSCURRENT", secret: str | None = None) -> dict[str, Any]:
    answer = fn.sm.get_secret_value(SecretId=secret or fn.secret, VersionStage=stage)
    return dict(json.loads(answer["SecretString"]))


def put_current(fn: Lambda, value: dict[str, Any], secret: str | None = None) -> None:
    """What `aws secretsmanager put-secret-value` does: a new version, made AWSCURRENT."""
    fn.sm.put_secret_value(SecretId=secret or fn.secret, SecretString=json.dumps(value))


def investor_keys(fn: Lambda, investor: str | None = None) -> list[dict[str, Any]]:
    return [k for k in fn.sim.keys() if k.get("owner") == (investor or fn.account.investor)]


def refused(fn: Lambda, leak_guard: LeakGuard, token: str, step: str = "createSecret") -> str:
    """The step raises a configuration error; its message is returned (and searched for secrets)."""
    with pytest.raises(aws_lambda.LambdaConfigError) as caught:
        aws_lambda.handler(fn.event(token, step))
    message = str(caught.value)
    leak_guard.check(message, "the refusal")
    return message


# ------------------------------------------------------------------------------------------- item 1: the JSON


def test_a_secret_naming_another_investor_is_refused_and_nothing_is_minted(fn: Lambda, leak_guard: LeakGuard) -> None:
    """Whoever may put a value into the secret names another investor: the tenant key must not mint that investor
    an active key into this secret."""
    other = fn.sim.create_investor()
    put_current(fn, {**value_of(fn), "investor_id": other})
    before = len(fn.sim.keys())
    token = fn.start_rotation()
    message = refused(fn, leak_guard, token)
    assert fn.secret in message
    assert "investor_id" in message
    assert other in message, "both values are named"
    assert fn.account.investor in message, "both values are named"
    assert "Terraform" in message, "the fix is named"
    assert "put the secret's value back" in message, "the fix is named"
    assert len(fn.sim.keys()) == before, "nothing was minted"
    assert not investor_keys(fn, other), "nothing was minted"
    assert fn.pair_at("AWSCURRENT").api_key == fn.account.first.pair.api_key
    assert fn.works(fn.account.first.pair)


def test_a_secret_naming_another_host_is_refused_and_no_key_is_sent_there(
    fn: Lambda, leak_guard: LeakGuard, sim: Simulator
) -> None:
    """The JSON's base_url points elsewhere (any https host passed before): no request goes anywhere."""
    put_current(fn, {**value_of(fn), "base_url": "https://bluum.attacker.example/v1"})
    token = fn.start_rotation()
    requests_before = len(sim.request_log())
    message = refused(fn, leak_guard, token)
    assert "base_url" in message
    assert "bluum.attacker.example" in message
    assert sim.base_url in message
    assert len(sim.request_log()) == requests_before, "no call to Bluum at all"
    assert fn.labels()[token] == {"AWSPENDING"}, "nothing was stored"


def test_a_secret_naming_another_environment_is_refused(fn: Lambda, leak_guard: LeakGuard) -> None:
    put_current(fn, {**value_of(fn), "environment": "production"})
    token = fn.start_rotation()
    message = refused(fn, leak_guard, token)
    assert "environment" in message
    assert "'production'" in message
    assert "'sandbox'" in message
    assert len(investor_keys(fn)) == 1


def test_the_tick_refuses_a_disagreeing_secret_too(fn: Lambda) -> None:
    put_current(fn, {**value_of(fn), "investor_id": fn.sim.create_investor()})
    with pytest.raises(RuntimeError, match="the tick failed for 1 secret"):
        aws_lambda.handler({"rotator": "tick"})


def test_a_secret_without_those_fields_rotates_with_the_configured_ones(fn: Lambda) -> None:
    """The deployer owns investor, environment and base URL: the JSON need not carry them at all."""
    value = value_of(fn)
    put_current(fn, {field: value[field] for field in ("api_key", "api_secret", "key_id")})
    token = fn.start_rotation()
    for step in STEPS:
        aws_lambda.handler(fn.event(token, step))
    new = value_of(fn)
    assert new["api_key"] != value["api_key"]
    assert fn.works(fn.pair_at("AWSCURRENT"))
    assert new["base_url"] == fn.sim.base_url
    assert new["environment"] == "sandbox"
    assert len(investor_keys(fn)) == 2, "minted for the configured investor"


def test_a_host_bluum_does_not_document_needs_the_deployers_word(
    fn: Lambda, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    """The configured base URL (here the simulator's) is refused until ROTATOR_ALLOWED_HOSTS names its host."""
    monkeypatch.delenv("ROTATOR_ALLOWED_HOSTS")
    token = fn.start_rotation()
    requests_before = len(sim.request_log())
    message = refused(fn, leak_guard, token)
    assert "ROTATOR_ALLOWED_HOSTS" in message
    assert "127.0.0.1" in message
    assert "allowed_hosts" in message
    assert len(sim.request_log()) == requests_before
    monkeypatch.setenv("ROTATOR_ALLOWED_HOSTS", "bluum-proxy.example.com, 127.0.0.1")
    assert aws_lambda.handler(fn.event(token, "createSecret"))["outcome"] == "ok"


def test_the_manager_secrets_base_url_obeys_the_same_rule(fn: Lambda, leak_guard: LeakGuard, sim: Simulator) -> None:
    """The tenant key pair itself must not be pointed at a host of someone's choosing either."""
    manager = json.loads(fn.sm.get_secret_value(SecretId=fn.manager, VersionStage="AWSCURRENT")["SecretString"])
    fn.sm.put_secret_value(
        SecretId=fn.manager, SecretString=json.dumps({**manager, "base_url": "https://tenant.attacker.example/v1"})
    )
    token = fn.start_rotation()
    requests_before = len(sim.request_log())
    message = refused(fn, leak_guard, token)
    assert fn.manager in message
    assert "tenant.attacker.example" in message
    assert "ROTATOR_ALLOWED_HOSTS" in message
    assert len(sim.request_log()) == requests_before
    assert len(investor_keys(fn)) == 1


def test_a_function_without_its_secrets_configuration_says_what_to_set(
    fn: Lambda, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTATOR_SECRETS")
    token = fn.start_rotation()
    message = refused(fn, leak_guard, token)
    assert "ROTATOR_SECRETS" in message
    assert "ROTATOR_SECRET_IDS" in message
    assert "investor_id" in message
    monkeypatch.setenv("ROTATOR_SECRETS", json.dumps({fn.secret: {"investor_id": 'x"\n[stores.evil]'}}))
    message = refused(fn, leak_guard, token)
    assert "investor_id" in message
    assert len(investor_keys(fn)) == 1


# ------------------------------------------------------------------------------------------- item 11: the event


def test_a_secret_without_rotation_enabled_is_refused(fn: Lambda, leak_guard: LeakGuard) -> None:
    """No rotation was ever configured (describe_secret has no RotationEnabled): not "not false" but not true."""
    token = uuid.uuid4().hex
    fn.sm.put_secret_value(
        SecretId=fn.secret, ClientRequestToken=token, SecretString=json.dumps({}), VersionStages=["AWSPENDING"]
    )
    assert "RotationEnabled" not in fn.sm.describe_secret(SecretId=fn.secret)
    message = refused(fn, leak_guard, token)
    assert "rotation is not enabled" in message
    assert fn.secret in message
    assert len(investor_keys(fn)) == 1


def test_a_secret_the_function_does_not_manage_is_refused(fn: Lambda, leak_guard: LeakGuard) -> None:
    """Another secret whose rotation names this function (and whose JSON names an investor) is not its to rotate."""
    stranger = fn.sm.create_secret(
        Name=f"bluum/stranger-{uuid.uuid4().hex[:8]}",
        SecretString=pair_json(fn.account.first.pair, fn.sim, investor_id=fn.account.investor),
    )["ARN"]
    managed = fn.secret
    fn.secret = stranger
    token = fn.start_rotation()
    message = refused(fn, leak_guard, token)
    fn.secret = managed
    assert stranger in message
    assert "does not list it" in message
    assert "`secrets`" in message
    assert len(investor_keys(fn)) == 1, "nothing was minted"


def test_turning_rotation_on_without_rotating_passes_secrets_managers_test(fn: Lambda, sim: Simulator) -> None:
    """RotateImmediately=false (the module's default) on the module's placeholder: Secrets Manager copies AWSCURRENT
    into a new AWSPENDING version and calls testSecret alone. It passes and changes nothing."""
    placeholder = {"environment": "sandbox", "investor_id": fn.account.investor, "base_url": sim.base_url}
    put_current(fn, placeholder)
    token = fn.start_rotation(immediately=False)
    assert fn.labels()[token] == {"AWSPENDING"}, "Secrets Manager staged its copy under the token"
    requests_before = len(sim.request_log())
    result = aws_lambda.handler(fn.event(token, "testSecret"))
    assert result["outcome"] == "configuration test"
    assert len(sim.request_log()) == requests_before, "no Bluum call"
    assert value_of(fn) == placeholder
    assert (
        fn.moto.client("dynamodb")
        .get_item(TableName=LEDGER_TABLE, Key={"ledger_id": {"S": fn.secret}}, ConsistentRead=True)
        .get("Item")
        is None
    ), "no rotation record"


def test_secrets_managers_test_on_a_secret_with_its_key_passes_too(fn: Lambda) -> None:
    token = fn.start_rotation(immediately=False)
    assert aws_lambda.handler(fn.event(token, "testSecret"))["outcome"] == "configuration test"
    assert fn.pair_at("AWSCURRENT").api_key == fn.account.first.pair.api_key
    # ...and the first real rotation after it goes through.
    token = fn.start_rotation()
    for step in STEPS:
        aws_lambda.handler(fn.event(token, step))
    assert fn.labels()[token] == {"AWSCURRENT"}


def test_secrets_managers_test_on_a_disagreeing_secret_fails(fn: Lambda, leak_guard: LeakGuard) -> None:
    """The configuration test is where a secret whose JSON disagrees shows first: turning rotation on fails."""
    put_current(fn, {**value_of(fn), "investor_id": fn.sim.create_investor()})
    token = fn.start_rotation(immediately=False)
    message = refused(fn, leak_guard, token, "testSecret")
    assert "investor_id" in message
    assert fn.secret in message


# ------------------------------------------------------------------------------------------- item 14: AWSPENDING


def test_a_pending_version_prefilled_with_the_current_key_is_refused(fn: Lambda, leak_guard: LeakGuard) -> None:
    """A new user, following along, puts the current key into the AWSPENDING version Secrets Manager made. Before
    the fix all four steps reported ok with no call to Bluum, and every later tick failed."""
    old = fn.account.first.pair
    token = fn.start_rotation()
    fn.sm.put_secret_value(
        SecretId=fn.secret,
        ClientRequestToken=token,
        SecretString=json.dumps(value_of(fn)),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationFailed) as caught:
        aws_lambda.handler(fn.event(token, "createSecret"))
    message = str(caught.value)
    leak_guard.check(message, "the refusal")
    assert "holds the current key" in message
    assert "someone put it there" in message
    assert "Nothing was minted" in message
    assert "rotate-secret" in message
    assert len(investor_keys(fn)) == 1, "no call minted anything"
    assert fn.pair_at("AWSCURRENT").api_key == old.api_key
    assert fn.works(old)
    assert all("AWSPENDING" not in stages for stages in fn.labels().values()), "the label is off the version"
    # Nothing is left to trip the tick, and the next rotation goes through.
    assert aws_lambda.handler({"rotator": "tick"})["outcome"] == "ok"
    assert fn.works(old)
    token = fn.start_rotation()
    for step in STEPS:
        aws_lambda.handler(fn.event(token, step))
    assert fn.pair_at("AWSCURRENT").api_key != old.api_key
    assert fn.works(fn.pair_at("AWSCURRENT"))


def test_a_pending_version_prefilled_with_another_active_key_is_refused_and_that_key_kept(
    fn: Lambda, leak_guard: LeakGuard
) -> None:
    """Another key of the investor (made by the ops team, in use elsewhere) put into AWSPENDING: not this rotation's
    key, so it is neither deployed nor, later, revoked."""
    with BluumClient(fn.sim.base_url) as client:
        bystander = client.create_investor_key(
            fn.account.tenant_pair,
            fn.account.investor,
            name="made by the ops team",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    token = fn.start_rotation()
    fn.sm.put_secret_value(
        SecretId=fn.secret,
        ClientRequestToken=token,
        SecretString=pair_json(bystander.pair, fn.sim, investor_id=fn.account.investor),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationFailed, match="this rotation did not mint") as caught:
        aws_lambda.handler(fn.event(token, "createSecret"))
    leak_guard.check(str(caught.value), "the refusal")
    assert fn.key_status(bystander.info.id) == "active"
    assert fn.pair_at("AWSCURRENT").api_key == fn.account.first.pair.api_key
    assert len(investor_keys(fn)) == 2, "the first key and the bystander; nothing minted"


def test_a_crashed_create_still_finishes_with_its_own_key(fn: Lambda) -> None:
    """The case the pending check must keep: createSecret stored its key and died before its record said so."""
    from rotator.core.faultpoints import hooked

    token = fn.start_rotation()

    class Killed(BaseException):
        pass

    def kill(point: str) -> None:
        if point == "pending.record":
            raise Killed

    with hooked(kill), pytest.raises(Killed):
        aws_lambda.handler(fn.event(token, "createSecret"))
    for step in STEPS:
        aws_lambda.handler(fn.event(token, step))
    assert len(investor_keys(fn)) == 2
    assert fn.labels()[token] == {"AWSCURRENT"}


# ------------------------------------------------------------------------------------------- item 12: the module


def test_the_module_guards_the_tenant_key_and_encrypts_with_its_own_key_by_default() -> None:
    """Read without running it (terraform test and the apply against moto check the same, slower): the manager
    secret's resource policy denies reading it to all but the function's role and the named readers, and a
    customer-managed key is created by default for everything the module encrypts."""
    import hcl2

    from tests.integration.terraform_support import MODULE

    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
    tf: dict[str, Any] = {}
    for name in ("main.tf", "variables.tf"):
        with (MODULE / name).open() as handle:
            for kind, entries in hcl2.load(handle, serialization_options=options).items():
                tf.setdefault(kind, []).extend(entries)
    resources: dict[str, dict[str, Any]] = {}
    for entry in tf["resource"]:
        for kind, named in entry.items():
            resources.setdefault(kind, {}).update(named)
    documents: dict[str, Any] = {}
    for entry in tf["data"]:
        documents.update(entry.get("aws_iam_policy_document", {}))
    variables = {name: body for entry in tf["variable"] for name, body in entry.items()}

    policy = resources["aws_secretsmanager_secret_policy"]["manager"]
    assert policy["secret_arn"] == "${aws_secretsmanager_secret.manager[0].arn}"
    assert policy["policy"] == "${data.aws_iam_policy_document.manager[0].json}"
    (deny,) = documents["manager"]["statement"]
    assert deny["effect"] == "Deny"
    assert deny["actions"] == ["secretsmanager:GetSecretValue"]
    assert deny["principals"][0]["identifiers"] == ["*"]
    (who,) = [c for c in deny["condition"] if c["variable"] == "aws:PrincipalArn"]
    assert who["test"] == "ArnNotLike"
    assert who["values"] == "${concat([aws_iam_role.rotator.arn], var.manager_secret_readers)}"
    assert variables["manager_secret_readers"]["default"] == []

    key = resources["aws_kms_key"]["rotator"]
    assert key["enable_key_rotation"] is True
    assert variables["create_kms_key"]["default"] is True
    assert variables["kms_key_arn"]["default"] is None
    encrypted = {
        "aws_secretsmanager_secret.managed": resources["aws_secretsmanager_secret"]["managed"]["kms_key_id"],
        "aws_secretsmanager_secret.manager": resources["aws_secretsmanager_secret"]["manager"]["kms_key_id"],
        "aws_lambda_function.rotator": resources["aws_lambda_function"]["rotator"]["kms_key_arn"],
        "aws_cloudwatch_log_group.rotator": resources["aws_cloudwatch_log_group"]["rotator"]["kms_key_id"],
        "aws_sns_topic.alarms": resources["aws_sns_topic"]["alarms"]["kms_master_key_id"],
    }
    assert set(encrypted.values()) == {"${local.kms_key_arn}"}, encrypted
