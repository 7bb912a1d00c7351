"""Consumers benchmark (issue 19): a fleet of real consumer processes through rotations, with and without the
attestation gate, in the same run against the same fleet.

The fleet: 20 consumers (tests/consumer_app.py, real processes reading app.env and calling the simulator over HTTP,
one call per second each) whose reload takes effect after a lag spread evenly from 1/20 up to 1.5 x the grace
window (the last ones reload after the window ends: a rolling restart slower than the operator guessed), and one
that never reloads (`stuck`). Every consumer is a reload action of the store (`POST /-/reload`).

- baseline: the consumers are reload actions only, as before issue 19. `rotate`, then `resume` once the grace
  window is over: the old key is revoked on the timer, and every consumer still on it takes 401s (`stuck` until the
  operator restarts it, NOTICED_AFTER later).
- gated: the same consumers declared as `consumers` too. `rotate`, then `resume` every second as a tick would; when
  the rotation waits on `stuck` alone (exit 4, awaiting_consumers) the operator overrides it (`resume
  --revoke-anyway`) and restarts `stuck` (it then reads the new key at start, as a restarted process does).

Figures, from the consumers' own call logs and the simulator's request log (not from the rotator's say-so):
- attested_401: calls answered 401 of consumers that were not named by an override (the 20 that reload; `stuck`
  outside the override it was named in). Gated: 0 expected. The baseline line gives the same count (the 20, and
  `stuck` apart: nothing names it there).
- unmoved_named K/M: of M rotations, K where `stuck` was named in what `rotate`/`resume` said before the grace
  window ended.
- revokes_while_unattested: revokes of an old key, other than by an override, at a moment some consumer held
  another key in memory than the new one (its last start or reload before the revoke, from its log).

Run: .venv/bin/python benchmarks/bench_consumers.py [--rotations N] [--baseline-rotations N] [--grace SECONDS]
(default: 3 gated and 2 baseline rotations, 6 s grace: about two minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.consumer_fixtures: the tests' own fleet

from dotenv import dotenv_values

from rotator.attest import fingerprint
from rotator.cli.demo import open_account, seed_workspace
from rotator.simulator import Simulator
from tests.consumer_fixtures import Consumer, ConsumerFleet, Source, consumer_fleet

CONSUMERS = 20
STUCK = "stuck"
LAGGING = re.compile(r"\bc\d\d\b")
TICK = 1.0
"""Seconds between two `resume` runs while a rotation waits (a daemon's tick, shortened)."""
NOTICED_AFTER = 5.0
"""Baseline: seconds from the revoke until the operator restarts the consumer it broke (an alert's round trip,
much shortened). Gated, the override names it and it is restarted at once."""


@dataclass
class Run:
    """What one phase (baseline or gated) did, to be judged against the consumers' logs."""

    name: str
    started: float = 0.0
    ended: float = 0.0
    rotations: int = 0
    named_in_grace: int = 0
    overrides: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, end, fingerprint of the old key) of each `resume --revoke-anyway`."""
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    """(old key id, old fingerprint, new fingerprint) per rotation."""


class Bench:
    def __init__(self, sim: Simulator, folder: Path, grace: float, spread: float) -> None:
        self.sim, self.folder, self.grace = sim, folder, grace
        account = open_account(sim, "bench-consumers")
        self.config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
        self.base_text = self.config.read_text().replace('grace = "0s"', f'grace = "{grace:g}s"')
        self.lags = [spread * grace * (i + 1) / CONSUMERS for i in range(CONSUMERS)]

    def start(self, fleet: ConsumerFleet) -> None:
        app = Source.dotenv(self.folder / "app.env")
        specs: list[tuple[str, Source, tuple[str, ...]]] = [
            (f"c{i + 1:02d}", app, ("--reload-lag", f"{lag:.2f}")) for i, lag in enumerate(self.lags)
        ]
        specs.append((STUCK, app, ("--never-reload",)))
        fleet.start_many(specs, rate=1.0)

    def configure(self, fleet: ConsumerFleet, *, gated: bool) -> None:
        lines = fleet.rotator_toml(timeout="2s").splitlines()
        table = lines[0] + "\n" + (lines[1] + "\n" if gated else "")
        text = self.base_text.replace('path = "app.env"\n', 'path = "app.env"\n' + table)
        if gated:
            text = text.replace('store = "app"\n', 'store = "app"\nconsumer_wait = "2s"\n')
        self.config.write_text(text)

    def rotator(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )

    def current(self) -> tuple[str, str]:
        values = dotenv_values(self.folder / "app.env")
        return str(values["BLUUM_KEY_ID"]), fingerprint(str(values["BLUUM_API_KEY"]))

    def rotate(self, run: Run, fleet: ConsumerFleet, *, gated: bool) -> None:
        old_id, old_fp = self.current()
        result = self.rotator("rotate", "trading")
        said = [(time.time(), result.stdout + result.stderr)]
        grace_ends = self.grace_until()
        give_up = time.monotonic() + 60 + 4 * self.grace
        while True:
            if time.monotonic() > give_up:
                raise SystemExit(f"the rotation did not end; last said:\n{said[-1][1][-2000:]}")
            if result.returncode not in (0, 4):
                raise SystemExit(f"rotator exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
            if self.current()[1] != old_fp and self.revoked(old_id):
                break
            text = result.stdout + result.stderr
            if gated and result.returncode == 4 and STUCK in text and not LAGGING.search(text):
                begun = time.time()
                result = self.rotator("resume", "trading", "--revoke-anyway", "--reason", "stuck is restarted now")
                run.overrides.append((begun, time.time(), old_fp))
                self.restart(fleet.consumers[STUCK])
                continue
            time.sleep(TICK)
            result = self.rotator("resume", "trading")
            said.append((time.time(), result.stdout + result.stderr))
        new_fp = self.current()[1]
        run.keys.append((old_id, old_fp, new_fp))
        run.rotations += 1
        if any(f"{STUCK} (store app)" in text and when <= grace_ends for when, text in said):
            run.named_in_grace += 1
        if not gated:
            time.sleep(NOTICED_AFTER)
            self.restart(fleet.consumers[STUCK])

    def grace_until(self) -> float:
        """When the rotation's grace window ends, as `status` shows it (now, when it is already over)."""
        rows = json.loads(self.rotator("status", "--json").stdout)
        until = next(row for row in rows if row["name"] == "trading")["grace_until"]
        return float(until) if until is not None else time.time()

    def revoked(self, key_id: str) -> bool:
        return any(k["id"] == key_id and k["status"] == "revoked" for k in self.sim.keys())

    def restart(self, consumer: Consumer) -> None:
        """The operator restarts it: its supervisor starts it again, and it reads the store's key at start."""
        before = len(consumer.events("start"))
        consumer.processes[-1].terminate()
        deadline = time.monotonic() + 10
        while len(consumer.events("start")) == before:
            if time.monotonic() > deadline:
                raise SystemExit("the stuck consumer was not restarted")
            time.sleep(0.05)
        time.sleep(0.5)

    def judge(self, run: Run, fleet: ConsumerFleet) -> dict[str, int]:
        overridden = {old for _, _, old in run.overrides}
        refused = stuck_refused = 0
        for consumer in fleet.consumers.values():
            for call in consumer.calls():
                if call["status"] != 401 or not run.started <= call["t"] <= run.ended:
                    continue
                if consumer.name != STUCK:
                    refused += 1
                elif call["fp"] not in overridden:  # else: named by the override that broke it
                    stuck_refused += 1
        unattested = 0
        for old_id, _old_fp, new_fp in run.keys:
            at = revoke_time(self.sim.request_log(), old_id)
            if at is None or any(start - 0.5 <= at <= end + 0.5 for start, end, _ in run.overrides):
                continue
            if any(key_in_memory(c, at) != new_fp for c in fleet.consumers.values()):
                unattested += 1
        return {"refused": refused, "stuck_refused": stuck_refused, "unattested": unattested}


def revoke_time(log: list[dict[str, Any]], key_id: str) -> float | None:
    for entry in log:
        if entry["method"] == "POST" and entry["path"].endswith(f"/{key_id}/revoke") and entry["status"] == 200:
            return float(entry["time"])
    return None


def key_in_memory(consumer: Consumer, at: float) -> str | None:
    """The fingerprint of the key `consumer` held at `at`: its last start or reload before then."""
    held = None
    for event in consumer.events():
        if event["t"] > at:
            break
        if event["event"] in ("start", "reload"):
            held = event["fp"]
    return held


def phase(bench: Bench, fleet: ConsumerFleet, name: str, rotations: int, *, gated: bool) -> tuple[Run, dict[str, int]]:
    bench.configure(fleet, gated=gated)
    run = Run(name, started=time.time())
    for _ in range(rotations):
        bench.rotate(run, fleet, gated=gated)
    time.sleep(1.5)  # calls under way at the last revoke are logged
    run.ended = time.time()
    return run, bench.judge(run, fleet)


def main() -> None:
    parser = argparse.ArgumentParser(description="consumers through rotations, with and without attestation")
    parser.add_argument("--rotations", type=int, default=3, help="gated rotations")
    parser.add_argument("--baseline-rotations", type=int, default=2)
    parser.add_argument("--grace", type=float, default=6.0, help="grace window, seconds")
    parser.add_argument("--spread", type=float, default=1.5, help="the longest reload lag, in grace windows")
    args = parser.parse_args()
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-consumers-") as tmp:
        sim.configure(rate_limits={"TEST": 1000.0, "PRODUCTION": 1000.0})  # 21 consumers share one key
        folder = Path(tmp)
        bench = Bench(sim, folder, args.grace, args.spread)
        with consumer_fleet(folder / "fleet", sim.base_url) as fleet:
            bench.start(fleet)
            time.sleep(1)
            started = time.monotonic()
            base, base_figures = phase(bench, fleet, "baseline", args.baseline_rotations, gated=False)
            base_seconds = time.monotonic() - started
            started = time.monotonic()
            gated, figures = phase(bench, fleet, "gated", args.rotations, gated=True)
            gated_seconds = time.monotonic() - started
    print(
        f"fleet: {CONSUMERS} consumers, reload lag {bench.lags[0]:.2f}-{bench.lags[-1]:.2f} s, grace {args.grace:g} s, "
        f"1 never reloads; 1 call/s each"
    )
    print(
        f"baseline (reload actions only, revoke on the timer): rotations={base.rotations} "
        f"401s of the reloading consumers={base_figures['refused']}, of {STUCK}={base_figures['stuck_refused']} "
        f"revokes_while_unattested={base_figures['unattested']} ({base_seconds:.0f} s)"
    )
    print(f"gated run: {gated_seconds:.0f} s, {len(gated.overrides)} override(s), each naming {STUCK}")
    print(
        f"consumers: rotations={gated.rotations} attested_401={figures['refused'] + figures['stuck_refused']} "
        f"unmoved_named={gated.named_in_grace}/{gated.rotations} revokes_while_unattested={figures['unattested']}"
    )


if __name__ == "__main__":
    main()
