"""The one tick (rotator.ops.tick: fleet -> status -> alerts -> telemetry) against the simulator over real HTTP.

Telemetry only records: handing it a tick's findings, scraping it or writing its textfile makes no request to Bluum,
counted at the simulator, even when `[alerts] sweep_every` says a sweep is due (the sweep is the tick's). Alerts
come from the tick whether or not anything records metrics: `rotator run-due` without `--metrics-textfile` still
tells the notification sinks of Bluum's 5xx.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.events import EventKind, RotationEvent
from rotator.daemon.metrics import Telemetry
from rotator.ops.app import assemble
from rotator.ops.tick import run_tick
from rotator.simulator import Simulator
from tests.integration.test_webhooks import KEY, Receiver

DAY = 86400.0


def due_workspace(sim: Simulator, folder: Path, extra: str = "") -> tuple[Path, str]:
    """The demo's workspace with the trading key due at the first tick; returns the config and the investor."""
    account = open_account(sim, "first")
    config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    text = config.read_text().replace("[credentials.trading]\n", '[credentials.trading]\nseeded_key_age = "due"\n')
    config.write_text(text + extra)
    return config, account.investor


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_recording_a_ticks_metrics_makes_no_bluum_call(sim: Simulator, tmp_path: Path) -> None:
    config, investor = due_workspace(sim, tmp_path, '\n[alerts]\nsweep_every = "1h"\n')
    seen: list[RotationEvent] = []
    with assemble(load_config(config)) as app:
        service = app.service
        telemetry = Telemetry()
        telemetry.attach(app)
        service.bus.subscribe(seen.append)
        first = len(sim.request_log())
        outcomes = run_tick(service, telemetry=telemetry)  # rotates trading, then sweeps: the tick's own calls
        statuses = service.status()
        before = len(sim.request_log())
        for days in (1, 2, 3):  # a sweep would be due at each of these times (1h apart at least)
            telemetry.observe_tick(statuses, outcomes, [], now=service.now() + days * DAY)
        scraped = generate_latest(telemetry.registry).decode()
        telemetry.write_textfile(tmp_path / "bluum_rotator.prom")
        after = len(sim.request_log())

    tick_calls = sim.request_log()[first:before]
    assert any(call["path"].endswith(f"/investors/{investor}/api-keys") for call in tick_calls)
    assert before - first > 0, "the tick called Bluum (the rotation and its sweep)"
    assert after == before, f"recording metrics made {after - before} Bluum call(s)"
    assert "bluum_rotator_last_run_timestamp_seconds" in scraped
    assert not [event for event in seen if event.kind is EventKind.ORPHAN], "the tick's sweep found nothing"


def test_run_due_without_metrics_still_tells_the_sinks_of_bluums_5xx(
    sim: Simulator, tmp_path: Path, receiver: Receiver
) -> None:
    """Before rotator.ops.tick, run-due made a Telemetry only so that the tick's alerts would be announced."""
    hook = f'\n[notifications.oncall]\nurl = "{receiver.url}"\nsecret_env = "ROTATOR_WEBHOOK_KEY"\n'
    config, investor = due_workspace(sim, tmp_path, hook + 'events = ["alert", "completed"]\n')
    sim.inject_fault(method="POST", path=f"/v1/investors/{investor}/api-keys", count=3, status=503)
    env = {**os.environ, "ROTATOR_WEBHOOK_KEY": KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "run-due"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = sorted((body["event"], body.get("subject")) for body in receiver.accepted)
    assert events == [("alert", "bluum_5xx"), ("completed", None)], events
    assert not list(tmp_path.glob("*.prom")), "no metrics were asked for, none were written"
