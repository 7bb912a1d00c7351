"""A leak report naming a credential's OLD key while its rotation waits out the grace window (docs/leak-reports.md).

That key still works at Bluum until the grace window ends (an hour here). Before this, such a report was answered
`unknown_key` and the leaked key kept working for the rest of the hour. Now the daemon revokes it at once: the
rotation under way is finished as an emergency (no grace, no waiting for consumers), the new key stays current, and
the history says which report did it. The real daemon over HTTP, against the simulator; every stream through the leak
guard.
"""

from __future__ import annotations

import json
import secrets

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_daemon import wait_until
from tests.e2e.test_leak_reports import (
    SECRET_ENV,
    _no_daemon_left,  # noqa: F401 - autouse: no daemon outlives a test
    history_lines,
    post,
    refused_counts,
    report,
    signed,
    start,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def key(ws: Workspace) -> str:
    """An hour of grace, and leak reports signed with a key only the daemon's environment holds."""
    ws.edit_config('grace = "0s"', 'grace = "1h"')
    value = secrets.token_hex(24)
    ws.guard.watch(value)
    ws.env[SECRET_ENV] = value
    ws.add_config(f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    return value


def status_of(ws: Workspace) -> dict[str, object]:
    result = ws.run("status", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    items = rows if isinstance(rows, list) else rows.get("credentials", [])
    return next(row for row in items if row.get("credential", row.get("name")) == "trading")


def test_a_report_of_the_old_key_in_its_grace_window_revokes_it_now(ws: Workspace, key: str):
    old = ws.pair_in()
    rotated = ws.run("rotate", "trading")
    assert rotated.returncode == ExitCode.OK, rotated.stderr
    new = ws.pair_in()
    assert new.api_key != old.api_key
    assert ws.works(old), "the old key waits out its grace window (1h)"
    assert "grace" in rotated.stdout + rotated.stderr

    daemon, base = start(ws)
    body = report(public_key=old.api_key, source="github-secret-scanning", id="alert-7")
    ws.excuse(old)  # the report is about to kill it on purpose
    status, answer = post(base + "/leak-report", body, signed(key, body))
    assert status == 202, answer
    assert (answer["status"], answer["credential"], answer["action"]) == ("accepted", "trading", "revoke_previous")
    report_id = str(answer["id"])

    wait_until("the old key rejected", lambda: not ws.works(old))
    daemon.wait_for(rf"leak report {report_id}: revoke of the old key ended", stream="err")
    assert ws.works(new), "the new key stays current"
    assert ws.pair_in().api_key == new.api_key
    assert ws.active_ids() == {ws.current_id()}, "one active key: the new one"
    assert len(ws.investor_keys()) == 2, "no new key was minted: the rotation under way was finished"
    assert refused_counts(base)["unknown_key"] == 0
    reasons = [str(line.get("reason")) for line in history_lines(ws)]
    assert any(report_id in reason and "github-secret-scanning" in reason for reason in reasons), reasons

    again = report(fingerprint=_fingerprint(old.api_key), id="alert-7-resent")
    status, answer = post(base + "/leak-report", again, signed(key, again))
    assert (status, answer) == (200, {"status": "already_rotated", "id": report_id, "credential": "trading"})
    assert daemon.stop() == ExitCode.OK, daemon.tail()


def test_a_report_of_an_old_key_already_revoked_changes_nothing(ws: Workspace, key: str):
    """After `resume --now` revoked the old key, the same report is `unknown_key`: no rotation, no revoke."""
    old = ws.pair_in()
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    ws.excuse(old)
    done = ws.run("resume", "trading", "--now")
    assert done.returncode == ExitCode.OK, done.stderr
    assert not ws.works(old)
    keys_before, lines_before = ws.investor_keys(), history_lines(ws)

    daemon, base = start(ws)
    body = report(public_key=old.api_key)
    status, answer = post(base + "/leak-report", body, signed(key, body))
    assert (status, answer) == (422, {"status": "refused", "reason": "unknown_key"})
    assert ws.investor_keys() == keys_before
    assert history_lines(ws) == lines_before
    assert daemon.stop() == ExitCode.OK, daemon.tail()


def _fingerprint(public_key: str) -> str:
    from rotator.attest import fingerprint

    return fingerprint(public_key)
