"""The README's local recipe for the Lambda and the Terraform module (`make try-lambda`), run end to end as a person
runs it: scripts/try_lambda_locally.py in a subprocess, on moto, the simulator and terraform with the provider mirror.

Issue 20: `terraform apply` against moto sat for 10+ minutes printing nothing (moto runs Lambdas in Docker unless told
not to). The recipe must finish here, print every stage as it starts and ends, rotate, and leave the old key rejected;
measured 40-55 s on this 2-core machine (terraform apply is 30-45 s of it), so it stays in `make test` (slow marker).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.terraform_support import CHECKOUT, find_provider_mirror, find_terraform

pytestmark = pytest.mark.slow

SCRIPT = CHECKOUT / "scripts" / "try_lambda_locally.py"
STAGES = 7


@pytest.mark.timeout(420)
def test_the_local_lambda_recipe_runs_end_to_end_and_says_where_it_is(tmp_path: Path) -> None:
    find_terraform()  # fails (never skips) with what to do when terraform or the mirror is missing
    mirror = find_provider_mirror()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "try"), "--provider-mirror", str(mirror)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=tmp_path,
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for number in range(1, STAGES + 1):
        assert re.search(rf"^\[{number}/{STAGES}\] .+ \.\.\.$", proc.stdout, re.MULTILINE), f"stage {number} start"
        assert re.search(rf"^\[{number}/{STAGES}\] done in [0-9.]+s$", proc.stdout, re.MULTILINE), f"stage {number}"
    assert "Apply complete!" in proc.stdout, "terraform's own progress is shown as it comes"
    assert re.search(r"^\s+createSecret\s+ok", proc.stdout, re.MULTILINE)
    assert re.search(r"^\s+finishSecret\s+ok", proc.stdout, re.MULTILINE)
    assert "tick: ok" in proc.stdout
    assert re.search(r"old key apk_\w+: Bluum says rejected; AWSCURRENT now holds apk_\w+", proc.stdout)
    assert f"all {STAGES} stages passed" in proc.stdout
    assert not re.search(r"sk_(test|live)_", output), "a secret in the recipe's output"
    assert not (CHECKOUT / "terraform" / ".terraform").exists(), "terraform wrote into the checkout"
    print(f"try_lambda_locally.py: {seconds:.1f}s")


def test_the_recipe_says_what_is_missing_without_terraform(tmp_path: Path) -> None:
    """No terraform on PATH: one line that says what to install, exit 1, and nothing started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "try")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "terraform is not on PATH" in proc.stdout
    assert shutil.which("terraform", path=str(bin_dir)) is None
