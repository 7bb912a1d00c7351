"""A leak report the daemon refuses as malformed says which rule it broke (review of issue 20). It answered only
`{"reason": "malformed"}`, to the sender and in the log: a scanner whose `source` held a space ("github secret
scanning") had its real leak refused and nothing said why. The detail names the member and the rule, never a value.
"""

from __future__ import annotations

import json
import secrets

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_leak_reports import (
    SECRET_ENV,
    _no_daemon_left,  # noqa: F401 - autouse: no daemon outlives a test
    post,
    report,
    signed,
    start,
)

pytestmark = pytest.mark.slow


def test_a_malformed_report_is_told_which_rule_it_broke_never_its_values(ws: Workspace):
    key = secrets.token_hex(24)
    ws.guard.watch(key)
    ws.env[SECRET_ENV] = key
    ws.add_config(f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    pair = ws.pair_in()
    daemon, base = start(ws)

    spaced = report(public_key=pair.api_key, source="github secret scanning")
    status, answer = post(base + "/leak-report", spaced, signed(key, spaced))
    assert (status, answer["reason"]) == (422, "malformed"), answer
    assert "source must be 1 to 64 of A-Z a-z 0-9" in str(answer["detail"]), answer

    both = json.dumps({"public_key": pair.api_key, "fingerprint": "sha256:0000000000000000"}).encode()
    status, answer = post(base + "/leak-report", both, signed(key, both))
    assert answer["detail"] == "give exactly one of public_key or fingerprint", answer
    assert pair.api_key not in json.dumps(answer)

    assert ws.works(pair), "nothing was rotated"
    assert daemon.stop() == ExitCode.OK, daemon.tail()
    assert any("source must be 1 to 64" in line for line in daemon.err), "the log says it too"
