"""Terraform offline, for the module's tests: terraform on PATH and the AWS provider from a filesystem mirror.

Neither comes from a registry here (see ../shared/test-infra.md, section 3), so both are found at run time and a
missing one FAILS the test with what to do, never skips it. Every command runs in a copy of terraform/ under the
test's tmp_path (no `.terraform`, state or lock file is ever written into the checkout), with a CLI configuration
of its own that points at the mirror, `-input=false`, and a timeout.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
MODULE = CHECKOUT / "terraform"
BUILD_SCRIPT = CHECKOUT / "scripts" / "build_lambda_zip.py"
ZIP_NAME = "bluum-rotator-lambda.zip"

PROVIDER_GLOB = "registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"
MIRROR_CANDIDATES = (
    "/opt/*",
    "/opt/*/*",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
)
"""Where a mirror usually is; looked at first, because a search of the whole disk takes 8-15 s."""

COMMAND_TIMEOUT = 300.0
"""No terraform command here takes more than ~20 s; a provider retrying a moto error would take 10 minutes."""


def _mirror_root_of(provider_binary: str) -> Path:
    path = Path(provider_binary)
    while path.name != "registry.terraform.io":
        path = path.parent
    return path.parent


@functools.cache
def find_provider_mirror() -> Path:
    """The folder holding registry.terraform.io/hashicorp/aws/...; fails the test when there is none."""
    for candidate in MIRROR_CANDIDATES:
        for root in sorted(glob.glob(os.path.expanduser(candidate))):
            hits = sorted(glob.glob(os.path.join(root, PROVIDER_GLOB)))
            if hits:
                return _mirror_root_of(hits[0])
    try:
        found = subprocess.run(
            ["find", "/", "-path", "*registry.terraform.io/hashicorp/aws*", "-name", "terraform-provider-aws*"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        ).stdout.split()
    except subprocess.TimeoutExpired:
        found = []
    if not found:
        pytest.fail(
            "no filesystem mirror of the Terraform AWS provider (registry.terraform.io/hashicorp/aws/...) on this "
            "machine: the Terraform tests need it and no registry here can provide it (test-infra.md, section 3)",
            pytrace=False,
        )
    return _mirror_root_of(sorted(found)[0])


@functools.cache
def find_terraform() -> str:
    """terraform on PATH; fails the test when it is not there."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail(
            "terraform is not on PATH: the Terraform module's tests need it (1.5 or later; this machine image "
            "had 1.11.4), and no registry here can provide it (test-infra.md, section 3)",
            pytrace=False,
        )
    return binary


@dataclass
class Terraform:
    """terraform with the offline configuration, run in folders under one tmp folder; times what it runs."""

    binary: str
    config_file: Path
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "TF_"))}
        env.update(
            {
                "TF_CLI_CONFIG_FILE": str(self.config_file),
                "TF_IN_AUTOMATION": "1",
                "CHECKPOINT_DISABLE": "1",
            }
        )
        return env

    def run(
        self, *args: str, cwd: Path, label: str | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`terraform ARGS -no-color` in cwd; fails the test with terraform's output if it times out."""
        command = [self.binary, *args, "-no-color"]
        started = time.monotonic()
        try:
            result = subprocess.run(
                command, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            pytest.fail(f"`terraform {' '.join(args)}` did not finish in {timeout:.0f} s:\n{output[-4000:]}")
        self.timings[label or args[0]] = round(time.monotonic() - started, 2)
        return result

    def ok(self, *args: str, cwd: Path, label: str | None = None) -> str:
        """Run and require exit code 0; returns stdout."""
        result = self.run(*args, cwd=cwd, label=label)
        assert result.returncode == 0, (
            f"`terraform {' '.join(args)}` in {cwd} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
        return result.stdout

    def init(self, cwd: Path) -> None:
        self.ok("init", "-backend=false", "-input=false", cwd=cwd, label=f"init {cwd.name}")


def offline_terraform(folder: Path) -> Terraform:
    """terraform plus a CLI configuration in folder that installs hashicorp/* from the mirror only."""
    binary = find_terraform()
    mirror = find_provider_mirror()
    config = folder / "offline.tfrc"
    config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )
    return Terraform(binary=binary, config_file=config)


def copy_module(destination: Path, lambda_zip: Path) -> Path:
    """A copy of terraform/ at destination/terraform, and the package at destination/build, where the module's tests
    and examples/basic look for it. Returns the copy of terraform/."""
    copy = destination / "terraform"
    shutil.copytree(
        MODULE,
        copy,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan"),
    )
    (destination / "build").mkdir(exist_ok=True)
    shutil.copyfile(lambda_zip, destination / "build" / ZIP_NAME)
    return copy


def build_lambda_zip(output: Path, source_root: Path = CHECKOUT) -> subprocess.CompletedProcess[str]:
    """scripts/build_lambda_zip.py --output OUTPUT; fails the test with its output when it fails."""
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--output", str(output), "--source-root", str(source_root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"build_lambda_zip.py failed:\n{result.stdout}\n{result.stderr}"
    return result
