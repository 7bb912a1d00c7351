"""Lanes benchmark: two daemons on two "hosts" sharing one tenant key, with and without `[fleet] lanes` (issue 20).

For each primary (Vault: a real OpenBao dev server; Secrets Manager: moto in server mode, its DynamoDB holding the
leases and lanes), a fleet of investor credentials that one tenant key pays for, on the Bluum simulator at sandbox's
10 requests/s per key:

1. baseline, lanes off: two `rotator daemon --every 1s` processes, each in a UTS namespace of its own (`unshare
   --uts` with host names bench-a and bench-b), started together. Each paces the tenant key at its whole rate, so
   together they send up to twice it: the 429s Bluum answers are counted. Each credential's own lease still keeps
   them from rotating one credential twice.
2. lanes on, the same: one daemon holds the tenant key's lane and rotates the fleet; the other says it waits.
   Expected: 0 x 429, every credential rotated exactly once (two keys ever per investor, one active).
3. take-over, lanes on: daemon A takes the lane and starts rotating; once a third of the fleet's tenant requests
   went out, A is frozen (SIGSTOP). B, waiting, takes the lane over once A's lease (plus the longest request A may
   still have in flight) has run out, and finishes the fleet, resuming what A left half-way once those credentials'
   own leases ran out. Then A is thawed (SIGCONT): the Bluum requests A sends after that are counted (expected: 0;
   its own clocks tell it the lane and the leases ran out).

Printed: the figures of each, the baseline beside lanes in the same run, and the take-over time beside the lease.

Run (as root, for `unshare --uts`): .venv/bin/python benchmarks/bench_lanes.py [--primary vault aws] [--count 24]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.*: the same servers and fleets the tests use

from rotator.simulator import Simulator
from tests.lane_fleet import Daemon, aws_fleet, vault_fleet

EVERY = "1s"
LEASE, IN_FLIGHT = 12.0, 6.0
"""tests/lane_fleet.SHORT_LEASE: `[ledger] lease_ttl` and the longest request in flight ([bluum] timeout + budget)."""
Made = tuple[Path, str, list[str], dict[str, str]]
"""A fleet made: its rotator.toml, the tenant key's id, the investors, and what a daemon's environment needs."""
Fleet = Callable[[Simulator, Path, int, str], Made]


@dataclass
class Run:
    primary: str
    lanes: bool
    seconds: float
    tenant_requests: int
    answered_429: int
    peak_per_second: int
    rotated_once: int
    count: int
    waiting_lines: int


@dataclass
class Takeover:
    primary: str
    takeover_after: float
    finished_after: float
    rotated_once: int
    count: int
    sent_before_freeze: int
    """Bluum requests A logged in all before it was frozen: what shows its log is being counted."""
    sent_after_thaw: int
    lost_said: bool


def tenant_requests(sim: Simulator, tenant: str, since: int) -> list[dict[str, Any]]:
    return [entry for entry in sim.request_log()[since:] if entry.get("key_id") == tenant]


def keys_ever(sim: Simulator, investors: Sequence[str]) -> list[tuple[int, int]]:
    """(keys ever, keys active) per investor: (2, 1) is rotated exactly once."""
    keys = sim.keys()
    return [
        (sum(k.get("owner") == inv for k in keys), sum(k.get("owner") == inv and k["status"] == "active" for k in keys))
        for inv in investors
    ]


def wait_rotated(sim: Simulator, investors: Sequence[str], timeout: float) -> float:
    """Seconds until every investor's key was rotated (or `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(ever >= 2 and active == 1 for ever, active in keys_ever(sim, investors)):
            break
        time.sleep(0.2)
    return time.monotonic() - started


def peak(entries: Sequence[dict[str, Any]]) -> int:
    """The most requests in any one second."""
    times = sorted(float(entry["time"]) for entry in entries)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def two_daemons(sim: Simulator, fleet: Fleet, primary: str, folder: Path, count: int, lanes: bool) -> Run:
    lanes_line = f"lanes = {str(lanes).lower()}"
    config, tenant, investors, env = fleet(sim, folder, count, f"[fleet]\nconcurrency = {count}\n{lanes_line}\n")
    before = len(sim.request_log())
    started = time.monotonic()
    daemons = [Daemon(config, env, host, folder, every=EVERY) for host in ("bench-a", "bench-b")]
    try:
        seconds = wait_rotated(sim, investors, timeout=180)
        time.sleep(2.0)  # a tick or two more: nothing is rotated twice
    finally:
        for daemon in daemons:
            daemon.stop()
    sent = tenant_requests(sim, tenant, before)
    said = "".join(daemon.said() for daemon in daemons)
    return Run(
        primary=primary,
        lanes=lanes,
        seconds=min(seconds, time.monotonic() - started),
        tenant_requests=len(sent),
        answered_429=sum(int(str(entry["status"])) == 429 for entry in sim.request_log()[before:]),
        peak_per_second=peak([entry for entry in sent if int(str(entry["status"])) != 429]),
        rotated_once=sum(pair == (2, 1) for pair in keys_ever(sim, investors)),
        count=count,
        waiting_lines=said.count("waiting: the lane of paying key"),
    )


def takeover(sim: Simulator, fleet: Fleet, primary: str, folder: Path, count: int) -> Takeover:
    config, tenant, investors, env = fleet(sim, folder, count, f"[fleet]\nconcurrency = {count}\nlanes = true\n")
    before = len(sim.request_log())
    a = Daemon(config, env, "bench-a", folder, every=EVERY)
    b: Daemon | None = None
    try:
        _wait(lambda: len(tenant_requests(sim, tenant, before)) >= 1, 60)
        b = Daemon(config, env, "bench-b", folder, every=EVERY)  # A holds the lane: B waits
        _wait(lambda: len(tenant_requests(sim, tenant, before)) >= count, 60)  # about a third of the fleet's calls
        os.kill(a.proc.pid, signal.SIGSTOP)
        frozen, seen = time.monotonic(), len(sim.request_log())
        _wait(lambda: bool(tenant_requests(sim, tenant, seen)), 120)  # only B can send now
        taken = time.monotonic() - frozen
        finished = taken + wait_rotated(sim, investors, timeout=180)
        thawed = time.time()
        os.kill(a.proc.pid, signal.SIGCONT)
        time.sleep(4.0)
    finally:
        for daemon in (a, b):
            if daemon is not None:
                daemon.stop()
    return Takeover(
        primary=primary,
        takeover_after=taken,
        finished_after=finished,
        rotated_once=sum(pair == (2, 1) for pair in keys_ever(sim, investors)),
        count=count,
        sent_before_freeze=a.bluum_sends_after(0.0) - a.bluum_sends_after(thawed),
        sent_after_thaw=a.bluum_sends_after(thawed, until=a.lane_taken_after(thawed)),  # before it may send again
        lost_said="the lane of paying key tenant is lost" in a.said(),
    )


def _wait(done: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the benchmark's daemons did not get there in time")
        time.sleep(0.05)


def report(runs: list[Run], takeovers: list[Takeover]) -> None:
    print("\ntwo daemons, two hosts, one tenant key (sandbox: 10 requests/s)")
    print(
        f"{'primary':8} {'lanes':6} {'fleet':>5} {'seconds':>8} {'tenant req':>10} {'429s':>5} {'peak/s':>7} "
        f"{'rotated once':>13} {'waiting lines':>13}"
    )
    for run in runs:
        print(
            f"{run.primary:8} {'on' if run.lanes else 'off':6} {run.count:5} {run.seconds:8.1f} "
            f"{run.tenant_requests:10} {run.answered_429:5} {run.peak_per_second:7} "
            f"{run.rotated_once:>6} of {run.count:<4} {run.waiting_lines:13}"
        )
    print(
        f"\ntake-over after SIGSTOP (lease {LEASE:.0f} s + longest request in flight {IN_FLIGHT:.0f} s = "
        f"{LEASE + IN_FLIGHT:.0f} s at the ledger, from A's last renewal)"
    )
    print(
        f"{'primary':8} {'take-over':>10} {'fleet done':>11} {'rotated once':>13} {'A sent before':>14} "
        f"{'A sent after thaw':>18} {'A said lost':>12}"
    )
    for t in takeovers:
        print(
            f"{t.primary:8} {t.takeover_after:9.1f}s {t.finished_after:10.1f}s {t.rotated_once:>6} of {t.count:<4} "
            f"{t.sent_before_freeze:14} {t.sent_after_thaw:18} {t.lost_said!s:>12}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", nargs="*", default=["vault", "aws"], choices=["vault", "aws"])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--no-takeover", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("two hosts need `unshare --uts`, which needs root")
    from tests.openbao import OpenBao

    runs: list[Run] = []
    takeovers: list[Takeover] = []
    with tempfile.TemporaryDirectory(prefix="bench-lanes-") as tmp, Simulator() as sim:
        moto_proc, moto = _moto(Path(tmp))
        try:
            with OpenBao.dev(Path(tmp) / "bao") as bao:
                fleets: dict[str, Fleet] = {
                    "vault": lambda s, f, n, fl: _vault(s, bao, f, n, fl),
                    "aws": lambda s, f, n, fl: _aws(s, moto, f, n, fl),
                }
                for primary in args.primary:
                    for lanes in (False, True):
                        folder = Path(tmp) / f"{primary}-{lanes}"
                        folder.mkdir()
                        runs.append(two_daemons(sim, fleets[primary], primary, folder, args.count, lanes))
                        print(runs[-1], flush=True)
                    if not args.no_takeover:
                        folder = Path(tmp) / f"{primary}-takeover"
                        folder.mkdir()
                        takeovers.append(takeover(sim, fleets[primary], primary, folder, args.count))
                        print(takeovers[-1], flush=True)
        finally:
            moto_proc.terminate()
            moto_proc.wait(timeout=30)
    report(runs, takeovers)


def _vault(sim: Simulator, bao: Any, folder: Path, count: int, fleet: str) -> Made:
    config, tenant, investors = vault_fleet(sim, bao, f"bench/{uuid.uuid4().hex[:8]}", folder, count, fleet=fleet)
    return config, tenant, investors, {"VAULT_TOKEN": bao.root_token}


def _aws(sim: Simulator, moto: Any, folder: Path, count: int, fleet: str) -> Made:
    config, tenant, investors = aws_fleet(sim, moto, f"bench/{uuid.uuid4().hex[:8]}", folder, count, fleet=fleet)
    return config, tenant, investors, moto.environ()


def _moto(folder: Path) -> tuple[subprocess.Popen[bytes], Any]:
    """moto in server mode, a process of its own (the daemons and this process reach it over HTTP)."""
    import socket
    import urllib.request

    from tests.aws_fixtures import Moto

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (folder / "moto.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    moto = Moto(url=url)
    moto.create_ledger_table()
    return proc, moto


if __name__ == "__main__":
    main()
