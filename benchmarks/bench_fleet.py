"""Fleet benchmark: `rotator rotate --all` over many production credentials under one tenant (manager) key, against
the ceiling Bluum's rate limit sets, and against the sequential loop measured in the same run.

Setup, on the simulator (real HTTP on loopback) with production limits (25 requests/s per key pair) and 0.5 s
propagation: one tenant key manages N investor credentials, each with its own dotenv store, grace 0 so the old key
is revoked in the run. The rotator runs as a child process (`python -m rotator rotate --all`), so its peak RSS is
its own (os.wait4), not the simulator's.

Figures:
- ceiling: 25 / (tenant calls per rotation) rotations/s, the most the shared tenant key can carry; the tenant calls
  are counted in the simulator's request log, not assumed.
- achieved / ceiling, over the run's Bluum traffic (first to last request) and over the whole command (with its
  start-up); the issue asks >= 0.9.
- fleet / sequential: the same command with `[fleet] concurrency = 1` on a smaller fleet (its rate is steady), >= 4.
- 429 answers (0 wanted), failures (0 wanted), most tenant requests in any 1-second window (<= 25).
- peak RSS of the rotator process at N (<= 80 MB wanted at 100), and how it grows to 1,000.
- the first N again with `[bluum] shared_budget_dir`: what counting the window across processes costs.

Run: .venv/bin/python benchmarks/bench_fleet.py [N ...]     (default: 100 1000)
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rotator.bluum.client import BluumClient
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator

PROPAGATION = 0.5
PRODUCTION_LIMIT = 25
SEQUENTIAL_FLEET = 20


@dataclass
class Run:
    credentials: int
    wall: float
    traffic_span: float
    tenant_calls: int
    answered_429: int
    failures: int
    peak_window: int
    rss_mb: float
    exit_code: int

    @property
    def calls_per_rotation(self) -> float:
        return self.tenant_calls / self.credentials

    @property
    def ceiling(self) -> float:
        return PRODUCTION_LIMIT / self.calls_per_rotation

    def rate(self, seconds: float) -> float:
        return self.credentials / seconds


def _dotenv(pair: KeyPair, base_url: str) -> str:
    return (
        f"BLUUM_API_KEY={pair.api_key}\nBLUUM_API_SECRET={pair.api_secret.reveal()}\n"
        f"BLUUM_KEY_ID={pair.key_id}\nBLUUM_ENVIRONMENT=production\nBLUUM_BASE_URL={base_url}\n"
    )


def seed(sim: Simulator, folder: Path, count: int, concurrency: int | None, shared: bool = False) -> tuple[Path, str]:
    """A tenant key and `count` investor credentials with their first keys; returns rotator.toml and the tenant id."""
    tenant = sim.create_tenant_key(environment="PRODUCTION")
    tenant_pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.PRODUCTION, tenant["id"])
    (folder / "tenant.env").write_text(_dotenv(tenant_pair, sim.base_url))
    toml = [
        '[stores.tenant]\ntype = "env"\npath = "tenant.env"\n',
        f'[credentials.tenant]\nenvironment = "production"\nbase_url = "{sim.base_url}"\nissuer = "manual"\n'
        'store = "tenant"\n',
    ]
    if concurrency is not None:
        toml.append(f"[fleet]\nconcurrency = {concurrency}\n")
    if shared:
        toml.append('[bluum]\nshared_budget_dir = "budget"\n')
    with BluumClient(sim.base_url, rate_limits={Environment.PRODUCTION: math.inf}) as client:
        for n in range(count):
            investor = sim.create_investor()
            first = client.create_investor_key(
                tenant_pair,
                investor,
                name=f"first {n}",
                environment=Environment.PRODUCTION,
                idempotency_key=uuid.uuid4().hex,
            )
            (folder / f"app{n}.env").write_text(_dotenv(first.pair, sim.base_url))
            toml.append(f'[stores.app{n}]\ntype = "env"\npath = "app{n}.env"\n')
            toml.append(
                f'[credentials.app{n}]\nenvironment = "production"\nbase_url = "{sim.base_url}"\nissuer = "bluum"\n'
                f'investor_id = "{investor}"\nmanager = "tenant"\nstore = "app{n}"\ngrace = "0s"\n'
                'verify_timeout = "60s"\n'
            )
    for path in folder.glob("*.env"):
        path.chmod(0o600)
    config = folder / "rotator.toml"
    config.write_text("\n".join(toml))
    return config, str(tenant["id"])


def run(count: int, *, concurrency: int | None = None, shared: bool = False) -> Run:
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
        config, tenant_id = seed(sim, Path(tmp), count, concurrency, shared)
        sim.advance_clock(60)  # the first keys are long propagated
        sim.configure(rate_limits={"TEST": 10, "PRODUCTION": PRODUCTION_LIMIT}, propagation_delay=PROPAGATION)
        before = len(sim.request_log())
        command = [sys.executable, "-m", "rotator", "-q", "--log-format", "json", "--config", str(config)]
        started = time.perf_counter()
        child = subprocess.Popen(
            [*command, "rotate", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        log = sim.request_log()[before:]
        done = subprocess.run([*command, "status", "--json"], capture_output=True, text=True, cwd=tmp, check=False)
    import json

    rows = json.loads(done.stdout)
    failures = sum(1 for row in rows if row["name"] != "tenant" and row["stage"] != "idle")
    tenant = [entry for entry in log if entry.get("key_id") == tenant_id]
    times = sorted(float(entry["time"]) for entry in tenant)
    peak = max((_in_window(times, i) for i in range(len(times))), default=0)
    span = float(log[-1]["time"]) - float(log[0]["time"]) if log else wall
    return Run(
        credentials=count,
        wall=wall,
        traffic_span=span,
        tenant_calls=len(tenant),
        answered_429=sum(1 for entry in log if entry.get("status") == 429),
        failures=failures + (child.returncode != 0),
        peak_window=peak,
        rss_mb=usage.ru_maxrss / 1024,
        exit_code=child.returncode,
    )


def _in_window(times: list[float], start: int) -> int:
    """How many of the sorted `times` fall in the 1-second window that opens at times[start]."""
    end = start
    while end < len(times) and times[end] < times[start] + 1.0:
        end += 1
    return end - start


def main(sizes: list[int]) -> None:
    sequential = run(SEQUENTIAL_FLEET, concurrency=1)
    seq_rate = sequential.rate(sequential.wall)
    print(
        f"sequential loop ({SEQUENTIAL_FLEET} credentials, concurrency 1): {seq_rate:.2f} rotations/s, "
        f"{sequential.calls_per_rotation:.2f} tenant calls per rotation, peak RSS {sequential.rss_mb:.0f} MB, "
        f"exit {sequential.exit_code}"
    )
    for size in sizes:
        fleet = run(size)
        over_traffic = fleet.rate(fleet.traffic_span)
        over_wall = fleet.rate(fleet.wall)
        print(
            f"fleet of {size}: exit {fleet.exit_code}, {fleet.wall:.1f}s wall, Bluum traffic {fleet.traffic_span:.1f}s"
        )
        print(f"  tenant calls per rotation {fleet.calls_per_rotation:.2f} -> ceiling {fleet.ceiling:.2f} rotations/s")
        print(
            f"  achieved {over_traffic:.2f} rotations/s over the traffic = {over_traffic / fleet.ceiling:.2f} of the "
            f"ceiling; {over_wall:.2f}/s over the whole command = {over_wall / fleet.ceiling:.2f}"
        )
        print(f"  vs the sequential loop: {over_wall / seq_rate:.1f}x (whole command against whole command)")
        print(
            f"  429 answers {fleet.answered_429}, failures {fleet.failures}, most tenant requests in 1 s "
            f"{fleet.peak_window} (limit {PRODUCTION_LIMIT})"
        )
        print(f"  peak RSS {fleet.rss_mb:.1f} MB ({fleet.rss_mb / size * 1024:.0f} KB per credential)")
        if size == sizes[0]:
            shared = run(size, shared=True)
            rate = shared.rate(shared.traffic_span)
            print(
                f"  with [bluum] shared_budget_dir (the window counted in a file under flock, for every process on "
                f"the host): {rate:.2f}/s = {rate / shared.ceiling:.2f} of the ceiling, {rate / over_traffic:.2f}x "
                f"the per-process window; 429 answers {shared.answered_429}, failures {shared.failures}"
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000])
