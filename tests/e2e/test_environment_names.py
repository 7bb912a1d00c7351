"""Bluum's environment names (TEST, PRODUCTION) and rotator.toml's (sandbox, production) where a user meets them
(issue 20, "found when tried as a new user would").

- rotator.toml: `environment = "TEST"` (or "PRODUCTION"), spelled as Bluum's dashboard and API spell it, means
  sandbox (production); the row shows the configuration's name. Another spelling (`test`) is refused, exit 2, with
  the name to write.
- The simulator: its own knobs (`rotator simulator --environment`, the /_sim control plane) take either name, and
  its one line says both; Bluum's API routes keep Bluum's rule (tests/integration/test_simulator_contract.py).
- The demo says the mapping (tests/e2e/test_demo_text.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace


def test_the_configuration_takes_bluums_spelling_of_the_environment(ws: Workspace) -> None:
    ws.write_config()
    ws.config.write_text(ws.config.read_text().replace('environment = "sandbox"', 'environment = "TEST"'))
    assert 'environment = "sandbox"' not in ws.config.read_text()

    rotated = ws.run("rotate", "trading")

    assert rotated.returncode == ExitCode.OK, rotated.stdout + rotated.stderr
    shown = ws.run("status", "--json")
    assert {row["name"]: row["environment"] for row in json.loads(shown.stdout)} == {
        "tenant": "sandbox",
        "trading": "sandbox",
    }


def test_another_spelling_is_refused_with_the_name_to_write(ws: Workspace) -> None:
    ws.write_config()
    ws.edit_config('issuer = "bluum"\n', 'issuer = "bluum"\nenvironment = "test"\n')
    ws.edit_config('[credentials.trading]\nenvironment = "sandbox"\n', "[credentials.trading]\n")
    before = ws.snapshot()

    refused = ws.run("rotate", "trading")

    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout + refused.stderr
    assert 'credentials.trading.environment: is neither sandbox nor production (did you mean "sandbox"?)' in (
        refused.stderr
    )
    assert ws.snapshot() == before


def test_the_simulator_takes_either_name_and_says_both(ws: Workspace) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "simulator", "--port", "0", "--environment", "sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '(only TEST keys: environment = "sandbox" in rotator.toml)' in line, line
        base = line.split("listening on ")[1].split()[0].removesuffix("/v1")  # the control plane is at the root
        for name in ("sandbox", "TEST"):
            request = urllib.request.Request(
                base + "/_sim/tenant-keys",
                data=json.dumps({"environment": name}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                made = json.loads(answer.read())
            ws.guard.watch(made["secret_key"])
            assert answer.status == 201
            assert made["environment"] == "TEST"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()

    wrong = subprocess.run(
        [sys.executable, "-m", "rotator", "simulator", "--port", "0", "--environment", "staging"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode == ExitCode.BAD_INPUT
    assert "'staging' is not one of 'sandbox', 'production', 'TEST', 'PRODUCTION'" in wrong.stderr
