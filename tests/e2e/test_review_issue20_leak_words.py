"""The line a leak report of an old key adds (review of issue 20): the daemon's screen prefixes every event with its
credential ("  trading: leak_report ..."), and the history shows it under the credential; the message said the name
again ("trading: leak_report trading: leak report ..."), unlike every other step's line."""

from __future__ import annotations

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_daemon import wait_until
from tests.e2e.test_leak_previous import key  # noqa: F401 - the fixture: 1 h of grace, a signing key
from tests.e2e.test_leak_reports import (
    _no_daemon_left,  # noqa: F401 - autouse: no daemon outlives a test
    history_lines,
    post,
    report,
    signed,
    start,
)

pytestmark = pytest.mark.slow


def test_the_revoke_of_a_reported_old_key_is_said_without_the_name_twice(ws: Workspace, key: str):  # noqa: F811
    old = ws.pair_in()
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    daemon, base = start(ws)
    body = report(public_key=old.api_key, source="gitleaks")
    ws.excuse(old)
    status, answer = post(base + "/leak-report", body, signed(key, body))
    assert status == 202, answer
    wait_until("the old key rejected", lambda: not ws.works(old))
    assert daemon.stop() == ExitCode.OK, daemon.tail()

    said = [str(line.get("message")) for line in history_lines(ws) if line.get("event") == "resumed"]
    assert len(said) == 1, history_lines(ws)
    assert said[0].startswith(f"leak report {answer['id']}"), said[0]
