"""Lazy imports keep `rotator --help` fast: a module that does not talk to Bluum or a store must not load
their libraries just by being imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("httpx", "tenacity", "boto3", "hvac", "dotenv", "schedule")


def loaded_after(statement: str) -> list[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()[
        -1
    ]
    return [name for name in json.loads(out) if name in HEAVY]


@pytest.mark.parametrize(
    "statement",
    [
        "import rotator.cli",
        "import rotator.rotation.service",
        "import rotator.machine",
        "import rotator.config",
        "import backends.base",
    ],
)
def test_import_loads_no_sdk(statement: str):
    assert loaded_after(statement) == []


def test_help_loads_no_sdk():
    code = "import sys\nfrom rotator.cli import cli\ntry:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
    assert loaded_after(code) == []
