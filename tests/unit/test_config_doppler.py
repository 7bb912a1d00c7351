"""`[stores.NAME]` tables of type "doppler" (rotator/config/doppler.py): the options, checked with the fix, a token
pasted where a variable's name belongs never echoed, and Doppler refused as a credential's primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.config.loader import ConfigProblems, parse_config

BASE = """
[stores.app]
type = "env"
path = "app.env"

[stores.doppler]
type = "doppler"
project = "backend"
config = "prd"
{doppler}

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "{primary}"
also_deploy_to = ["{target}"]
"""


def problems_of(tmp_path: Path, doppler: str = "", primary: str = "app", target: str = "doppler") -> list[str]:
    text = BASE.format(doppler=doppler, primary=primary, target=target)
    try:
        parse_config(text, base_dir=tmp_path)
    except ConfigProblems as problems:
        return list(problems.problems)
    return []


def test_a_doppler_target_with_defaults_is_accepted(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == []
    config = parse_config(BASE.format(doppler="", primary="app", target="doppler"), base_dir=tmp_path)
    assert config.stores["doppler"].type == "doppler"
    assert config.credentials["trading"].also_deploy_to == ("doppler",)


def test_doppler_as_a_primary_is_refused_with_the_fix(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, primary="doppler", target="app")
    assert problem.startswith("credentials.trading.store:")
    assert "no compare-and-set" in problem
    assert 'also_deploy_to = ["doppler"]' in problem


@pytest.mark.parametrize(
    ("doppler", "key", "fix"),
    [
        ('token_env = "DOPPLER TOKEN"', "token_env", 'token_env = "DOPPLER_TOKEN"'),
        ('prefix = "bluum_"', "prefix", 'prefix = "BLUUM_"'),
        ('state_secret = "state"', "state_secret", "BLUUM_ROTATOR_STATE"),
        ('url = "http://doppler.example.com"', "url", "https://"),
        ("timeout = 0", "timeout", "timeout = 10"),
        ('state_config = "p r d"', "state_config", 'state_config = "prd_rotator"'),
        ('projekt = "x"', " unknown key 'projekt'", "did you mean 'project'"),
    ],
)
def test_each_wrong_option_is_named_with_its_fix(tmp_path: Path, doppler: str, key: str, fix: str) -> None:
    found = problems_of(tmp_path, doppler)
    where = f"stores.doppler:{key}" if key.startswith(" ") else f"stores.doppler.{key}:"
    assert any(problem.startswith(where) and fix in problem for problem in found), found


def test_a_token_pasted_as_token_env_is_refused_and_never_echoed(tmp_path: Path) -> None:
    token = "dp.st.prd.Zx9cV8bN7mQ6wE5rT4yU3iO2pA1sD0fG9hJ8kL7"
    found = problems_of(tmp_path, f'token_env = "{token}"')
    assert any("holds a Doppler token" in problem and "revoke" in problem for problem in found), found
    assert all(token not in problem for problem in found)


def test_two_doppler_stores_sharing_a_stage_document_are_refused(tmp_path: Path) -> None:
    text = BASE.format(doppler="", primary="app", target="doppler") + (
        '\n[stores.doppler2]\ntype = "doppler"\nproject = "backend"\nconfig = "prd"\nprefix = "OTHER_"\n'
    )
    with pytest.raises(ConfigProblems) as refused:
        parse_config(text, base_dir=tmp_path)
    [problem] = refused.value.problems
    assert "stores.doppler2: points at the same place as stores.doppler" in problem
    assert "state_secret" in problem
    separate = text + 'state_secret = "OTHER_ROTATOR_STATE"\n'
    assert parse_config(separate, base_dir=tmp_path).stores["doppler2"].type == "doppler"
