"""`rotator plan` on a store that refuses this runner (review of issue 20): the fix names what that store's access is
made of. A Doppler token Doppler refuses was told to "grant the runner ... its IAM or Vault policy for store mirror",
a fix that does not exist for Doppler (its message already says to put a valid token in the variable)."""

from __future__ import annotations

from rotator.core.errors import ExitCode
from tests.doppler_standin import DopplerStandIn
from tests.e2e.conftest import Workspace
from tests.e2e.test_doppler_e2e import TOKEN_ENV, doppler  # noqa: F401 - `doppler` is the fixture


def test_a_refused_doppler_token_is_not_told_to_fix_an_iam_or_vault_policy(
    ws: Workspace,
    doppler: DopplerStandIn,  # noqa: F811
) -> None:
    revoked = "dp.st.prd.revoked2222222222222222222222222222222222"
    ws.guard.watch(revoked)
    ws.env[TOKEN_ENV] = revoked
    result = ws.run("plan", "trading")
    assert result.returncode == ExitCode.BAD_INPUT, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if "store mirror" in line and "PROBLEM" in line)
    fix = line.split(" -> fix: ", 1)[1]
    assert "IAM" not in fix, fix
    assert "Vault" not in fix, fix
    assert f"${TOKEN_ENV}" in fix, fix
