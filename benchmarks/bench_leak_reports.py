"""Leak-report benchmark: from a signed report POSTed to the daemon until the leaked key answers 401, beside
`rotator rotate trading --emergency` typed at the command line (the baseline, measured in the same run); then 1,000
bad or unmatched reports of mixed kinds to one daemon: how many rotations they started (must be 0) and how long the
daemon took to answer them, beside 1,000 GETs of /healthz on the same daemon.

Both emergency figures start when the request leaves (the POST, or the CLI process's launch) and end at the first
401 a probe at the simulator's `/_sim/probe` (every 5 ms, no rate charge) sees for the leaked pair. Simulator:
sandbox limits, 0.5 s propagation for new keys (the new key must be accepted before it is deployed, so that wait is
part of both figures). The daemon was started and its first tick done before the clock starts, as it would be in
production; the CLI pays its own start (imports, reading rotator.toml) inside the figure, as an operator would.

Run: .venv/bin/python benchmarks/bench_leak_reports.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from rotator.attest import fingerprint
from rotator.cli.demo import open_account, seed_workspace
from rotator.core.model import KeyPair
from rotator.simulator import Simulator

ROUNDS = 3
PROPAGATION = 0.5
BAD_REPORTS = 1000
SECRET_ENV = "ROTATOR_LEAK_SECRET"
ROTATOR = (sys.executable, "-m", "rotator")
LISTEN = ("--metrics-listen", "127.0.0.1:0")


def authorization(pair: KeyPair) -> str:
    return "Basic " + base64.b64encode(f"{pair.api_key}:{pair.api_secret.reveal()}".encode()).decode()


def first_rejection(root_url: str, auth: str, go: threading.Event, done: list[float]) -> None:
    """Probe the leaked pair every 5 ms and note when the simulator first answers 401."""
    address = urlsplit(root_url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5)
    go.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        connection.request("GET", "/_sim/probe", headers={"Authorization": auth})
        response = connection.getresponse()
        response.read()
        if response.status == 401:
            done.append(time.perf_counter())
            return
        time.sleep(0.005)


def headers_for(key: str, body: bytes, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(key.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Rotator-Timestamp": str(stamp),
        "X-Rotator-Signature": f"sha256={digest}",
    }


class Daemon:
    """`rotator daemon` with the leak route, in a subprocess, in `folder`."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*ROTATOR, "--config", str(config), "daemon", "--every", "1h", "--jitter", "0s", *LISTEN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            cwd=config.parent,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        ready = threading.Event()
        self.url = ""

        def read_out() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.out.append(line)
                match = re.search(r"/healthz on (http://[^;\s]+)", line)
                if match:
                    self.url = match.group(1)
                if line.startswith("tick 1: done"):
                    ready.set()

        def read_err() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.err.append(line)

        threading.Thread(target=read_out, daemon=True).start()
        threading.Thread(target=read_err, daemon=True).start()
        if not ready.wait(30):
            self.close()
            raise SystemExit("the daemon did not finish its first tick:\n" + "".join(self.out[-10:] + self.err[-10:]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def workspace(sim: Simulator, folder: Path, key: str) -> tuple[Path, KeyPair]:
    account = open_account(sim, "bench")
    sim.advance_clock(PROPAGATION + 1)
    config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    config.write_text(config.read_text() + f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    return config, account.first.pair


def timed_to_401(sim: Simulator, pair: KeyPair, start: Callable[[], None]) -> float:
    go, done = threading.Event(), list[float]()
    probe = threading.Thread(target=first_rejection, args=(sim.root_url, authorization(pair), go, done), daemon=True)
    probe.start()
    go.set()
    began = time.perf_counter()
    start()
    probe.join(60)
    if not done:
        raise SystemExit("the leaked key was never rejected")
    return done[0] - began


def by_cli(sim: Simulator, key: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config, pair = workspace(sim, Path(tmp), key)
        command = [sys.executable, "-m", "rotator", "-q", "--config", str(config), "rotate", "trading"]
        command += ["--emergency", "--reason", "benchmark: key leaked"]

        def start() -> None:
            subprocess.run(command, check=True, capture_output=True, cwd=tmp, timeout=60)

        return timed_to_401(sim, pair, start)


def by_report(sim: Simulator, key: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config, pair = workspace(sim, Path(tmp), key)
        daemon = Daemon(config, {SECRET_ENV: key})
        try:
            body = json.dumps({"fingerprint": fingerprint(pair.api_key), "source": "bench"}).encode()
            address = urlsplit(daemon.url)

            def start() -> None:
                connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
                connection.request("POST", "/leak-report", body, headers_for(key, body))
                response = connection.getresponse()
                response.read()
                if response.status != 202:
                    raise SystemExit(f"report answered {response.status}")

            return timed_to_401(sim, pair, start)
        finally:
            daemon.close()


def bad_bodies(key: str, current: str, elsewhere: str, index: int) -> tuple[bytes, dict[str, str]]:
    """The index-th of the mixed bad or unmatched reports (nine kinds in turn)."""
    good = json.dumps({"fingerprint": fingerprint(current), "n": index}).encode()
    kind = index % 9
    now = int(time.time())
    if kind == 0:
        return good, {"Content-Type": "application/json"}  # no signature
    if kind == 1:
        return good, headers_for("wrong" + key, good)
    if kind == 2:
        return good, headers_for(key, good, now - 3600)
    if kind == 3:
        return good, {**headers_for(key, good), "Content-Type": "text/plain"}
    if kind == 4:
        big = json.dumps({"fingerprint": fingerprint(current), "pad": "x" * 5000}).encode()
        return big, headers_for(key, big)
    if kind == 5:
        junk = b'{"fingerprint": ' + str(index).encode()
        return junk, headers_for(key, junk)
    if kind == 6:
        unknown = json.dumps({"fingerprint": f"sha256:{index:016x}"}).encode()
        return unknown, headers_for(key, unknown)
    if kind == 7:
        orphan = json.dumps({"public_key": elsewhere, "n": index}).encode()
        return orphan, headers_for(key, orphan)
    altered = good + b" "  # signed, then changed on the way
    return altered, {**headers_for(key, good)}


def flood(sim: Simulator, key: str) -> tuple[int, float, float, float, float, int]:
    """Rotations started by BAD_REPORTS bad reports; their total seconds, p50 and p99 ms; the /healthz baseline's
    total seconds; and how many were counted as refused."""
    with tempfile.TemporaryDirectory() as tmp:
        config, pair = workspace(sim, Path(tmp), key)
        elsewhere = open_account(sim, "elsewhere").first.pair.api_key
        keys_before = len(sim.keys())
        files_before = {p.name: p.read_bytes() for p in Path(tmp).glob("*.env")}
        daemon = Daemon(config, {SECRET_ENV: key})
        try:
            address = urlsplit(daemon.url)
            connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
            took = []
            began = time.perf_counter()
            for index in range(BAD_REPORTS):
                body, headers = bad_bodies(key, pair.api_key, elsewhere, index)
                start = time.perf_counter()
                connection.request("POST", "/leak-report", body, headers)
                response = connection.getresponse()
                response.read()
                took.append(time.perf_counter() - start)
                if response.status < 400:
                    raise SystemExit(f"a bad report was answered {response.status}")
                if response.getheader("Connection", "").lower() == "close" or response.will_close:
                    connection.close()
                    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
            total = time.perf_counter() - began
            began = time.perf_counter()
            for _ in range(BAD_REPORTS):
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                if response.will_close:
                    connection.close()
                    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
            health = time.perf_counter() - began
            connection.request("GET", "/metrics")
            metrics = connection.getresponse().read().decode()
        finally:
            daemon.close()
        said = "".join(daemon.out + daemon.err)
        if key in said or pair.api_secret.reveal() in said:
            raise SystemExit("the signing key or a key secret appeared in the daemon's output")
        refused = sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in metrics.splitlines()
            if line.startswith("bluum_rotator_leak_reports_refused_total{")
        )
        history = Path(tmp) / "rotator-history" / "trading.jsonl"
        rotations = len(sim.keys()) - keys_before + (1 if history.exists() else 0)
        files_after = {p.name: p.read_bytes() for p in Path(tmp).glob("*.env")}
        rotations += 0 if files_after == files_before else 1
        took.sort()
        p50, p99 = took[len(took) // 2] * 1000, took[int(len(took) * 0.99)] * 1000
        return rotations, total, p50, p99, health, refused


def main() -> None:
    key = secrets.token_hex(32)
    cli, report = [], []
    with Simulator() as sim:
        sim.configure(propagation_delay=PROPAGATION)
        for _ in range(ROUNDS):
            cli.append(by_cli(sim, key))
            report.append(by_report(sim, key))
        rotations, total, p50, p99, health, refused = flood(sim, key)
    c, r = statistics.median(cli), statistics.median(report)
    print(f"emergency, start → leaked key answered 401 (median of {ROUNDS}, propagation {PROPAGATION}s)")
    runs = {name: ", ".join(f"{x:.2f}" for x in values) for name, values in (("cli", cli), ("report", report))}
    print(f"  baseline, `rotator rotate --emergency` from the CLI: {c * 1000:7.1f} ms  (runs: {runs['cli']} s)")
    print(f"  a signed leak report POSTed to the daemon:          {r * 1000:7.1f} ms  (runs: {runs['report']} s)")
    print(f"  ratio report / CLI:                                  {r / c:7.2f}x")
    print(f"  report above propagation:                            {(r - PROPAGATION) * 1000:7.1f} ms")
    print(f"{BAD_REPORTS} bad or unmatched reports (9 kinds in turn) to one daemon")
    print(f"  rotations started: {rotations}; counted as refused: {refused}")
    print(f"  answered in {total:.2f} s (p50 {p50:.2f} ms, p99 {p99:.2f} ms per report)")
    print(f"  baseline, {BAD_REPORTS} GET /healthz on the same daemon: {health:.2f} s ({total / health:.2f}x)")


if __name__ == "__main__":
    main()
