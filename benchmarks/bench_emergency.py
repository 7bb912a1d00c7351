"""Emergency benchmark: how long a leaked key keeps working after `rotate --emergency` starts, while someone is
abusing it, beside the same emergency with nobody abusing it (the baseline, measured in the same run).

An abuser spends the leaked key's whole rate limit (a separate process sending requests with it as fast as one
connection goes), so every call the rotator made with that key would draw 429 and Retry-After sleeps. The figure
is start → the first moment Bluum answers the leaked pair with 401, seen by a probe at the simulator's
`/_sim/probe` every 5 ms. Simulator: sandbox limits, 0.5 s propagation for new keys (the new key must be accepted
before it is deployed, so that wait is part of both figures). The ratio abused / quiet should stay near 1: the
emergency does not depend on the leaked key answering.

Run: .venv/bin/python benchmarks/bench_emergency.py
"""

from __future__ import annotations

import base64
import http.client
import logging
import multiprocessing
import statistics
import tempfile
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

from rotator.bluum.client import BluumClient
from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.model import KeyPair
from rotator.ops.app import assemble
from rotator.simulator import Simulator

ROUNDS = 5
PROPAGATION = 0.5


def _authorization(pair: KeyPair) -> str:
    return "Basic " + base64.b64encode(f"{pair.api_key}:{pair.api_secret.reveal()}".encode()).decode()


def abuse(root_url: str, authorization: str, stop: Event) -> None:
    """The abuser: GET /v1/assets with the leaked key in a loop until told to stop."""
    address = urlsplit(root_url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5)
    while not stop.is_set():
        try:
            connection.request("GET", "/v1/assets", headers={"Authorization": authorization})
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()


def first_rejection(root_url: str, authorization: str, started: threading.Event, done: list[float]) -> None:
    """Probe the leaked pair every 5 ms (no rate charge) and note when Bluum first answers 401."""
    address = urlsplit(root_url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5)
    started.wait()
    while True:
        connection.request("GET", "/_sim/probe", headers={"Authorization": authorization})
        response = connection.getresponse()
        response.read()
        if response.status == 401:
            done.append(time.perf_counter())
            return
        time.sleep(0.005)


def one_emergency(sim: Simulator, *, abused: bool) -> tuple[float, int]:
    """Seconds from start until the leaked key gets 401, and how many requests the abuser got 429 for."""
    with tempfile.TemporaryDirectory() as tmp:
        account = open_account(sim, "bench")
        sim.advance_clock(PROPAGATION + 1)  # the existing key is past its propagation window
        config = seed_workspace(Path(tmp), sim.base_url, account.tenant_pair, account.investor, account.first.pair)
        authorization = _authorization(account.first.pair)
        stop = multiprocessing.Event()
        abuser = multiprocessing.Process(target=abuse, args=(sim.root_url, authorization, stop), daemon=True)
        log_before = len(sim.request_log())
        if abused:
            abuser.start()
            time.sleep(1.5)  # its rate limit is spent and stays spent
        go, done = threading.Event(), list[float]()
        probe = threading.Thread(target=first_rejection, args=(sim.root_url, authorization, go, done), daemon=True)
        probe.start()
        with assemble(load_config(config)) as app:
            go.set()
            start = time.perf_counter()
            app.service.rotate("trading", emergency=True, reason="benchmark: key leaked")
        probe.join(30)
        if abused:
            stop.set()
            abuser.join(10)
        throttled = sum(1 for e in sim.request_log()[log_before:] if e["status"] == 429)
        return done[0] - start, throttled


def check_while_abused(sim: Simulator) -> float:
    """What calling the leaked key costs while it is abused: one `check`, as the emergency used to make first."""
    account = open_account(sim, "bench-check")
    sim.advance_clock(PROPAGATION + 1)
    stop = multiprocessing.Event()
    authorization = _authorization(account.first.pair)
    abuser = multiprocessing.Process(target=abuse, args=(sim.root_url, authorization, stop), daemon=True)
    abuser.start()
    time.sleep(1.5)
    logging.getLogger("rotator").setLevel(logging.ERROR)  # its 429 warnings are expected here
    try:
        with BluumClient(sim.base_url) as client:
            start = time.perf_counter()
            client.check(account.first.pair)
            return time.perf_counter() - start
    finally:
        stop.set()
        abuser.join(10)


def main() -> None:
    quiet, abused, throttled = [], [], []
    with Simulator() as sim:
        sim.configure(propagation_delay=PROPAGATION)
        for _ in range(ROUNDS):
            quiet.append(one_emergency(sim, abused=False)[0])
            seconds, refused = one_emergency(sim, abused=True)
            abused.append(seconds)
            throttled.append(refused)
        check = check_while_abused(sim)
    q, a = statistics.median(quiet), statistics.median(abused)
    print(f"emergency rotation, start → leaked key answered 401 (median of {ROUNDS}, propagation {PROPAGATION}s)")
    runs = {name: ", ".join(f"{x:.2f}" for x in values) for name, values in (("quiet", quiet), ("abused", abused))}
    print(f"  baseline, nobody abusing the key:      {q * 1000:7.1f} ms  (runs: {runs['quiet']} s)")
    print(f"  the key abused (its rate limit spent): {a * 1000:7.1f} ms  (runs: {runs['abused']} s)")
    print(f"    requests the abuser drew 429 for per run: {statistics.median(throttled):.0f} (median)")
    print(f"  ratio abused / baseline:               {a / q:7.2f}x")
    print(f"  for scale: one check of the abused key (the call an emergency no longer makes): {check * 1000:.0f} ms")


if __name__ == "__main__":
    main()
