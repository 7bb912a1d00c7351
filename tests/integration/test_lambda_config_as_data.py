"""Issue 18: the Lambda's configuration is built as data; through the handler, a value that would have ended its TOML
string is one value, refused at its own key, and nothing is minted (moto as Secrets Manager, the simulator as Bluum)."""

from __future__ import annotations

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.config.loader import ConfigProblems
from tests.conftest import LeakGuard
from tests.integration.test_aws_lambda import Lambda, function

__all__ = ["function"]  # the fixture, shared with test_aws_lambda.py


def test_a_grace_that_would_add_a_store_is_one_problem_at_its_key(
    function: Lambda, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    monkeypatch.setenv("ROTATOR_GRACE", '0s"\n[stores.evil]\ntype = "env"\npath = "/tmp/evil.env"')
    token = function.start_rotation()
    keys_before = len(function.sim.keys())
    with pytest.raises(ConfigProblems) as caught:
        aws_lambda.handler(function.event(token, "createSecret"))
    leak_guard.check(str(caught.value), "the refusal")
    (problem,) = caught.value.problems
    assert problem.startswith(f"credentials.{aws_lambda.credential_name(function.secret)}.grace: is not a duration")
    assert str(caught.value).startswith(aws_lambda.CONFIG_SOURCE), "named as what it is: no rotator.toml here"
    assert "evil" not in str(caught.value)
    assert len(function.sim.keys()) == keys_before, "nothing was minted"
    assert function.labels()[token] == {"AWSPENDING"}, "nothing was stored"
    monkeypatch.setenv("ROTATOR_GRACE", "0s")
    assert aws_lambda.handler(function.event(token, "createSecret"))["outcome"] == "ok"
