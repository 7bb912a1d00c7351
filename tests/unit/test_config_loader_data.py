"""rotator.config.loader.parse_config_data: a configuration given as data gets the checks and messages of a file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from textwrap import dedent

import pytest

from rotator.config.loader import MINIMAL_EXAMPLE, ConfigProblems, parse_config, parse_config_data

GOOD = dedent(MINIMAL_EXAMPLE) + dedent(
    """
    [stores.trading]
    type = "env"
    path = "trading.env"

    [credentials.trading]
    environment = "production"
    issuer = "manual"
    store = "trading"
    grace = "2h"

    [bluum]
    rate_limit_sandbox = 5.5

    [ledger]
    lease_ttl = "20m"
    """
)
BAD = dedent(
    """
    [stores.app]
    type = "env"
    path = "app.env"
    colour = "blue"

    [credentials.app]
    environment = "staging"
    store = "app"
    grace = "forever"

    [mystery]
    """
)


def test_data_parses_to_the_configuration_its_text_does(tmp_path: Path) -> None:
    from_text = parse_config(GOOD, base_dir=tmp_path, store_types=("env",))
    from_data = parse_config_data(tomllib.loads(GOOD), base_dir=tmp_path, store_types=("env",))
    assert from_data == from_text
    assert list(from_data.credentials) == ["app", "trading"]


def test_data_gets_the_problems_its_text_does(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems) as from_text:
        parse_config(BAD, base_dir=tmp_path, store_types=("env",), source="the source")
    with pytest.raises(ConfigProblems) as from_data:
        parse_config_data(tomllib.loads(BAD), base_dir=tmp_path, store_types=("env",), source="the source")
    assert len(from_text.value.problems) >= 4
    assert from_data.value.problems == from_text.value.problems
    assert str(from_data.value) == str(from_text.value)


def test_a_value_no_toml_file_could_hold_is_a_problem_at_its_key(tmp_path: Path) -> None:
    data = tomllib.loads(dedent(MINIMAL_EXAMPLE))
    data["stores"]["app"]["fields"] = ("key_id",)
    data["credentials"]["app"]["grace"] = None
    data[3] = "three"  # type: ignore[index]
    with pytest.raises(ConfigProblems) as caught:
        parse_config_data(data, base_dir=tmp_path, store_types=("env",))
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "stores.app.fields",
        "credentials.app.grace",
        "top level",
    ]
    assert "tuple is not a TOML value" in caught.value.problems[0]
    assert "NoneType is not a TOML value" in caught.value.problems[1]
