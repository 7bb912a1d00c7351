"""The Terraform module's `scheduler` (terraform/tests/scheduler.tftest.hcl, `terraform test` with a mocked provider):
with scheduler = "tick" no Secrets Manager rotation rule and no permission for Secrets Manager to invoke the function,
the function told to schedule (ROTATOR_SCHEDULER, ROTATOR_ROTATE_EVERY, ROTATOR_SEEDED_KEY_AGE, ROTATOR_WINDOWS); the
default unchanged; windows without the tick, a schedule expression or more than 90 days with it refused.

The mocked provider never reads the package, so a small stand-in zip takes its place (the module only hashes it);
test_terraform.py builds the real one for its apply against moto. terraform missing FAILS (terraform_support).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.integration.terraform_support import ZIP_NAME, copy_module, offline_terraform

pytestmark = pytest.mark.slow

RUNS = (
    "tick_scheduler_configures_no_rotation_rule_and_tells_the_function",
    "tick_scheduler_rotates_immediately_when_asked",
    "default_scheduler_is_secrets_manager",
    "windows_without_the_tick_scheduler_are_refused",
    "tick_scheduler_with_a_schedule_expression_is_refused",
    "tick_scheduler_over_90_days_is_refused",
    "an_unknown_scheduler_is_refused",
)


def test_scheduler_tick_in_terraform_test_with_a_mocked_provider(tmp_path: Path) -> None:
    stand_in = tmp_path / ZIP_NAME
    with zipfile.ZipFile(stand_in, "w") as archive:
        archive.writestr("rotator/aws_lambda/__init__.py", "")
    module = copy_module(tmp_path / "copy", stand_in)
    terraform = offline_terraform(tmp_path)
    terraform.init(module)
    out = terraform.ok("test", "-filter=tests/scheduler.tftest.hcl", cwd=module)
    assert " 0 failed" in out, out
    for run in RUNS:
        assert f'run "{run}"... pass' in out, out
