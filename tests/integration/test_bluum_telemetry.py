"""Bluum's answers as metrics and alerts, over real HTTP: the simulator answers a rotation's calls with injected 503s
and a 429 during a tick's rotation; Telemetry, attached to the app, counts them by endpoint and status, names the
paying key by its credential, and the tick raises the 5xx and 429 alerts on the bus (once: the reminder memory
holds) and hands them to the telemetry, which records them."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.events import EventKind, RotationEvent
from rotator.daemon.metrics import Telemetry
from rotator.ops.app import assemble
from rotator.ops.tick import run_tick
from rotator.simulator import Simulator


def samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(telemetry.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_429_and_5xx_are_counted_named_by_payer_and_alerted_once(sim: Simulator, tmp_path: Path) -> None:
    account = open_account(sim, "first")
    config = seed_workspace(tmp_path, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    due = config.read_text().replace("[credentials.trading]\n", '[credentials.trading]\nseeded_key_age = "due"\n')
    config.write_text(due)  # the hand-seeded key is due: the first tick rotates it
    sim.inject_fault(method="POST", path=f"/v1/investors/{account.investor}/api-keys", count=3, status=503)
    sim.inject_fault(method="GET", path="/v1/assets", count=1, status=429, retry_after=0)
    seen: list[RotationEvent] = []
    with assemble(load_config(config)) as app:
        telemetry = Telemetry()
        telemetry.attach(app)
        telemetry.attach(app)  # a second attach changes nothing (no double counting)
        app.service.bus.subscribe(seen.append)
        outcomes = {o.credential: o for o in run_tick(app.service, telemetry=telemetry)}
        assert outcomes["trading"].exit_code == 0, outcomes["trading"].message
        found = samples(telemetry)
        run_tick(app.service, telemetry=telemetry)  # nothing due: the next tick makes no Bluum call
        after = samples(telemetry)

    requests = "bluum_rotator_bluum_requests_total"
    assert found[(requests, (("endpoint", "create_key"), ("status", "503")))] == 3
    assert found[(requests, (("endpoint", "create_key"), ("status", "201")))] == 1
    assert found[(requests, (("endpoint", "check"), ("status", "429")))] == 1
    assert found[(requests, (("endpoint", "check"), ("status", "200")))] >= 1
    assert found[(requests, (("endpoint", "list_keys"), ("status", "200")))] >= 1
    assert found[("bluum_rotator_rate_budget_peak_ratio", (("payer", "tenant"),))] > 0
    assert found[("bluum_rotator_rate_limit_requests_per_second", (("payer", "tenant"),))] == 10
    assert ("bluum_rotator_rate_limit_requests_per_second", (("payer", "trading"),)) in found
    assert found[("bluum_rotator_rotations_total", (("credential", "trading"), ("outcome", "completed")))] == 1
    assert found[("bluum_rotator_step_duration_seconds_count", (("step", "accept"),))] == 1
    assert found[("bluum_rotator_alert", (("alert", "bluum_5xx"),))] == 1
    assert found[("bluum_rotator_alert", (("alert", "bluum_429"),))] == 1
    assert after[("bluum_rotator_alert", (("alert", "bluum_5xx"),))] == 0, "a quiet tick clears the alert"

    alerts = [event for event in seen if event.kind is EventKind.ALERT]
    assert sorted(event.subject or "" for event in alerts) == ["bluum_429", "bluum_5xx"]
    assert "3 of" in next(event.message for event in alerts if event.subject == "bluum_5xx")
    history = (tmp_path / "rotator-history" / "trading.jsonl").read_text()
    assert '"alert"' not in history, "a tick's findings are not a rotation's history"
