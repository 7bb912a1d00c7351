"""Lazy imports keep `rotator --help` fast and the Lambda light: a module that does not talk to Bluum or a store must
not load their libraries just by being imported, and `rotator status` must not load httpx.

boto3 and schedule are not installed here (hvac is, for the Vault store), so an import of them would fail loudly
rather than show up as loaded: each check runs with stand-in packages of those names first on the path, so a stray
import is seen, and a control case proves the check sees what it looks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("httpx", "tenacity", "boto3", "hvac", "requests", "dotenv", "schedule")
NOT_INSTALLED = ("boto3", "hvac", "schedule")


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stand-ins")
    for name in NOT_INSTALLED:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text("# a stand-in: importing it is what the test looks for\n")
    return folder


def loaded_after(statement: str, stand_ins: Path) -> list[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stand_ins), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return [name for name in json.loads(result.stdout.splitlines()[-1]) if name in HEAVY]


@pytest.mark.parametrize(
    "statement",
    [
        "import rotator.cli.commands",
        "import rotator.rotation.service",
        "import rotator.rotation.runtime",
        "import rotator.rules.machine",
        "import rotator.config.loader",
        "import backends.base",
    ],
)
def test_import_loads_no_sdk(statement: str, stand_ins: Path):
    assert loaded_after(statement, stand_ins) == []


def test_help_loads_no_sdk(stand_ins: Path):
    code = "import sys\nfrom rotator.cli.commands import cli\ntry:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
    assert loaded_after(code, stand_ins) == []


@pytest.mark.parametrize("name", [*NOT_INSTALLED, "httpx", "requests"])
def test_the_check_sees_an_import_of_each_library(name: str, stand_ins: Path):
    """The control: were any module to import these, the checks above would fail."""
    assert loaded_after(f"import {name}", stand_ins) == [name]


def test_status_of_four_credentials_makes_no_http_client(tmp_path: Path, stand_ins: Path):
    """`rotator status` reads stores only: no Bluum call, so no httpx (nor its SSL context)."""
    text = ""
    for n in range(4):
        (tmp_path / f"c{n}.env").write_text(f"BLUUM_API_KEY='pk_test_{n}'\nBLUUM_API_SECRET='sk_test_{n}'\n")
        text += f'[stores.s{n}]\ntype = "env"\npath = "c{n}.env"\n\n'
        text += f'[credentials.c{n}]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s{n}"\n\n'
    (tmp_path / "rotator.toml").write_text(text)
    code = (
        "import sys\nfrom rotator.cli.commands import cli\n"
        f"try:\n    cli(['--config', {str(tmp_path / 'rotator.toml')!r}, 'status'])\nexcept SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
    )
    assert loaded_after(code, stand_ins) == ["dotenv"]  # the env store's parser, nothing of Bluum's
