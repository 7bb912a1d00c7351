"""rotator.aws_lambda.schedule: who starts a Lambda-managed secret's rotations (ROTATOR_SCHEDULER) and what the tick
decides with when it is the scheduler, as configuration data checked by the parser every rotator.toml goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rotator.aws_lambda.config import MANAGER, LambdaConfigError, ManagedSecret
from rotator.aws_lambda.schedule import SECRETS_MANAGER, TICK, fleet_config_data, scheduler, with_schedule
from rotator.config.loader import Config, ConfigProblems, parse_config_data

MANAGER_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/tenant-XyZ123"
SECRETS = {
    f"sm-{n:016x}": ManagedSecret(
        arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:bluum/app{n}-AbCdEf",
        investor_id=f"inv_{n:026d}",
        environment="sandbox",
        base_url=None,
    )
    for n in (1, 2)
}
ENVIRON = {"ROTATOR_MANAGER_SECRET_ID": MANAGER_ARN, "ROTATOR_SCHEDULER": "tick"}


def parsed(environ: dict[str, str]) -> Config:
    data = fleet_config_data(environ, SECRETS, {"environment": "sandbox"})
    return parse_config_data(data, base_dir=Path("/tmp"), source="the function's configuration", store_types=("aws",))


def test_the_default_is_secrets_managers_rule_and_unknown_modes_are_refused() -> None:
    assert scheduler({}) == SECRETS_MANAGER
    assert scheduler({"ROTATOR_SCHEDULER": "tick"}) == TICK
    with pytest.raises(LambdaConfigError, match="must be"):
        scheduler({"ROTATOR_SCHEDULER": "cron"})


@pytest.mark.parametrize("variable", ["ROTATOR_WINDOWS", "ROTATOR_ROTATE_EVERY", "ROTATOR_SEEDED_KEY_AGE"])
def test_tick_settings_without_the_tick_are_refused(variable: str) -> None:
    with pytest.raises(LambdaConfigError, match="apply only with ROTATOR_SCHEDULER=tick"):
        scheduler({variable: "x"})


def test_one_configuration_for_the_fleet_each_secret_its_store_one_manager_paying() -> None:
    windows = {"timezone": "UTC", "allow": [{"cron": "0 1 * * *", "duration": "4h", "timezone": None}], "deny": None}
    config = parsed({**ENVIRON, "ROTATOR_WINDOWS": json.dumps(windows), "ROTATOR_ROTATE_EVERY": "30d"})
    for name, secret in SECRETS.items():
        cred = config.credential(name)
        assert cred.store == name
        assert config.stores[name].options["secret_id"] == secret.arn
        assert cred.manager == MANAGER
        assert cred.rotate_every.days == 30
        assert [w.cron for w in cred.windows.allow] == ["0 1 * * *"]


def test_a_bad_window_is_refused_with_its_key() -> None:
    bad = json.dumps({"allow": [{"cron": "every night", "duration": "4h"}]})
    with pytest.raises(ConfigProblems, match=r"windows\.allow\[0\]"):
        parsed({**ENVIRON, "ROTATOR_WINDOWS": bad})


def test_windows_must_be_a_json_object() -> None:
    with pytest.raises(LambdaConfigError, match="must be a JSON object"):
        with_schedule({"ROTATOR_WINDOWS": "[1, 2]"}, {"credentials": {}})
