"""Rotation benchmark: wall time of one rotation on the simulator, how much of it is waiting, and the cost of
the rotator beside a baseline measured in the same run.

Baseline: the same Bluum calls one rotation makes (list keys, check current, create, check new three times:
before deploy, after deploy, before revoking; list again to find the old key by its public key, revoke, check
old), issued straight through BluumClient
with no store I/O, no record writes, no fsync. The ratio
rotation / baseline is what the rotator's bookkeeping (atomic dotenv + sidecar writes, read-backs, records)
cost on top of the calls it cannot avoid. Both are measured with Bluum's real rate limit (10 req/s per key
pair in sandbox, paced by our throttle), and again with the throttle lifted to show the rotator's own cost.

Run: .venv/bin/python benchmarks/bench_rotation.py
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rotator.bluum.client import BluumClient
from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.model import Environment, KeyPair
from rotator.ops.app import assemble
from rotator.simulator import Simulator

ROUNDS = 5


def setup(sim: Simulator, folder: Path, rate_limit: float) -> tuple[Path, KeyPair, str, KeyPair]:
    account = open_account(sim, "bench")
    tenant_pair, investor, first = account.tenant_pair, account.investor, account.first
    config = seed_workspace(folder, sim.base_url, tenant_pair, investor, first.pair)
    limit = "inf" if math.isinf(rate_limit) else str(rate_limit)
    config.write_text(config.read_text() + f"\n[bluum]\nrate_limit_sandbox = {limit}\n")
    return config, tenant_pair, investor, first.pair


def rotation(config: Path) -> tuple[float, float, float]:
    """Wall seconds, seconds spent sleeping, CPU seconds of this process (the in-process simulator included)."""
    app = assemble(load_config(config))  # as the command line assembles it: history and sinks included
    service = app.service
    started, cpu = time.perf_counter(), time.process_time()
    with app:
        service.rotate("trading")
    return time.perf_counter() - started, service.waited, time.process_time() - cpu


def bare_calls(sim: Simulator, tenant: KeyPair, investor: str, current: KeyPair, rate: float) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    with BluumClient(sim.base_url, rate_limits={Environment.SANDBOX: rate}) as client:
        client.list_investor_keys(tenant, investor)
        client.check(current)
        created = client.create_investor_key(
            tenant, investor, name="bare", environment=Environment.SANDBOX, idempotency_key=uuid.uuid4().hex
        )
        client.check(created.pair)  # accepted before deploy
        client.check(created.pair)  # confirmed after deploy
        client.check(created.pair)  # re-checked before the old key is revoked
        client.list_investor_keys(tenant, investor)  # the old key, found by its public key just before revoking
        assert current.key_id is not None
        client.revoke_investor_key(tenant, investor, current.key_id)
        client.check(current)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        client.revoke_investor_key(tenant, investor, created.info.id)  # not timed: cleanup only
    return elapsed, cpu


def measure(rate: float, label: str) -> None:
    walls, waits, bares, cpus, bare_cpus = [], [], [], [], []
    with Simulator() as sim:
        sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory() as tmp:
                config, tenant, investor, current = setup(sim, Path(tmp), rate)
                wall, waited, cpu = rotation(config)
                walls.append(wall)
                waits.append(waited)
                cpus.append(cpu)
            with tempfile.TemporaryDirectory() as tmp:
                _, tenant, investor, current = setup(sim, Path(tmp), rate)
                bare, bare_cpu = bare_calls(sim, tenant, investor, current, rate)
                bares.append(bare)
                bare_cpus.append(bare_cpu)
    wall, wait, bare = statistics.median(walls), statistics.median(waits), statistics.median(bares)
    cpu, bare_cpu = statistics.median(cpus), statistics.median(bare_cpus)
    print(f"{label}")
    print(f"  one rotation (2 stores):  {wall * 1000:7.1f} ms median of {ROUNDS}")
    print(f"    of which waiting (sleep):        {wait * 1000:7.1f} ms ({wait / wall:.0%})")
    print(f"  baseline: the same Bluum calls:    {bare * 1000:7.1f} ms")
    print(f"  ratio rotation / baseline:          {wall / bare:7.2f}x")
    print(f"  CPU of one rotation:               {cpu * 1000:7.1f} ms (the in-process simulator included)")
    print(f"  CPU of the same calls made bare:   {bare_cpu * 1000:7.1f} ms")
    print(f"  CPU ratio rotation / baseline:      {cpu / bare_cpu:7.2f}x")


def main() -> None:
    measure(10.0, "with Bluum's sandbox rate limit (10 req/s per key pair, paced by our throttle)")
    measure(math.inf, "throttle lifted (the rotator's own cost)")


if __name__ == "__main__":
    main()
