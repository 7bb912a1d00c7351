"""A pause against the other schedulers and the alarm: the daemon (a real process) skips a paused due credential and
rotates it once unpaused; the tick's overdue alert still reaches the webhook for a paused key, and says it is paused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_cli_rotation import assert_rotated
from tests.e2e.test_daemon import TICK, DaemonProcess, wait_until
from tests.e2e.test_pause import due_now
from tests.e2e.test_review_scenarios import said
from tests.integration.test_webhooks import KEY, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_the_daemon_skips_a_paused_credential_and_rotates_it_after_unpause(ws: Workspace, tmp_path: Path):
    due_now(ws)
    assert ws.run("pause", "trading", "--reason", "daemon freeze").returncode == ExitCode.OK
    daemon = DaemonProcess(ws, *TICK)
    try:
        daemon.wait_for(r"tick 2: done in [\d.]+s: 2 ok;")  # two ticks over the due credential: nothing started
        assert ws.current_id() == ws.first.info.id
        assert ws.active_ids() == {ws.first.info.id}
        assert ws.run("unpause", "trading").returncode == ExitCode.OK
        wait_until(
            "the daemon to rotate trading", lambda: len(ws.active_ids()) == 1 and ws.current_id() != ws.first.info.id
        )
    finally:
        assert daemon.stop() == ExitCode.OK, daemon.tail()
    assert_rotated(ws)


def test_an_overdue_paused_key_still_alerts_and_says_it_is_paused(ws: Workspace, receiver: Receiver):
    assert ws.run("rotate", "trading").returncode == ExitCode.OK  # its age is known from here on
    assert ws.run("pause", "trading", "--reason", "vendor audit").returncode == ExitCode.OK
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "2s"')
    ws.add_config(
        f'\n[notifications.oncall]\nurl = "{receiver.url}"\nsecret_env = "ROTATOR_WEBHOOK_KEY"\nevents = ["overdue"]\n'
    )
    time.sleep(2.1)  # the key is past its (short) rotation period
    rotated = ws.current_id()
    tick = ws.run("run-due", env={"ROTATOR_WEBHOOK_KEY": KEY})
    assert tick.returncode == ExitCode.OK, said(tick)
    assert "trading: due, but not started: paused by" in tick.stdout, said(tick)
    assert ws.current_id() == rotated
    overdue = [body for body in receiver.accepted if body["event"] == "overdue"]
    assert len(overdue) == 1, receiver.bodies
    assert "PAUSED" in overdue[0]["message"]
    assert "vendor audit" in overdue[0]["message"]
    assert "rotator unpause trading" in overdue[0]["message"]
