"""The README stays true to the code: every command, store option and config table it must document, and the
headings that error messages point at."""

from __future__ import annotations

from pathlib import Path

import click

from rotator.cli.commands import cli
from rotator.config.loader import (
    BLUUM_KEYS,
    CREDENTIAL_KEYS,
    FLEET_KEYS,
    HISTORY_KEYS,
    KNOWN_STORE_OPTIONS,
    NOTIFICATION_KEYS,
    README_HINT,
)
from rotator.config.notifications import ALERTS_KEYS, SNS_KEYS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_command_is_in_the_commands_table():
    names = cli.list_commands(click.Context(cli))  # every command, loaded or not (the group loads them when run)
    assert "status" in names
    for name in names:
        assert f"`rotator {name}" in README, name


def test_every_configuration_key_is_documented():
    store_keys = [key for options in KNOWN_STORE_OPTIONS.values() for key in options]
    tables = (CREDENTIAL_KEYS, BLUUM_KEYS, HISTORY_KEYS, NOTIFICATION_KEYS, SNS_KEYS, ALERTS_KEYS, FLEET_KEYS)
    for key in (*(key for table in tables for key in table), *store_keys):
        assert f"| `{key}` |" in README, key


def test_the_heading_error_messages_point_at_exists():
    heading = README_HINT.split("'")[1]
    assert f"\n## {heading}\n" in README


def test_the_vault_policy_hint_points_at_a_heading():
    from backends.vault.errors import POLICY_HINT

    heading = POLICY_HINT.split("'")[1]
    assert f"\n### {heading}\n" in README


def test_the_readme_ships_what_it_cites():
    assert "shared/bluum-api.md" not in README
    assert (Path(__file__).resolve().parents[2] / "docs" / "bluum-api.md").is_file()


def test_no_source_file_names_a_path_outside_the_repository() -> None:
    """The simulator's contract and every other reference must resolve in a clone (issue 18): no `/work/...`."""
    root = Path(__file__).resolve().parents[2]
    named = [
        str(path.relative_to(root))
        for folder in ("rotator", "backends", "tests", "benchmarks", "scripts", "docs")
        for path in (root / folder).rglob("*")
        if path.suffix in (".py", ".md", ".toml") and "/work/" + "shared" in path.read_text(encoding="utf-8")
    ]
    assert named == []
