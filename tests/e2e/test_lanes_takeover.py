"""The lane's holder frozen (SIGSTOP) mid-fleet: another daemon takes the lane over at its expiry and finishes the
fleet, and the holder, thawed, sends nothing more to Bluum and says it lost the lane (issue 20, "Many hosts").

Real processes: two `rotator daemon` on two "hosts" (`unshare --uts`, where that can be made), one OpenBao, the
simulator over HTTP; a 4 s lease so the take-over happens in seconds. benchmarks/bench_lanes.py measures the same
with a bigger fleet on OpenBao and moto, beside the baseline without lanes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rotator.simulator import Simulator
from tests.lane_fleet import Daemon, can_make_hosts, statuses, vault_fleet
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow

QUICK = '[bluum]\ntimeout = "1s"\nretry_budget = "1s"\n\n[ledger]\nlease_ttl = "4s"\n'
"""The longest request in flight is 2 s (a Bluum call of 1 s + 1 s of retries; a Vault request of 2 x 1 s): the lease
is two of it, and another runner takes over 6 s after the holder's last renewal."""


def test_a_frozen_lane_holder_is_taken_over_and_sends_nothing_once_thawed(
    sim: Simulator, openbao: OpenBao, vault_path: str, tmp_path: Path
) -> None:
    config, _, investors = vault_fleet(
        sim, openbao, vault_path, tmp_path, 3, fleet="[fleet]\nconcurrency = 3\nlanes = true\n", timing=QUICK
    )
    sim.configure(propagation_delay=3.0)  # A's rotations wait for their new keys when it is frozen
    before = len(sim.request_log())
    env = {"VAULT_TOKEN": openbao.root_token}
    a_host, b_host = ("lanes-a", "lanes-b") if can_make_hosts() else (None, None)
    a = Daemon(config, env, a_host, tmp_path)
    b: Daemon | None = None
    try:
        wait_for(lambda: created(sim, before) == 3, "A to start every rotation")
        os.kill(a.proc.pid, signal.SIGSTOP)
        b = Daemon(config, env, b_host, tmp_path)
        wait_for(lambda: all(rotated_once(sim, inv) for inv in investors), "B to finish the fleet", timeout=60)
        thawed = time.time()
        os.kill(a.proc.pid, signal.SIGCONT)
        wait_for(lambda: "the lane of paying key tenant is lost" in a.said(), "A to notice", timeout=20)
        time.sleep(1.0)
    finally:
        for daemon in (a, b):
            if daemon is not None:
                daemon.stop()
    assert b is not None
    assert "waiting: the lane of paying key tenant is held by" in b.said()
    # Until A takes the lane again in a later tick (B gives it up at the end of each of its ticks, so that is A's
    # right), the thawed A sends nothing: the tick it was frozen in stops at its next request.
    assert a.bluum_sends_after(thawed, until=a.lane_taken_after(thawed)) == 0, a.err.read_text()[-3000:]
    assert a.bluum_sends_after(0.0) > 0  # A's log is counted: it sent before it was frozen
    assert created(sim, before) == 3  # B resumed A's rotations: no key minted twice
    assert 429 not in statuses(sim, before)


def created(sim: Simulator, since: int) -> int:
    return sum(
        entry["method"] == "POST" and str(entry["path"]).endswith("/api-keys") and int(str(entry["status"])) < 300
        for entry in sim.request_log()[since:]
    )


def rotated_once(sim: Simulator, investor: str) -> bool:
    keys = [key for key in sim.keys() if key.get("owner") == investor]
    return len(keys) == 2 and sum(key["status"] == "active" for key in keys) == 1


def wait_for(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)
