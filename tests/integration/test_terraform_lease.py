"""The module's `lease_ttl_seconds` (issue 17): passed to the function as ROTATOR_LEASE_TTL, and refused below the
very minimum the function itself enforces (two of the longest request it may have in flight, `rotator.core.in_flight`),
so a plan never deploys a lease the function would refuse at its first rotation, nor allows less than it needs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.core.durations import format_duration
from rotator.core.errors import ConfigError
from tests.aws_fixtures import Moto
from tests.integration.terraform_support import MODULE
from tests.integration.test_aws_lambda import Lambda, function
from tests.integration.test_terraform_static import _load

__all__ = ["function"]  # the fixture, shared with test_aws_lambda.py


def lease_variable() -> dict[str, Any]:
    for entry in _load(MODULE / "variables.tf").get("variable", []):
        if "lease_ttl_seconds" in entry:
            return dict(entry["lease_ttl_seconds"])
    raise AssertionError("variables.tf has no lease_ttl_seconds")


def module_minimum() -> int:
    condition = str(lease_variable()["validation"][0]["condition"])
    found = re.search(r"var\.lease_ttl_seconds >= (\d+)", condition)
    assert found, condition
    return int(found.group(1))


def test_the_module_passes_its_lease_to_the_function_in_the_rotators_spelling() -> None:
    assert lease_variable()["default"] == 900
    main = (MODULE / "main.tf").read_text()
    assert re.search(r'ROTATOR_LEASE_TTL\s*=\s*"\$\{var\.lease_ttl_seconds\}s"', main), "main.tf does not pass it"


def test_the_modules_minimum_is_the_functions(function: Lambda, moto_server: Moto, monkeypatch: pytest.MonkeyPatch):
    minimum = module_minimum()
    monkeypatch.setenv("ROTATOR_LEASE_TTL", f"{minimum - 1}s")
    token = function.start_rotation()
    with pytest.raises(ConfigError, match="lease_ttl") as refused:
        aws_lambda.handler(function.event(token, "createSecret"))
    assert f"({format_duration(minimum)}:" in str(refused.value), str(refused.value)
    monkeypatch.setenv("ROTATOR_LEASE_TTL", f"{minimum}s")
    assert aws_lambda.handler(function.event(token, "createSecret"))["outcome"] == "ok"
