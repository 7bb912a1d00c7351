"""`rotator plan --all` over a fleet: the checks of independent credentials run concurrently (the benchmark,
benchmarks/bench_plan.py, shows 100 credentials beside its baselines; this is its smaller test that can fail).

40 production credentials under one tenant key on the simulator, each Bluum check answered after 100 ms: checked one
after another that is at least 4 s; concurrently (`[fleet] concurrency`, 16 by default) well under 2.5 s. And the
paying key lists once, every request is a GET, and nothing else happens at Bluum.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from benchmarks.bench_fleet import PRODUCTION_LIMIT, seed
from rotator.cli.commands import cli
from rotator.core.errors import ExitCode
from rotator.simulator import Simulator
from tests.conftest import LeakGuard

CREDENTIALS = 40
LATENCY_MS = 100
MOST_SECONDS = 2.5


def test_forty_credentials_are_checked_concurrently(sim: Simulator, leak_guard: LeakGuard, tmp_path: Path) -> None:
    sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
    config, _ = seed(sim, tmp_path, CREDENTIALS, None)
    sim.advance_clock(60)
    sim.configure(rate_limits={"TEST": 10, "PRODUCTION": PRODUCTION_LIMIT})
    sim.inject_fault(method="GET", path="/v1/assets", count=1_000_000, latency_ms=LATENCY_MS)
    before = len(sim.request_log())
    result = CliRunner().invoke(cli, ["--config", str(config), "plan", "--all", "--json"])
    leak_guard.check(result.output, "plan output")
    report = json.loads(result.stdout)
    assert report["exit_code"] == ExitCode.OK, result.output
    assert len(report["credentials"]) == CREDENTIALS + 1
    assert report["seconds"] <= MOST_SECONDS, f"{CREDENTIALS} credentials took {report['seconds']} s"
    sent = sim.request_log()[before:]
    assert {entry["method"] for entry in sent} == {"GET"}
    assert sum(1 for entry in sent if entry["path"].endswith("/api-keys")) == 1
    assert sum(1 for entry in sent if entry["path"] == "/v1/assets") == CREDENTIALS + 1
