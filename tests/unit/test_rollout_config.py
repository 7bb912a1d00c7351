"""`reload_batch` and `health_timeout` in `[credentials.NAME]`, and a reload action's `health`, validated like the
rest of rotator.toml: good tables parse into exact objects; each wrong one names its key, what is wrong and the fix,
and nothing is built from the file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.loader import ConfigProblems, parse_config
from rotator.config.reloads import HealthCheck
from rotator.config.rollout import DEFAULT_HEALTH_TIMEOUT, Rollout
from rotator.rules.rollout import BatchSize

BASE = Path("/etc/rotator")
TYPES = ("env",)
HEALTHY = '[{ url = "http://127.0.0.1:8081/-/reload", health = { url = "http://127.0.0.1:8081/healthz" } }]'


def config_with(reload: str = HEALTHY, credential: str = "") -> str:
    return f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[stores.app]
type = "env"
path = "app.env"
reload = {reload}

[credentials.tenant]
environment = "sandbox"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "app"
{credential}
"""


def problems(reload: str = HEALTHY, credential: str = "") -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        parse_config(config_with(reload, credential), base_dir=BASE, store_types=TYPES)
    return list(caught.value.problems)


def test_without_the_keys_every_action_runs_at_once_as_before():
    config = parse_config(config_with('[{ url = "http://127.0.0.1:8081/-/reload" }]'), base_dir=BASE, store_types=TYPES)
    assert config.credentials["trading"].rollout == Rollout(BatchSize(), DEFAULT_HEALTH_TIMEOUT)
    assert config.stores["app"].reload[0].health is None


def test_batches_and_checks_parse():
    reload = (
        '[{ url = "http://127.0.0.1:8081/-/reload", health = { url = "http://127.0.0.1:8081/healthz", status = 204 } },'
        ' { command = ["systemctl", "reload", "t2"], health = { command = ["bin/ready", "t2"] } }]'
    )
    config = parse_config(
        config_with(reload, 'reload_batch = "50%"\nhealth_timeout = "90s"'), base_dir=BASE, store_types=TYPES
    )
    assert config.credentials["trading"].rollout == Rollout(BatchSize(percent=50), timedelta(seconds=90))
    first, second = config.stores["app"].reload
    assert first.health == HealthCheck(kind="url", cwd=BASE, url="http://127.0.0.1:8081/healthz", status=204)
    assert second.health == HealthCheck(kind="command", cwd=BASE, command=("bin/ready", "t2"))
    assert first.health.describe() == "GET http://127.0.0.1:8081/healthz answers 204"
    assert second.health.describe() == "bin/ready t2 exits 0"
    config = parse_config(config_with(credential="reload_batch = 3"), base_dir=BASE, store_types=TYPES)
    assert config.credentials["trading"].rollout.batch == BatchSize(count=3)


@pytest.mark.parametrize(
    ("credential", "key", "said"),
    [
        ("reload_batch = 0", "credentials.trading.reload_batch", "must be at least 1"),
        ('reload_batch = "150%"', "credentials.trading.reload_batch", "1% to 100%"),
        ('reload_batch = "two"', "credentials.trading.reload_batch", "write reload_batch = 2"),
        ('health_timeout = "20m"', "credentials.trading.health_timeout", "at most 10m"),
        ('health_timeout = "0s"', "credentials.trading.health_timeout", 'write health_timeout = "60s"'),
    ],
)
def test_a_wrong_rollout_key_names_itself_and_the_fix(credential: str, key: str, said: str):
    (problem,) = problems(credential=credential)
    assert problem.startswith(f"{key}: "), problem
    assert said in problem
    assert "Fix: " in problem


@pytest.mark.parametrize(
    ("health", "key", "said"),
    [
        ('"http://127.0.0.1/healthz"', "stores.app.reload[0].health", "expected an inline table"),
        ("{ }", "stores.app.reload[0].health", "has none of url, command and consumer"),
        ('{ url = "http://127.0.0.1/h", command = ["x"] }', "stores.app.reload[0].health", "has url and command"),
        ('{ consumer = "t-1", command = ["x"] }', "stores.app.reload[0].health", "has command and consumer"),
        ("{ consumer = 3 }", "stores.app.reload[0].health.consumer", "expected the name of one of the"),
        ('{ consumer = "t-1" }', "stores.app.reload[0].health.consumer", "'t-1' is not a consumer of credential"),
        ('{ url = "http://example.com/h" }', "stores.app.reload[0].health.url", "https"),
        ('{ url = "http://127.0.0.1/h", status = 42 }', "stores.app.reload[0].health.status", "100 to 599"),
        ('{ command = ["x"], status = 200 }', "stores.app.reload[0].health.status", "applies to a url check only"),
        ('{ command = "bin/ready --now" }', "stores.app.reload[0].health.command", "never run through a shell"),
        ('{ url = "http://127.0.0.1/h", timeout = "5s" }', "stores.app.reload[0].health", "unknown key 'timeout'"),
    ],
)
def test_a_wrong_health_check_names_its_key_and_the_fix(health: str, key: str, said: str):
    found = problems(f'[{{ url = "http://127.0.0.1:8081/-/reload", health = {health} }}]')
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}: "), found
    assert said in found[0]
    assert "Fix: " in found[0]


def test_a_consumer_check_names_a_consumer_of_the_credential():
    reload = (
        '[{ url = "http://127.0.0.1:8081/-/reload", health = { consumer = "trader-1" } }]\n'
        'consumers = [{ name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" }]'
    )
    config = parse_config(config_with(reload, "reload_batch = 1"), base_dir=BASE, store_types=TYPES)
    (action,) = config.stores["app"].reload
    assert action.health == HealthCheck(kind="consumer", cwd=BASE, consumer="trader-1")
    assert action.health.describe() == "consumer trader-1 reports the new key"


def test_batches_need_a_check_to_gate_on():
    (problem,) = problems('[{ url = "http://127.0.0.1:8081/-/reload" }]', "reload_batch = 2")
    assert problem.startswith("credentials.trading.reload_batch: no reload action of its stores has a health check")
    assert "to the reload actions in [stores.app], or remove reload_batch" in problem
    (problem,) = problems("[]", "reload_batch = 2")
    assert "have no reload actions to run in batches" in problem
