"""A leak report naming the PREVIOUS key of a rotation in its grace window kills that key at once (issue 20).

In the grace window the old key is PREVIOUS in the stores and still active at Bluum; the report route matched only
current keys, so it answered `unknown_key` for the very key that leaked and left it alive until the window ended.
Now the real daemon, over its real listener, revokes it as `rotator resume NAME --now` would: the report goes into
the history first (its id and source in the reason), then the old key is revoked and proven dead, and no new rotation
starts (the new key stays current). The same key reported again is answered `already_rotated`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rotator.attest import fingerprint
from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_daemon import RUNNING, wait_until
from tests.e2e.test_leak_reports import SECRET_ENV, history_lines, post, report, signed, start

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().close()


def test_a_report_naming_the_previous_key_in_its_grace_window_revokes_it_now(ws: Workspace) -> None:
    import secrets

    key = secrets.token_hex(24)
    ws.guard.watch(key)
    ws.env[SECRET_ENV] = key
    ws.edit_config('grace = "0s"', 'grace = "1h"')
    ws.add_config(f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    old = ws.pair_in()
    assert ws.run("rotate", "trading").returncode == ExitCode.OK
    new = ws.pair_in()
    assert new.key_id != old.key_id
    assert ws.works(old), "in its grace window the old key is still active"
    daemon, base = start(ws)

    body = report(fingerprint=fingerprint(old.api_key), source="github-secret-scanning", id="alert-7")
    ws.excuse(old)  # killed on purpose
    status, answer = post(base + "/leak-report", body, signed(key, body))

    assert status == 202, answer
    assert (answer["status"], answer["credential"], answer["action"]) == ("accepted", "trading", "revoke_previous")
    report_id = str(answer["id"])
    wait_until("the leaked previous key rejected", lambda: not ws.works(old), timeout=30)
    daemon.wait_for(rf"leak report {report_id}: the revoke of the previous key ended", stream="err")
    assert ws.current_id() == new.key_id, "the new key stays current: no second rotation"
    assert ws.works(new)
    assert ws.active_ids() == {new.key_id}
    assert len(ws.investor_keys()) == 2, "no key minted for the report"

    entries = history_lines(ws)
    noted = [e for e in entries if e.get("step") == "leak_report"]
    assert len(noted) == 1, entries
    assert report_id in str(noted[0]["reason"])
    assert "github-secret-scanning" in str(noted[0]["reason"])
    assert [e["event"] for e in entries[entries.index(noted[0]) :]][-1] == "completed"

    again = report(public_key=old.api_key)
    status, answer = post(base + "/leak-report", again, signed(key, again))
    assert (status, answer) == (200, {"status": "already_rotated", "id": report_id, "credential": "trading"})
    assert daemon.stop() == ExitCode.OK, daemon.tail()
