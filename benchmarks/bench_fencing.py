"""Fencing benchmark: a runner frozen at each request boundary of a rotation changes nothing once thawed (issue 17).

For each primary (Vault: a real OpenBao dev server; Secrets Manager: moto in server mode, its DynamoDB holding the
lease), with a dotenv mirror beside it and a short lease (3 s), every request runner A makes goes through a fault proxy
on loopback: one in front of the store, one in front of the Bluum simulator. First one undisturbed rotation records
the sequence of A's requests (store and Bluum). Then, for each request boundary i of that sequence, on a fresh
credential:

1. runner A starts `rotator rotate trading`; when its i-th request reaches a proxy, the proxy holds it (not forwarded)
   and A is frozen (SIGSTOP): a runner frozen with that request on the wire, or right before it went out;
2. once A's lease plus the longest request in flight has passed, runner B, on another "host" (`unshare --uts` with
   another host name, so it cannot judge A by its PID), takes over with `resume`, `rollback` or `rotate` (by i);
3. the held request is then forwarded (it reaches the store or Bluum after the take-over, as a late request would)
   and A is thawed (SIGCONT);
4. what changed after B's take-over ended is compared: the store's contents and its ledger (Vault's path and stage
   document with their versions; AWS's versions, labels and DynamoDB item), the mirror and state files, and Bluum's
   key list; every request A sent after the take-over is listed;
5. then it settles (`resume` if the record is unfinished, then `sweep --revoke --yes`) and I3 is checked: no active
   key of the investor that no store shows. All along, a sampler reads every target every 100 ms and checks I1: no
   store shows a key Bluum has revoked.

A change after the take-over is split in two: one made by the held request itself (it left A before the freeze, so
the store's own checks are all that can refuse it; at Bluum nothing can, which is the in-flight limit the README
names), and one made by a request A sent once thawed (the lease guard must have stopped it).

The harness is tests/freeze_boundaries.py (the e2e test walks a few boundaries with it).

Run: .venv/bin/python benchmarks/bench_fencing.py [--primary vault aws] [--stride 1] [--first 1] [--last 0]
(--stride 1: every boundary; the table is printed at the end.) `PYTHONPATH=<another checkout>` measures that code.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.*: the same servers and proxy the tests use

from rotator.simulator import Simulator
from tests.fault_proxy import FaultProxy
from tests.freeze_boundaries import (
    LEASE_TTL,
    TAKEOVER_WAIT,
    TAKEOVERS,
    Boundary,
    Primary,
    Trial,
    aws_digest,
    fence,
    record_sequence,
    trial,
    vault_digest,
)
from tests.store_workspaces import StoreWorkspace, aws_workspace, vault_workspace


def walk(
    sim: Simulator,
    primary: Primary,
    boundary: Boundary,
    folder: Path,
    picks: Callable[[int], bool],
    takeover: str | None = None,
) -> list[Trial]:
    sequence = record_sequence(primary, boundary, folder)
    lease_at = boundary.lease_at
    print(
        f"{primary.name}: a rotation makes {len(sequence)} requests through the proxies; #{lease_at} takes the lease",
        flush=True,
    )
    trials = []
    for i in range(1, len(sequence) + 1):
        if not picks(i):
            continue
        ws = primary.make(folder / f"{primary.name}-{i}")
        t = trial(sim, primary, boundary, ws, i, takeover or TAKEOVERS[i % len(TAKEOVERS)], leased=i > lease_at)
        trials.append(t)
        flags = [] if t.leased else ["no lease yet when frozen"]
        if not t.reached:
            flags.append("boundary not reached")
        if t.changed_by_held:
            flags.append(f"held request changed {'+'.join(t.changed_by_held)}")
        if t.changed_after:
            flags.append(f"A changed {'+'.join(t.changed_after)} after thaw")
        if t.i1:
            flags.append(f"I1: {t.i1[0]}")
        if t.i3:
            flags.append(f"I3: active unknown {t.i3}")
        unsettled = [line.splitlines()[0] for line in t.settled if not line.endswith(": exit 0")]
        if unsettled:
            flags.append(f"settling failed ({'; '.join(unsettled)})")
        late = [r for r in t.late_requests]
        print(
            f"  {primary.name} #{i:3d} {t.request[:58]:58s} B {t.takeover:8s} exit {t.b_exit}  A exit {t.a_exit}"
            f"  late {len(late)}  {'; '.join(flags) or 'ok'}",
            flush=True,
        )
        if t.leased and t.a_exit != 3:
            print(f"      A said: {t.said}", flush=True)
        if t.leased and (t.changed_after or t.changed_by_held):
            print(f"      A's requests after the take-over: {late}", flush=True)
        if t.i1 or t.i3 or unsettled or t.b_exit in (1, 5):  # a finding: what B and the settling said
            print("      B said:\n" + "\n".join("        " + line for line in t.b_said.splitlines()), flush=True)
            for line in t.settled:
                print("      settling: " + line.replace("\n", "\n        "), flush=True)
    return trials


def table(trials: list[Trial]) -> None:
    print()
    print(
        "| primary | trials | A changed something after losing its lease (held request / sent after thaw) "
        "| a store served a revoked key (I1) | I3 after settling | exit codes seen (A) |"
    )
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(t.primary for t in trials):
        mine = [t for t in trials if t.primary == name and t.reached and t.leased]
        held = sum(1 for t in mine if t.changed_by_held)
        after = sum(1 for t in mine if t.changed_after)
        changed = sum(1 for t in mine if t.changed)
        i1 = sum(1 for t in mine if t.i1)
        i3 = sum(1 for t in mine if t.i3)
        codes = collections.Counter(t.a_exit for t in mine)
        seen = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items(), key=lambda kv: (kv[0] is None, kv[0])))
        print(f"| {name} | {len(mine)} | {changed} ({held} / {after}) | {i1} | {i3} | {seen} |")
    for name in dict.fromkeys(t.primary for t in trials):
        early = [t for t in trials if t.primary == name and not t.leased]
        unreached = [t.boundary for t in trials if t.primary == name and not t.reached]
        if early:
            i1 = sum(1 for t in early if t.i1)
            codes = collections.Counter(t.a_exit for t in early)
            print(
                f"{name}: {len(early)} more boundaries before A took its lease (A may then rotate under a lease of "
                f"its own): I1 broken in {i1}, A's exits {dict(codes)}"
            )
        if unreached:
            print(f"{name}: boundaries A never reached (its requests differed from the recorded run): {unreached}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--primary", nargs="+", choices=("vault", "aws"), default=["vault", "aws"])
    parser.add_argument("--stride", type=int, default=1, help="every N-th boundary (1: each one)")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--last", type=int, default=0, help="0: to the end")
    parser.add_argument("--takeover", choices=TAKEOVERS, help="B always takes over so (default: by turns)")
    parser.add_argument("--only", type=int, nargs="*", default=[], help="just these boundaries (a finding's re-run)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("another host needs `unshare --uts`, which needs root")
    import logging

    from moto.server import ThreadedMotoServer

    from tests.aws_fixtures import Moto
    from tests.openbao import OpenBao

    first, last, stride, only = int(args.first), int(args.last), int(args.stride), set(args.only)

    def picks(i: int) -> bool:
        if only:
            return i in only
        return i >= first and (last == 0 or i <= last) and (i - first) % stride == 0

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    moto = Moto(url=f"http://{host}:{port}")
    moto.create_ledger_table()
    trials: list[Trial] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp, Simulator() as sim, OpenBao.dev(Path(tmp) / "bao") as bao:
            sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
            boundary = Boundary()
            with (
                FaultProxy(sim.base_url, boundary.plan("bluum")) as bluum_proxy,
                FaultProxy(bao.url, boundary.plan("vault")) as vault_proxy,
                FaultProxy(moto.url, boundary.plan("aws")) as aws_proxy,
            ):

                def fenced(ws: StoreWorkspace, store_line: str) -> StoreWorkspace:
                    return fence(ws, sim.base_url, bluum_proxy.url, store_line)

                primaries = {
                    "vault": Primary(
                        "vault",
                        lambda at: fenced(vault_workspace(sim, bao, vault_proxy.url, at), 'type = "vault"\n'),
                        vault_digest(bao),
                    ),
                    "aws": Primary(
                        "aws",
                        lambda at: fenced(aws_workspace(sim, moto, aws_proxy.url, at), 'type = "aws"\n'),
                        aws_digest(moto),
                    ),
                }
                for name in args.primary:
                    trials += walk(sim, primaries[name], boundary, Path(tmp), picks, args.takeover)
    finally:
        moto_server.stop()
    table(trials)
    print(f"({time.perf_counter() - started:.0f} s; lease {LEASE_TTL:g} s, take-over after {TAKEOVER_WAIT:g} s)")


if __name__ == "__main__":
    main()
