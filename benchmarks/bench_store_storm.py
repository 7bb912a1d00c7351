"""Store storm benchmark: how many rotations complete while the primary store misbehaves (issue 17).

Each rotation is the real CLI (`rotator rotate trading`, a subprocess) of a fresh credential whose key is kept first
in Vault (a real OpenBao dev server) or in Secrets Manager (moto in server mode, its DynamoDB holding the lease), with
a dotenv mirror beside it, against the Bluum simulator. The rotator reaches the store only through a fault proxy on
loopback (`tests/fault_proxy.py`) that, per request, answers 500 or 503 (10 %), drops the connection before or after
forwarding it (3 %), or holds it 1-3 s (5 %), drawn from a generator seeded per rotation. A rotation completed when it
exited 0 and the store and the mirror both hold a new key. The ratio Vault / AWS is what the issue asks to be near 1.

With `--lost-answers` it loses instead, in turn, the answer to every store write of one rotation (the proxy forwards
the write, the store applies it, and the connection is closed unanswered), a fresh credential each time, and prints
the exit code and the last line said after each: the table of issue 17's closing note.

Run: .venv/bin/python benchmarks/bench_store_storm.py [--vault 18] [--aws 32] [--seed 17] [--lost-answers]
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
from tests.fault_proxy import FaultProxy, LoseAnswerPlan, Request, StormPlan, aws_write, vault_write
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


def lost_answers(name: str, make: object, proxy: FaultProxy, is_write: object, folder: Path) -> tuple[int, int]:
    """Lose each write's answer in turn; prints one line per write, returns (completed, writes)."""
    plan = LoseAnswerPlan(nth=0, pick=is_write)  # type: ignore[arg-type]
    proxy.plan = plan
    counted = make(folder / f"{name}-count")  # type: ignore[operator]
    assert counted.run("rotate", "trading").returncode == 0, "an undisturbed rotation failed"
    total, done = plan.seen, 0
    for nth in range(1, total + 1):
        plan = LoseAnswerPlan(nth=nth, pick=is_write)  # type: ignore[arg-type]
        proxy.plan = plan
        ws = make(folder / f"{name}-lose-{nth}")  # type: ignore[operator]
        result = ws.run("rotate", "trading")
        ok = completed(ws, result.returncode) and ws.lease_owner() is None
        done += ok
        lost: Request | None = plan.lost
        what = "(never sent)" if lost is None else lost.operation.replace("/v1/secret/data/", "")[:60]
        last = (result.stderr.strip().splitlines() or [""])[-1][:150]
        print(f"  {name} write {nth:2d}/{total} {what:60s} exit {result.returncode} {'completed' if ok else last}")
    print(f"{name}: {done}/{total} rotations completed with one write's answer lost")
    return done, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vault", type=int, default=18)
    parser.add_argument("--aws", type=int, default=32)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--lost-answers", action="store_true", help="lose each write's answer in turn instead")
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
                if args.lost_answers:
                    lost_answers(
                        "vault",
                        lambda at: vault_workspace(sim, bao, vault_proxy.url, at),
                        vault_proxy,
                        vault_write,
                        folder,
                    )
                    lost_answers(
                        "aws", lambda at: aws_workspace(sim, moto, aws_proxy.url, at), aws_proxy, aws_write, folder
                    )
                    return
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
