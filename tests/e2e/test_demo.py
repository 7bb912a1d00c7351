"""`rotator demo` (what `make demo` runs) does a real rotation and proves the old key dead, printing no secret.

It runs in-process so the leak guard watches every secret the demo makes (each is wrapped in a Secret here).
"""

from __future__ import annotations

import re

from click.testing import CliRunner

from rotator.cli.commands import cli
from tests.conftest import LeakGuard


def test_demo_rotates_and_proves_the_old_key_is_rejected(leak_guard: LeakGuard):
    result = CliRunner().invoke(cli, ["demo"])
    leak_guard.check(result.output, "demo output")
    assert result.exit_code == 0, result.output
    assert len(leak_guard.secrets) >= 3, "the demo's tenant, old and new secrets were watched"
    for step in ("generate", "accept", "deploy", "confirm", "revoke", "cleanup"):
        assert re.search(rf"^\s+{step}\s", result.output, re.M), step
    old = re.search(r"old key (apk_\w+): 401 BLUM-401-003", result.output)
    new = re.search(r"new key (apk_\w+): 200", result.output)
    assert old
    assert new
    assert old.group(1) != new.group(1)
    assert f"active investor keys at Bluum: {new.group(1)}\n" in result.output
    assert "CREDENTIAL" in result.output  # the status table
