"""rotator.aws_lambda.config: what the Lambda trusts (issue 16 item 1), as pure decisions on values already read."""

from __future__ import annotations

import json

import pytest

from rotator.aws_lambda.config import (
    LambdaConfigError,
    ManagedSecret,
    SecretDisagrees,
    allowed_hosts,
    check_base_url,
    check_secret_json,
    managed_secrets,
)

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/app-AbCdEf"
SECRET = ManagedSecret(arn=ARN, investor_id="inv_1", environment="sandbox", base_url=None)


def test_managed_secrets_reads_each_entry() -> None:
    environ = {"ROTATOR_SECRETS": json.dumps({ARN: {"investor_id": "inv_1", "environment": "sandbox"}})}
    assert managed_secrets(environ) == {ARN: SECRET}
    assert SECRET.effective_base_url() == "https://sandbox.api.bluumfinance.com/v1"


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ({ARN: {"environment": "sandbox"}}, "investor_id"),
        ({ARN: {"investor_id": "inv_1", "environment": "live"}}, "environment"),
        ({ARN: {"investor_id": "inv_1", "environment": "sandbox", "owner": "x"}}, "unknown field"),
        ({"bluum/app": {"investor_id": "inv_1", "environment": "sandbox"}}, "full ARN"),
        ({ARN: {"investor_id": 'a"\nb', "environment": "sandbox"}}, "investor_id"),
        ({}, "non-empty JSON object"),
    ],
)
def test_a_bad_entry_is_refused_with_what_to_set(entries: dict[str, object], says: str) -> None:
    with pytest.raises(LambdaConfigError, match=says):
        managed_secrets({"ROTATOR_SECRETS": json.dumps(entries)})


def test_the_old_variables_alone_are_not_enough() -> None:
    with pytest.raises(LambdaConfigError, match="ROTATOR_SECRET_IDS no longer suffice"):
        managed_secrets({"ROTATOR_SECRET_IDS": ARN})


@pytest.mark.parametrize(
    ("url", "environment", "hosts", "ok"),
    [
        ("https://api.bluumfinance.com/v1", "production", "", True),
        ("https://test-service.bluumfinance.com/v1", "sandbox", "", True),
        ("https://api.bluumfinance.com/v1", "sandbox", "", False),  # the other environment's host
        ("http://api.bluumfinance.com/v1", "production", "", False),  # plain http
        ("https://api.bluumfinance.com:8443/v1", "production", "", False),
        ("https://bluum.attacker.example/v1", "production", "", False),
        ("https://api.bluumfinance.com.attacker.example/v1", "production", "", False),
        ("https://user:pw@api.bluumfinance.com/v1", "production", "api.bluumfinance.com", False),
        ("https://proxy.example/v1", "production", "proxy.example", True),
        ("http://127.0.0.1:8765/v1", "sandbox", "127.0.0.1", True),
        ("http://127.0.0.1:8765/v1", "sandbox", "127.0.0.1:8765", True),
        ("http://127.0.0.1:8765/v1", "sandbox", "127.0.0.1:9999", False),
    ],
)
def test_base_urls_go_only_to_bluums_hosts_or_ones_the_deployer_names(
    url: str, environment: str, hosts: str, ok: bool
) -> None:
    allowed = allowed_hosts({"ROTATOR_ALLOWED_HOSTS": hosts})
    if ok:
        check_base_url(url, environment, allowed, what="base_url")
    else:
        with pytest.raises(LambdaConfigError, match="base_url"):
            check_base_url(url, environment, allowed, what="base_url")


def test_a_secret_json_that_agrees_or_leaves_fields_out_passes() -> None:
    check_secret_json(SECRET, {"api_key": "k", "api_secret": "s"})
    check_secret_json(
        SECRET,
        {"investor_id": "inv_1", "environment": "TEST", "base_url": "https://sandbox.api.bluumfinance.com/v1/"},
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("investor_id", "inv_2"),
        ("environment", "production"),
        ("environment", "nonsense"),
        ("base_url", "https://test-service.bluumfinance.com/v1"),
        ("investor_id", 7),
    ],
)
def test_a_secret_json_that_disagrees_is_refused_naming_both_values(field: str, value: object) -> None:
    with pytest.raises(SecretDisagrees) as caught:
        check_secret_json(SECRET, {field: value})
    message = str(caught.value)
    assert ARN in message
    assert field in message
    assert repr(value) in message


def test_a_disagreeing_value_that_is_the_key_itself_is_not_echoed() -> None:
    with pytest.raises(SecretDisagrees) as caught:
        check_secret_json(
            SECRET, {"api_secret": "sk_live_very_secret_value", "investor_id": "sk_live_very_secret_value"}
        )
    assert "sk_live" not in str(caught.value)
