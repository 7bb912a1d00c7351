"""Freezing a runner at one request boundary: the harness of benchmarks/bench_fencing.py and
tests/e2e/test_fencing_boundaries.py (issue 17).

Runner A's every request (store and Bluum) goes through fault proxies on loopback that share one `Boundary` plan: it
numbers A's requests and holds the i-th one, unforwarded, while the harness stops A (SIGSTOP). That is a runner frozen
with a request on the wire, or right before it went out: the store or Bluum sees it only when it is let go. Once A's
lease plus the longest request in flight has passed, runner B takes over from another "host" (`unshare --uts` with
another host name, so it cannot judge A by its PID); then the held request goes out, A is thawed (SIGCONT), and the
`Trial` says what changed after the take-over (the store with its ledger, the mirror and state files, Bluum's keys),
which requests A sent, A's exit code, I1 (a `Sampler` every 100 ms) and I3 after settling.

Why one module for both: the benchmark walks every boundary, the test a few, and they must measure one thing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.simulator import Simulator
from tests.fault_proxy import LEDGER_WRITES, Decision, Fate, Request
from tests.store_workspaces import StoreWorkspace

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
    hold_on: Callable[[str, Request], bool] | None = None
    """Or hold the first request this picks out (by what it carries: a test names a kind of request, not a number)."""
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
            hold = not self.held_request and (
                len(self.seen) == self.target or (self.hold_on is not None and self.hold_on(where, request))
            )
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
    from backends.vault.store import STATE_PREFIX

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


def needs_another_host() -> None:
    """Skip the calling test where another host cannot be made (`unshare --uts` needs root)."""
    import shutil

    import pytest

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("another host needs `unshare --uts`, which needs root")


def elsewhere(ws: StoreWorkspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` as runner B on another host: its own UTS namespace with another host name."""
    command = [sys.executable, "-m", "rotator", "-v", "--config", str(ws.config), *args]
    return subprocess.run(
        ["unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh", *command],
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
    b_said: str = ""
    """The end of B's output (stdout, then stderr): why B exited as it did, kept for a finding's report."""
    settled: list[str] = field(default_factory=list)
    """How the settling went: each command it ran with its exit code, and its output's end when it did not exit 0
    (a sweep that could not run leaves keys no store shows, which is then no I3 break of the rotation's own)."""

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
    sim: Simulator,
    primary: Primary,
    boundary: Boundary,
    ws: StoreWorkspace,
    i: int,
    takeover: str,
    *,
    leased: bool = True,
    hold_on: Callable[[str, Request], bool] | None = None,
) -> Trial:
    """Freeze A at its `i`-th request (or at the first `hold_on` picks out), B takes over with `takeover`, thaw A."""
    result = Trial(primary.name, i, "", takeover, leased=leased)
    boundary.target, boundary.hold_on, boundary.mode, boundary.held_request = i, hold_on, "count", ""
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
                result.b_said = _tail(b)
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
        result.settled = settle(ws)
    result.i1, result.samples = sampler.broken, sampler.samples
    known = {ws.shown_key_id(), ws.mirror_key_id()}
    result.i3 = [key for key, status in bluum_keys(sim, ws) if status == "active" and key not in known]
    return result


def settle(ws: StoreWorkspace) -> list[str]:
    """Finish whatever is left, then revoke what this tool made and no store knows (`sweep --revoke`): the I3 of
    "after any crash, resume + sweep leave no orphans" (a create that landed after the take-over is such a key).
    Returns each command with its exit code, and the end of its output when it did not exit 0."""
    ran = []
    if ws.record_phase() not in (None, "completed", "rolled_back"):
        ran.append(("resume", ws.run("resume", "trading", timeout=120)))
    ran.append(("sweep --revoke", ws.run("sweep", "--revoke", "--yes", timeout=120)))
    return [
        f"{name}: exit {done.returncode}" + ("" if done.returncode == 0 else f"\n{_tail(done)}") for name, done in ran
    ]


def _tail(done: subprocess.CompletedProcess[str], chars: int = 6000) -> str:
    """The end of a command's output (no secret is ever in it: I6), for a finding's report."""
    return (done.stdout.strip() + "\n" + done.stderr.strip()).strip()[-chars:]


def record_sequence(primary: Primary, boundary: Boundary, folder: Path) -> list[str]:
    boundary.target, boundary.hold_on, boundary.mode, boundary.lease_at = 0, None, "count", 0
    boundary.seen.clear()
    ws = primary.make(folder / f"{primary.name}-record")
    result = ws.run("rotate", "trading")
    assert result.returncode == 0, f"an undisturbed rotation failed: {result.stderr[-2000:]}"
    boundary.mode = "off"
    return list(boundary.seen)


def fence(ws: StoreWorkspace, sim_url: str, bluum_url: str, store_line: str) -> StoreWorkspace:
    """Point `ws` at Bluum through `bluum_url` (the proxy; the simulator's path kept), give its store a short request
    timeout (on the line after `store_line`) and the short lease."""
    from urllib.parse import urlsplit

    text = ws.config.read_text().replace(sim_url, bluum_url + urlsplit(sim_url).path)
    text = text.replace(store_line, store_line + STORE_TIMEOUT, 1) + SHORT_LEASE
    ws.config.write_text(text)
    return ws
