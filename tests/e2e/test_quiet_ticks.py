"""Ticks that change nothing leave no trace (issue 20, "found when tried as a new user would").

A rotation waiting out its grace window used to add `resumed` and `waiting` to its history at every tick, and count
both in /metrics (`rotations_started_total{kind="resumed"}`, `rotations_total{outcome="waiting"}`): the history and
the counters grew with the ticks, not with the rotations. Here the real daemon ticks every second through a grace
window and past it: the idle ticks add nothing, and the tick that revokes the old key adds exactly that rotation's
entries and counts it once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_daemon import RUNNING, DaemonProcess, http_get, wait_until

pytestmark = pytest.mark.slow

GRACE = 5
"""Seconds: room for the daemon to start and tick at least once inside the window on a slow machine."""


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().close()


def history_events(ws: Workspace) -> list[tuple[str, str]]:
    text = (ws.root / "rotator-history" / "trading.jsonl").read_text()
    ws.guard.check(text, "history file")
    return [(entry["event"], entry.get("step", "")) for entry in map(json.loads, text.splitlines())]


def test_idle_ticks_add_no_history_and_count_nothing_and_the_revoke_counts_once(ws: Workspace):
    ws.write_config(grace=f"{GRACE}s")
    rotated = ws.cli("rotate", "trading")
    assert rotated.exit_code == ExitCode.OK, rotated.output
    before = history_events(ws)
    assert before[-1] == ("waiting", "grace")

    daemon = DaemonProcess(ws, "--every", "1s", "--jitter", "0s", "--metrics-listen", "127.0.0.1:0")
    base = daemon.wait_for(r"/metrics and /healthz on (http://[^;\s]+)[;\s]").group(1)
    wait_until("the old key revoked", lambda: len(ws.active_ids()) == 1, timeout=GRACE + 30)
    revoked_at = revoking_tick(daemon)
    daemon.wait_for(rf"tick {revoked_at + 2}: done")  # two idle ticks after it
    assert revoked_at >= 2, f"no tick ran inside the grace window: nothing was tested\n{daemon.tail()}"

    after = history_events(ws)
    assert after[: len(before)] == before
    added = after[len(before) :]
    assert added[0] == ("resumed", "resume"), added
    assert added[-1][0] == "completed", added
    assert [kind for kind, _ in added].count("resumed") == 1, added
    assert "waiting" not in [kind for kind, _ in added], added

    status, text = http_get(base + "/metrics")
    assert status == 200
    counted = {
        (sample.name, sample.labels.get("outcome") or sample.labels.get("kind")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("bluum_rotator_rotations") and sample.name.endswith("_total")
        if sample.labels.get("credential") == "trading"
    }
    assert counted == {
        ("bluum_rotator_rotations_started_total", "resumed"): 1,  # the tick that revoked, not every tick
        ("bluum_rotator_rotations_total", "completed"): 1,  # and no `waiting` at all: the wait began before
    }, counted
    assert daemon.stop() == 0


def revoking_tick(daemon: DaemonProcess) -> int:
    """The number of the tick whose lines say it revoked trading's old key."""
    daemon.wait_for(r"trading: revoke +revoked")
    tick = 0
    for line in list(daemon.out):
        started = re.match(r"tick (\d+): started", line)
        tick = int(started.group(1)) if started else tick
        if re.search(r"trading: revoke +revoked", line):
            return tick
    raise AssertionError(daemon.tail())
