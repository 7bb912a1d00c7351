"""rotator.aws_lambda.config.config_data: the Lambda's configuration built as data (issue 18), never as TOML text.

Each test builds the configuration of one call from an environment, a managed secret and the manager secret's JSON,
and validates it with the parser every rotator.toml goes through (`parse_config_data`). A value that once had to be
escaped to stay inside its TOML string (a quote, a newline, `]` then a table header) is now only ever that value: it
lands where it was put, or is refused at its own key, and never adds a store or a credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rotator.aws_lambda.config import (
    MANAGED,
    MANAGER,
    LambdaConfigError,
    ManagedSecret,
    config_data,
    scratch_dir,
)
from rotator.config.loader import Config, ConfigProblems, parse_config_data
from rotator.core.model import Environment

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/app-AbCdEf"
MANAGER_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/tenant-XyZ123"
INVESTOR = "inv_2ahq810t9rgmwgncgcawcm5400"
CREDENTIAL = "sm-0123456789abcdef"
SECRET = ManagedSecret(arn=ARN, investor_id=INVESTOR, environment="sandbox", base_url=None)
SOURCE = "the function's configuration (ROTATOR_* variables)"
HOSTILE = [
    'a"b',
    "a\\b",
    'x"\n[stores.evil]\ntype = "env"',
    '"]\n[stores.x]',
    "]\n[stores.x]",
    "line\nbreak",
    "tab\there",
    "del\x7f",
    "é ü 漢",
    "\\u0041",
    "'''",
]
"""Values that would end a TOML string or start a line of their own, were they written into TOML text."""


def environ(**more: str) -> dict[str, str]:
    return {"ROTATOR_MANAGER_SECRET_ID": MANAGER_ARN, "TMPDIR": "/tmp/lambda", **more}


def parsed(env: dict[str, str], secret: ManagedSecret = SECRET, manager: dict[str, Any] | None = None) -> Config:
    data = config_data(env, secret, manager or {"api_key": "k", "api_secret": "s"}, credential=CREDENTIAL)
    return parse_config_data(data, base_dir=scratch_dir(env), source=SOURCE, store_types=("aws",))


def assert_exactly_ours(config: Config) -> None:
    """Two stores and two credentials, each where the builder put it: nothing added, nothing moved."""
    assert list(config.stores) == [MANAGED, MANAGER]
    assert list(config.credentials) == [MANAGER, CREDENTIAL]
    assert {store.type for store in config.stores.values()} == {"aws"}
    assert config.stores[MANAGER].options["secret_id"] == MANAGER_ARN
    managed, manager = config.credentials[CREDENTIAL], config.credentials[MANAGER]
    assert (managed.store, managed.issuer, managed.manager) == (MANAGED, "bluum", MANAGER)
    assert managed.investor_id == INVESTOR
    assert (manager.store, manager.issuer) == (MANAGER, "manual")
    assert not config.notifications


def test_the_data_is_what_the_deployer_configured() -> None:
    env = environ(ROTATOR_LEDGER_TABLE="ledger", ROTATOR_GRACE="2h", ROTATOR_VERIFY_TIMEOUT="30s")
    data = config_data(env | {"ROTATOR_LEASE_TTL": "20m"}, SECRET, {"api_key": "k"}, credential=CREDENTIAL)
    assert data == {
        "stores": {
            MANAGED: {"type": "aws", "secret_id": ARN, "ledger_table": "ledger"},
            MANAGER: {"type": "aws", "secret_id": MANAGER_ARN, "ledger_table": "ledger"},
        },
        "credentials": {
            MANAGER: {"environment": "sandbox", "issuer": "manual", "store": MANAGER},
            CREDENTIAL: {
                "environment": "sandbox",
                "issuer": "bluum",
                "investor_id": INVESTOR,
                "manager": MANAGER,
                "store": MANAGED,
                "grace": "2h",
                "verify_timeout": "30s",
            },
        },
        "history": {"dir": "/tmp/lambda/rotator-history"},
        "ledger": {"lease_ttl": "20m"},
        "bluum": {"rate_limit_sandbox": 10.0, "rate_limit_production": 25.0},
    }


def test_the_parsed_configuration_has_exactly_the_expected_credentials_and_stores() -> None:
    config = parsed(environ(ROTATOR_GRACE="0s"))
    assert_exactly_ours(config)
    assert config.stores[MANAGED].options == {"secret_id": ARN, "ledger_table": "bluum-rotator-ledger"}
    assert config.credentials[CREDENTIAL].environment is Environment.SANDBOX
    assert config.credentials[CREDENTIAL].grace.total_seconds() == 0
    assert config.history.dir == Path("/tmp/lambda/rotator-history")
    assert config.ledger.lease_ttl == 900
    assert config.source == SOURCE
    assert config.path is None


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_value_where_it_was_put(value: str) -> None:
    """Where the parser takes any string (the secret's id, the ledger table, the scratch folder), the value arrives
    whole, and the configuration still has exactly its two stores and two credentials."""
    secret = ManagedSecret(arn=ARN + value, investor_id=INVESTOR, environment="sandbox", base_url=None)
    config = parsed(environ(ROTATOR_LEDGER_TABLE=value, TMPDIR="/tmp/" + value), secret)
    assert_exactly_ours(config)
    assert config.stores[MANAGED].options["secret_id"] == ARN + value
    assert config.stores[MANAGED].options["ledger_table"] == value
    assert config.stores[MANAGER].options["ledger_table"] == value
    assert config.history.dir == Path("/tmp/" + value) / "rotator-history"


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("ROTATOR_GRACE", f"credentials.{CREDENTIAL}.grace"),
        ("ROTATOR_VERIFY_TIMEOUT", f"credentials.{CREDENTIAL}.verify_timeout"),
        ("ROTATOR_LEASE_TTL", "ledger.lease_ttl"),
    ],
)
def test_a_hostile_duration_is_one_problem_at_its_key(value: str, variable: str, key: str) -> None:
    with pytest.raises(ConfigProblems) as caught:
        parsed(environ(**{variable: value}))
    (problem,) = caught.value.problems
    assert problem.startswith(f"{key}: is not a duration")
    assert value not in str(caught.value), "a value is never echoed"
    assert "stores.x" not in str(caught.value)
    assert "stores.evil" not in str(caught.value)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_investor_or_manager_environment_is_one_problem_at_its_key(value: str) -> None:
    secret = ManagedSecret(arn=ARN, investor_id=value, environment="sandbox", base_url=None)
    with pytest.raises(ConfigProblems) as caught:
        parsed(environ(), secret)
    (problem,) = caught.value.problems
    assert problem.startswith(f"credentials.{CREDENTIAL}.investor_id:")
    with pytest.raises(ConfigProblems) as caught:
        parsed(environ(), manager={"api_key": "k", "environment": value})
    assert [problem.split(":")[0] for problem in caught.value.problems] == [f"credentials.{MANAGER}.environment"]


def test_the_manager_secrets_environment_and_documented_base_url_are_taken() -> None:
    production = ManagedSecret(arn=ARN, investor_id=INVESTOR, environment="production", base_url=None)
    manager = {"api_key": "k", "environment": "production", "base_url": "https://api.bluumfinance.com/v1"}
    config = parsed(environ(), production, manager)
    assert_exactly_ours(config)
    assert config.credentials[MANAGER].environment is Environment.PRODUCTION
    assert config.credentials[MANAGER].base_url == "https://api.bluumfinance.com/v1"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://tenant.attacker.example/v1",
        "http://sandbox.api.bluumfinance.com/v1",
        "https://api.bluumfinance.com/v1",  # production's host for a sandbox tenant key
    ],
)
def test_the_manager_secrets_base_url_must_be_a_documented_or_named_host(base_url: str) -> None:
    manager = {"api_key": "k", "environment": "sandbox", "base_url": base_url}
    with pytest.raises(LambdaConfigError, match="ROTATOR_ALLOWED_HOSTS") as caught:
        config_data(environ(), SECRET, manager, credential=CREDENTIAL)
    assert MANAGER_ARN in str(caught.value)


def test_a_documented_host_with_more_after_it_is_one_problem_at_its_key() -> None:
    """urlsplit drops the newline, so the host rule sees Bluum's host; the whole value still reaches the parser as
    one value, which refuses it at its key."""
    manager = {"api_key": "k", "base_url": 'https://sandbox.api.bluumfinance.com/v1"\n[stores.x]\ntype = "env"'}
    with pytest.raises(ConfigProblems) as caught:
        parsed(environ(), manager=manager)
    (problem,) = caught.value.problems
    assert problem.startswith(f"credentials.{MANAGER}.base_url:")


def test_a_host_the_deployer_names_is_allowed_for_the_manager() -> None:
    secret = ManagedSecret(arn=ARN, investor_id=INVESTOR, environment="sandbox", base_url="http://127.0.0.1:8080/v1")
    manager = {"api_key": "k", "base_url": "http://127.0.0.1:8080/v1"}
    config = parsed(environ(ROTATOR_ALLOWED_HOSTS="127.0.0.1"), secret, manager)
    assert_exactly_ours(config)
    assert config.credentials[MANAGER].base_url == "http://127.0.0.1:8080/v1"
    assert config.credentials[CREDENTIAL].base_url == "http://127.0.0.1:8080/v1"


def test_each_instance_takes_its_share_of_the_rate_limits() -> None:
    config = parsed(environ(ROTATOR_CONCURRENCY="4"))
    assert dict(config.bluum.rate_limits) == {Environment.SANDBOX: 10 / 4 - 1, Environment.PRODUCTION: 25 / 4 - 1}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ROTATOR_CONCURRENCY": "0"}, "ROTATOR_CONCURRENCY"),
        ({"ROTATOR_CONCURRENCY": "two"}, "ROTATOR_CONCURRENCY"),
        ({"ROTATOR_MANAGER_SECRET_ID": ""}, "set ROTATOR_MANAGER_SECRET_ID"),
        ({"ROTATOR_MANAGER_SECRET_ID": 'bluum/tenant"\n[stores.x]'}, "set ROTATOR_MANAGER_SECRET_ID"),
    ],
)
def test_a_bad_variable_is_refused_with_what_to_set(env: dict[str, str], says: str) -> None:
    with pytest.raises(LambdaConfigError, match=says):
        config_data(environ(**env), SECRET, {"api_key": "k"}, credential=CREDENTIAL)
