"""`rotator pause` and `unpause` touch only the credential's ledger, in its primary store (review of issue 20). They
built every target first, so a Doppler target whose token is not in the operator's shell refused the pause (exit 2,
"no Doppler token") at the very moment someone wanted the schedulers held back (a Doppler incident, say)."""

from __future__ import annotations

import json

from rotator.core.errors import ExitCode
from tests.doppler_standin import DopplerStandIn
from tests.e2e.conftest import Workspace
from tests.e2e.test_doppler_e2e import TOKEN_ENV, doppler  # noqa: F401 - `doppler` is the fixture


def test_pause_and_unpause_need_no_target_but_the_primary(ws: Workspace, doppler: DopplerStandIn) -> None:  # noqa: F811
    no_token = {TOKEN_ENV: ""}

    paused = ws.run("pause", "trading", "--reason", "Doppler incident", "--until", "6h", env=no_token)
    assert paused.returncode == ExitCode.OK, paused.stdout + paused.stderr
    row = next(r for r in json.loads(ws.run("status", "--json").stdout) if r["name"] == "trading")
    assert row["paused"] is True
    assert row["pause_reason"] == "Doppler incident"

    unpaused = ws.run("unpause", "trading", env=no_token)
    assert unpaused.returncode == ExitCode.OK, unpaused.stdout + unpaused.stderr
    row = next(r for r in json.loads(ws.run("status", "--json").stdout) if r["name"] == "trading")
    assert row["paused"] is False
    assert doppler.writes() == 0
