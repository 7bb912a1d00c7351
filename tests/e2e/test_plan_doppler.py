"""`rotator plan` with a Doppler target (the stand-in server): the reads prove themselves, a bad token is a PROBLEM
with its fix, and whether the token may write is said as NOT CHECKED (Doppler tells only by refusing a write, which a
plan never makes). No write reaches the stand-in, and the token is never printed."""

from __future__ import annotations

from rotator.core.errors import ExitCode
from tests.doppler_standin import DopplerStandIn
from tests.e2e.conftest import Workspace
from tests.e2e.test_doppler_e2e import TOKEN, TOKEN_ENV, doppler  # noqa: F401 - `doppler` is the fixture
from tests.e2e.test_plan_misconfig import assert_nothing_written, state


def test_plan_reads_doppler_and_says_the_write_is_not_checked(ws: Workspace, doppler: DopplerStandIn) -> None:  # noqa: F811
    before, files = len(ws.sim.request_log()), state(ws)
    result = ws.run("plan", "trading")
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "store mirror (Doppler" in line]
    assert lines, result.stdout
    assert any("NOT CHECKED" in line and f"${TOKEN_ENV} may write" in line and "read/write" in line for line in lines)
    assert not any("PROBLEM" in line for line in lines), result.stdout
    assert doppler.writes() == 0
    assert TOKEN not in result.stdout + result.stderr
    assert_nothing_written(ws, before, files)


def test_plan_names_a_bad_doppler_token_with_its_fix(ws: Workspace, doppler: DopplerStandIn) -> None:  # noqa: F811
    revoked = "dp.st.prd.revoked1111111111111111111111111111111111"
    ws.guard.watch(revoked)
    ws.env[TOKEN_ENV] = revoked
    before, files = len(ws.sim.request_log()), state(ws)
    result = ws.run("plan", "trading")
    assert result.returncode == ExitCode.BAD_INPUT, result.stdout + result.stderr
    said = [line for line in result.stdout.splitlines() if "store mirror" in line and "PROBLEM" in line]
    assert said, result.stdout
    assert f"${TOKEN_ENV} is not valid" in said[0], said
    assert "fix:" in said[0], said
    assert doppler.writes() == 0
    assert_nothing_written(ws, before, files)
