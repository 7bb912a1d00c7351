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
5. then it settles (`resume` if the record is unfinished, then `sweep`) and I3 is checked: no active key of the
   investor that no store shows. All along, a sampler reads every target every 100 ms and checks I1: no store shows
   a key Bluum has revoked.

A change after the take-over is split in two: one made by the held request itself (it left A before the freeze, so
the store's own checks are all that can refuse it; at Bluum nothing can, which is the in-flight limit the README
names), and one made by a request A sent once thawed (the lease guard must have stopped it).

Run: .venv/bin/python benchmarks/bench_fencing.py [--primary vault aws] [--stride 1] [--first 1] [--last 0]
(--stride 1: every boundary; the table is printed at the end.) `PYTHONPATH=<another checkout>` measures that code.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.*: the same servers and proxy the tests use

from rotator.simulator import Simulator
from tests.fault_proxy import LEDGER_WRITES, Decision, Fate, FaultProxy, Request
from tests.store_workspaces import StoreWorkspace, aws_workspace, vault_workspace

LEASE_TTL = 3.0
CALL = 1.5
"""[bluum] timeout 1 s + retry_budget 0.5 s: the longest request in flight, which a take-over waits for."""
TAKEOVER_WAIT = LEASE_TTL + CALL + 0.7
SHORT_LEASE = '\n[bluum]\ntimeout = "1s"\nretry_budget = "500ms"\nmax_attempts = 2\n\n[ledger]\nlease_ttl = "3s"\n'
STORE_TIMEOUT = "timeout = 0.75\n"
OTHER_HOST = "fencing-other-host"
TAKEOVERS = ("resume", "rollback", "rotate")
SAMPLE_EVERY = 0.1


# ----------------------------------------------------------------------------- the proxies' shared plan


@dataclass
class Boundary:
    """Counts runner A's requests across both proxies; holds the `target`-th one until released."""

    target: int = 0
    mode: str = "count"
    """count: number A's requests (hold the target-th); off: B runs, pass through; watch: log A's late requests."""
    seen: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held_request: str = ""
    lease_at: int = 0
    """The number of A's request that took its lease (0: not yet): boundaries up to it find A holding none."""
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, where: str) -> _Side:
        return _Side(self, where)

    def decide(self, where: str, request: Request) -> Decision:
        name = f"{where} {request.operation}"
        with self._mutex:
            if self.mode == "watch":
                self.late.append(name)
                return Decision(Fate.FORWARD)
            if self.mode != "count":
                return Decision(Fate.FORWARD)
            self.seen.append(name)
            takes = LEDGER_WRITES.get(where, {}).get("taking the lease")
            if not self.lease_at and takes is not None and takes(request):
                self.lease_at = len(self.seen)
            hold = len(self.seen) == self.target
            if hold:
                self.held_request = name
        if hold:
            self.held.set()
            self.release.wait(timeout=300)
        return Decision(Fate.FORWARD)


@dataclass
class _Side:
    boundary: Boundary
    where: str

    def decide(self, request: Request) -> Decision:
        return self.boundary.decide(self.where, request)


# ----------------------------------------------------------------------------- what one trial looks at


@dataclass
class Primary:
    """One primary store and how to digest everything it holds (the rotator's ledger included), past the proxy."""

    name: str
    make: Callable[[Path], StoreWorkspace]
    digest: Callable[[StoreWorkspace], str]


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _config_value(ws: StoreWorkspace, key: str) -> str:
    found = re.search(rf'^{key} = "([^"]+)"', ws.config.read_text(), re.MULTILINE)
    assert found, f"{key} not in {ws.config}"
    return found.group(1)


def vault_digest(bao: Any) -> Callable[[StoreWorkspace], str]:
    from backends.vault import STATE_PREFIX

    root = bao.client()

    def digest(ws: StoreWorkspace) -> str:
        path = _config_value(ws, "path")
        seen: list[object] = []
        for at in (path, STATE_PREFIX + path):
            try:
                answer = root.secrets.kv.v2.read_secret_version(
                    path=at, mount_point="secret", raise_on_deleted_version=True
                )
                seen.append([answer["data"]["metadata"]["version"], answer["data"]["data"]])
            except Exception as exc:  # no stage document yet is a state too
                seen.append(type(exc).__name__)
        return _hash(seen)

    return digest


def aws_digest(moto: Any) -> Callable[[StoreWorkspace], str]:
    from tests.aws_fixtures import LEDGER_TABLE

    sm, dynamo = moto.client("secretsmanager"), moto.client("dynamodb")

    def digest(ws: StoreWorkspace) -> str:
        name = _config_value(ws, "secret_id")
        stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
        values = {v: sm.get_secret_value(SecretId=name, VersionId=v)["SecretString"] for v in stages}
        arn = sm.describe_secret(SecretId=name)["ARN"]
        item = dynamo.get_item(TableName=LEDGER_TABLE, Key={"ledger_id": {"S": arn}}, ConsistentRead=True)
        return _hash([stages, values, item.get("Item")])

    return digest


def files(ws: StoreWorkspace) -> dict[str, str]:
    """The mirror and the rotator's state files, byte for byte (lock files and the history log excluded: a lock is
    no change, and a runner may note there that it stopped)."""
    found = {}
    for path in sorted(ws.folder.rglob("*")):
        name = str(path.relative_to(ws.folder))
        if path.is_file() and not name.endswith(".lock") and not name.startswith("rotator-history"):
            found[name] = _hash(path.read_bytes().hex())
    return found


def investor(ws: StoreWorkspace) -> str:
    return _config_value(ws, "investor_id")


def bluum_keys(sim: Simulator, ws: StoreWorkspace) -> list[tuple[str, str]]:
    owner = investor(ws)
    return [(str(k["id"]), str(k["status"])) for k in sim.keys() if k.get("owner") == owner]


class Sampler:
    """I1 every 100 ms: no target (the primary, the mirror) shows a key Bluum has revoked."""

    def __init__(self, sim: Simulator, ws: StoreWorkspace) -> None:
        self.sim, self.ws = sim, ws
        self.broken: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="i1-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            try:
                shown = {"primary": self.ws.shown_key_id(), "mirror": self.ws.mirror_key_id()}
            except Exception:  # noqa: S112 - a read that raced a write: the next sample reads again
                continue
            status = dict(bluum_keys(self.sim, self.ws))
            self.samples += 1
            for target, key in shown.items():
                if key is not None and status.get(key) == "revoked":
                    self.broken.append(f"{target} showed revoked {key}")


# ----------------------------------------------------------------------------- one trial


def elsewhere(ws: StoreWorkspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` as runner B on another host: its own UTS namespace with another host name."""
    command = [sys.executable, "-m", "rotator", "-v", "--config", str(ws.config), *args]
    return subprocess.run(
        ["unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh", *command],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ws.env},
        cwd=ws.folder,
        check=False,
    )


def start(ws: StoreWorkspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rotator", "-v", "--config", str(ws.config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ws.env},
        cwd=ws.folder,
    )


@dataclass
class Trial:
    primary: str
    boundary: int
    request: str
    takeover: str
    leased: bool
    """A held its lease when frozen (its i-th request came after the one that took it)."""
    reached: bool = True
    a_exit: int | None = None
    b_exit: int | None = None
    changed_by_held: list[str] = field(default_factory=list)
    changed_after: list[str] = field(default_factory=list)
    late_requests: list[str] = field(default_factory=list)
    i1: list[str] = field(default_factory=list)
    samples: int = 0
    i3: list[str] = field(default_factory=list)
    said: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.changed_by_held or self.changed_after)


def state(sim: Simulator, primary: Primary, ws: StoreWorkspace) -> dict[str, Any]:
    return {"store": primary.digest(ws), "files": files(ws), "bluum": bluum_keys(sim, ws)}


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = [name for name in before if name != "files" and before[name] != after[name]]
    names = sorted(set(before["files"]) | set(after["files"]))
    return changed + [f"file {n}" for n in names if before["files"].get(n) != after["files"].get(n)]


def trial(
    sim: Simulator, primary: Primary, boundary: Boundary, ws: StoreWorkspace, i: int, request: str, lease_at: int
) -> Trial:
    takeover = TAKEOVERS[i % len(TAKEOVERS)]
    result = Trial(primary.name, i, request, takeover, leased=i > lease_at)
    boundary.target, boundary.mode = i, "count"
    boundary.seen.clear()
    boundary.late.clear()
    boundary.held.clear()
    boundary.release.clear()
    with Sampler(sim, ws) as sampler:
        a = start(ws, "rotate", "trading")
        try:
            while not boundary.held.wait(0.05):
                if a.poll() is not None:
                    result.reached = False
                    break
            if result.reached:
                os.kill(a.pid, signal.SIGSTOP)
                frozen = time.monotonic()
                with boundary._mutex:
                    boundary.mode = "off"  # B's requests pass through, uncounted
                result.request = boundary.held_request
                time.sleep(max(0.0, TAKEOVER_WAIT - (time.monotonic() - frozen)))
                b = elsewhere(ws, takeover, "trading")
                result.b_exit = b.returncode
                taken_over = state(sim, primary, ws)
                with boundary._mutex:
                    boundary.mode = "watch"
                boundary.release.set()  # the held request goes out now, after the take-over
                time.sleep(0.3)
                held_done = state(sim, primary, ws)
                result.changed_by_held = diff(taken_over, held_done)
                os.kill(a.pid, signal.SIGCONT)
            _out, err = a.communicate(timeout=120)
            result.a_exit = a.returncode
            result.said = (err.strip().splitlines() or [""])[-1][:200]
            if result.reached:
                result.changed_after = diff(held_done, state(sim, primary, ws))
                result.late_requests = list(boundary.late)
        finally:
            boundary.release.set()
            if a.poll() is None:
                os.kill(a.pid, signal.SIGCONT)
                a.kill()
                a.wait()
        with boundary._mutex:
            boundary.mode = "off"
        settle(ws)
    result.i1, result.samples = sampler.broken, sampler.samples
    known = {ws.shown_key_id(), ws.mirror_key_id()}
    result.i3 = [key for key, status in bluum_keys(sim, ws) if status == "active" and key not in known]
    return result


def settle(ws: StoreWorkspace) -> None:
    """Finish or undo whatever is left, then sweep: what a deployment's next scheduled run does."""
    if ws.record_phase() not in (None, "completed", "rolled_back"):
        ws.run("resume", "trading", timeout=120)
    ws.run("sweep", timeout=120)


# ----------------------------------------------------------------------------- the walk


def record_sequence(primary: Primary, boundary: Boundary, folder: Path) -> list[str]:
    boundary.target, boundary.mode, boundary.lease_at = 0, "count", 0
    boundary.seen.clear()
    ws = primary.make(folder / f"{primary.name}-record")
    result = ws.run("rotate", "trading")
    assert result.returncode == 0, f"an undisturbed rotation failed: {result.stderr[-2000:]}"
    boundary.mode = "off"
    return list(boundary.seen)


def walk(
    sim: Simulator, primary: Primary, boundary: Boundary, folder: Path, picks: Callable[[int], bool]
) -> list[Trial]:
    sequence = record_sequence(primary, boundary, folder)
    lease_at = boundary.lease_at
    print(
        f"{primary.name}: a rotation makes {len(sequence)} requests through the proxies; #{lease_at} takes the lease",
        flush=True,
    )
    trials = []
    for i, request in enumerate(sequence, start=1):
        if not picks(i):
            continue
        ws = primary.make(folder / f"{primary.name}-{i}")
        t = trial(sim, primary, boundary, ws, i, request, lease_at)
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
        late = [r for r in t.late_requests]
        print(
            f"  {primary.name} #{i:3d} {t.request[:58]:58s} B {t.takeover:8s} exit {t.b_exit}  A exit {t.a_exit}"
            f"  late {len(late)}  {'; '.join(flags) or 'ok'}",
            flush=True,
        )
        if t.changed_after or t.changed_by_held:
            print(f"      A's requests after the take-over: {late}", flush=True)
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
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("another host needs `unshare --uts`, which needs root")
    import logging

    from moto.server import ThreadedMotoServer

    from tests.aws_fixtures import Moto
    from tests.openbao import OpenBao

    first, last, stride = int(args.first), int(args.last), int(args.stride)

    def picks(i: int) -> bool:
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
                    text = ws.config.read_text().replace(sim.base_url, bluum_proxy.url + urlsplit(sim.base_url).path)
                    text = text.replace(store_line, store_line + STORE_TIMEOUT, 1) + SHORT_LEASE
                    ws.config.write_text(text)
                    return ws

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
                    trials += walk(sim, primaries[name], boundary, Path(tmp), picks)
    finally:
        moto_server.stop()
    table(trials)
    print(f"({time.perf_counter() - started:.0f} s; lease {LEASE_TTL:g} s, take-over after {TAKEOVER_WAIT:g} s)")


if __name__ == "__main__":
    main()
