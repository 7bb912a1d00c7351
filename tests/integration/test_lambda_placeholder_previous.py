"""The README's first rotation after `terraform apply`: the module seeds each secret with a placeholder (no key
fields), the operator puts today's key (the placeholder becomes AWSPREVIOUS), then Secrets Manager rotates. The
rotation read AWSPREVIOUS as a key and failed at createSecret ("has no api_key or api_secret field yet"); found by
scripts/try_lambda_locally.py (issue 20). On moto and the simulator, the handler driven as Secrets Manager drives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed, pair_json


@pytest.fixture
def function(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    yield from deployed(moto_server, sim, monkeypatch, tmp_path)


def test_a_first_rotation_over_the_modules_placeholder_goes_through(function: Lambda) -> None:
    old = function.account.first.pair
    placeholder = json.dumps({"environment": "sandbox", "investor_id": function.account.investor})
    function.sm.put_secret_value(SecretId=function.secret, SecretString=placeholder)  # what `terraform apply` leaves
    today = pair_json(old, function.sim, investor_id=function.account.investor)
    function.sm.put_secret_value(SecretId=function.secret, SecretString=today)  # README: put-secret-value today's key
    previous = function.sm.get_secret_value(SecretId=function.secret, VersionStage="AWSPREVIOUS")["SecretString"]
    assert "api_key" not in json.loads(previous), "the placeholder is AWSPREVIOUS, as after the README's steps"

    token = function.start_rotation()
    for step in STEPS:
        result = aws_lambda.handler(function.event(token, step))
        assert result["outcome"] in ("ok", "already current"), result
    assert function.pair_at("AWSPREVIOUS").api_key == old.api_key
    assert aws_lambda.handler({"rotator": "tick"})["outcome"] == "ok"
    assert not function.works(old), "the old key is revoked by the tick"
    assert function.works(function.pair_at("AWSCURRENT"))
