"""Store storm benchmark: how many rotations complete while the primary store misbehaves (issue 17).

Each rotation is the real CLI (`rotator rotate trading`, a subprocess) of a fresh credential whose key is kept first
in Vault (a real OpenBao dev server) or in Secrets Manager (moto in server mode, its DynamoDB holding the lease), with
a dotenv mirror beside it, against the Bluum simulator. The rotator reaches the store only through a fault proxy on
loopback (`tests/fault_proxy.py`) that, per request, answers 500 or 503 (10 %), drops the connection before or after
forwarding it (3 %), or holds it 1-3 s (5 %), drawn from a generator seeded per rotation. A rotation completed when it
exited 0 and the store and the mirror both hold a new key. The ratio Vault / AWS is what the issue asks to be near 1.

Run: .venv/bin/python benchmarks/bench_store_storm.py [--vault 18] [--aws 32] [--seed 17]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.*: the same servers and proxy the tests use

from rotator.simulator import Simulator
from tests.fault_proxy import FaultProxy, StormPlan
from tests.store_workspaces import StoreWorkspace, aws_workspace, vault_workspace


def completed(ws: StoreWorkspace, code: int) -> bool:
    first = str(ws.first.key_id)
    shown = ws.shown_key_id()
    return code == 0 and shown not in (None, first) and ws.mirror_key_id() == shown


def storm(name: str, count: int, seed: int, make: object, proxy: FaultProxy, folder: Path) -> tuple[int, float]:
    """`count` rotations under the storm; prints each outcome, returns how many completed and the wall seconds."""
    done, codes = 0, collections.Counter[int]()
    started = time.perf_counter()
    for n in range(count):
        ws = make(folder / f"{name}-{n}")  # type: ignore[operator]
        proxy.plan = StormPlan(seed=seed * 1000 + n)
        result = ws.run("rotate", "trading")
        ok = completed(ws, result.returncode)
        done += ok
        codes[result.returncode] += 1
        last = (result.stderr.strip().splitlines() or [""])[-1][:160]
        print(f"  {name} #{n:2d}: exit {result.returncode} {'completed' if ok else 'NOT completed: ' + last}")
    wall = time.perf_counter() - started
    shown = ", ".join(f"exit {code}: {n}" for code, n in sorted(codes.items()))
    print(f"{name}: {done}/{count} completed ({shown}) in {wall:.0f} s")
    return done, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vault", type=int, default=18)
    parser.add_argument("--aws", type=int, default=32)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    import logging

    from moto.server import ThreadedMotoServer

    from tests.aws_fixtures import Moto
    from tests.openbao import OpenBao

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request lines
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    moto = Moto(url=f"http://{host}:{port}")
    moto.create_ledger_table()
    try:
        with tempfile.TemporaryDirectory() as tmp, Simulator() as sim, OpenBao.dev(Path(tmp) / "bao") as bao:
            sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
            folder = Path(tmp)
            with FaultProxy(bao.url) as vault_proxy, FaultProxy(moto.url) as aws_proxy:
                vault_done, _ = storm(
                    "vault",
                    args.vault,
                    args.seed,
                    lambda at: vault_workspace(sim, bao, vault_proxy.url, at),
                    vault_proxy,
                    folder,
                )
                aws_done, _ = storm(
                    "aws",
                    args.aws,
                    args.seed,
                    lambda at: aws_workspace(sim, moto, aws_proxy.url, at),
                    aws_proxy,
                    folder,
                )
    finally:
        moto_server.stop()
    vault_rate = vault_done / args.vault if args.vault else float("nan")
    aws_rate = aws_done / args.aws if args.aws else float("nan")
    print(f"store storm: 10 % 500/503, 3 % dropped connections, 5 % 1-3 s delays (seed {args.seed})")
    print(f"  Vault (OpenBao): {vault_done}/{args.vault} completed ({vault_rate:.0%})")
    print(f"  AWS (moto):      {aws_done}/{args.aws} completed ({aws_rate:.0%})")
    if aws_rate:
        print(f"  ratio Vault / AWS completion rate: {vault_rate / aws_rate:.2f}")


if __name__ == "__main__":
    main()
