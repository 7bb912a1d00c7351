"""Throughput of the Bluum simulator against a bare stdlib server, measured in the same run with the same client.

    .venv/bin/python benchmarks/bench_simulator.py [--seconds 2.0] [--rounds 3]

Sequential keep-alive `GET /v1/assets` with a PRODUCTION key (rate limit lifted) through one httpx.Client,
versus a bare ThreadingHTTPServer answering a constant 200 JSON (also HTTP/1.1 + TCP_NODELAY, so the comparison
is about our per-request work, not socket settings). Rounds alternate to spread machine noise over both sides;
the best round of each is reported. Takes about 2 × rounds × seconds plus ~1 s.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from rotator.simulator import Simulator

BODY = b'{"status":"ok"}'


class _Constant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


def measure(get: Callable[[], httpx.Response], seconds: float) -> tuple[float, list[float]]:
    """Requests per second over `seconds`, plus each request's latency."""
    for _ in range(200):  # warm-up: connection, caches
        get()
    latencies: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        before = now
        response = get()
        now = time.perf_counter()
        if response.status_code != 200:
            raise SystemExit(f"unexpected status {response.status_code}")
        latencies.append(now - before)
    return len(latencies) / (now - start), latencies


def describe(name: str, rate: float, latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return f"{name:<28} {rate:8.0f} req/s   p50 {cuts[49] * 1e3:6.3f} ms   p99 {cuts[98] * 1e3:6.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    baseline = ThreadingHTTPServer(("127.0.0.1", 0), _Constant)
    baseline.daemon_threads = True
    thread = threading.Thread(target=baseline.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{baseline.server_address[1]}/v1/assets"

    results: dict[str, list[tuple[float, list[float]]]] = {"baseline": [], "simulator": []}
    with Simulator() as sim:
        sim.configure(rate_limits={"TEST": 1e9, "PRODUCTION": 1e9})
        key = sim.create_tenant_key("PRODUCTION")
        with httpx.Client(auth=(key["public_key"], key["secret_key"])) as client:
            for _ in range(args.rounds):
                results["baseline"].append(measure(lambda: client.get(base_url), args.seconds))
                results["simulator"].append(measure(lambda: client.get(sim.base_url + "/assets"), args.seconds))
        logged = len(sim.request_log())
    baseline.shutdown()
    baseline.server_close()

    best = {name: max(runs, key=lambda run: run[0]) for name, runs in results.items()}
    print(describe("bare ThreadingHTTPServer", *best["baseline"]))
    print(describe("Bluum simulator /v1/assets", *best["simulator"]))
    print(
        f"all rounds (req/s): baseline {[round(r) for r, _ in results['baseline']]}, "
        f"simulator {[round(r) for r, _ in results['simulator']]}"
    )
    print(
        f"ratio simulator/baseline: {best['simulator'][0] / best['baseline'][0]:.2f}  "
        f"(simulator logged {logged} requests)"
    )


if __name__ == "__main__":
    main()
