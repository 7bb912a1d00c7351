"""Telemetry from synthetic events, Bluum responses and sinks: what Prometheus reads, parsed with its own parser."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.bluum.throttle import key_hash
from rotator.bluum.traffic import ResponseInfo, endpoint_kind
from rotator.config.notifications import AlertSettings
from rotator.core.errors import ExitCode
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.daemon.metrics import Telemetry
from rotator.ops.alerts import TrafficCount, status_findings, traffic_findings
from rotator.rotation.driver import Outcome
from rotator.rotation.status import CredentialStatus

NOW = 1_800_000_000.0
TENANT_KEY = "pk_tenant_public_key_value"


def scrape(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(telemetry.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def event(kind: EventKind, credential: str = "trading", **fields: Any) -> RotationEvent:
    return RotationEvent(kind=kind, credential=credential, step=fields.pop("step", "done"), message="m", **fields)


def response(status: int | None, at: float, endpoint: str = "create_key", key: str = TENANT_KEY) -> ResponseInfo:
    return ResponseInfo("POST", endpoint, status, key_hash(key), 25.0, 0.02, at)


class FakeService:
    """What `attach` reads of an app's RotationService: its bus, its runtime's observers and key names."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.published: list[RotationEvent] = []
        self.bus.subscribe(self.published.append)
        names = {key_hash(TENANT_KEY): "tenant"}
        self.runtime = SimpleNamespace(response_observers=[], key_name=names.get, owner="test")


def attached() -> tuple[Telemetry, FakeService]:
    telemetry = Telemetry()
    service = FakeService()
    sinks = [SimpleNamespace(name="oncall", kind="webhook", failed=2, delivered=5)]
    telemetry.attach(SimpleNamespace(service=service, sinks=sinks))  # type: ignore[arg-type]
    return telemetry, service


def test_rotations_by_outcome_starts_step_durations_and_last_success() -> None:
    telemetry, service = attached()
    for published in (
        event(EventKind.STARTED, step="start"),
        event(EventKind.STEP, step="create", seconds=0.2),
        event(EventKind.STEP, step="accept", seconds=3.0),
        event(EventKind.COMPLETED, at=NOW),
        event(EventKind.STARTED, step="start", reason="key in a ticket", emergency=True),
        event(EventKind.ROLLED_BACK, step="rollback"),
        event(EventKind.RESUMED, credential="tenant", step="resume"),
        event(EventKind.WAITING, credential="tenant", step="revoke"),
        event(EventKind.STOPPED, credential="tenant", step="promote"),
        event(EventKind.PROGRESS, step="wait"),
    ):
        service.bus.publish(published)
    found = scrape(telemetry)
    assert found[("bluum_rotator_rotations_total", (("credential", "trading"), ("outcome", "completed")))] == 1
    assert found[("bluum_rotator_rotations_total", (("credential", "trading"), ("outcome", "rolled_back")))] == 1
    assert found[("bluum_rotator_rotations_total", (("credential", "tenant"), ("outcome", "waiting")))] == 1
    assert found[("bluum_rotator_rotations_total", (("credential", "tenant"), ("outcome", "stopped")))] == 1
    started = "bluum_rotator_rotations_started_total"
    assert found[(started, (("credential", "trading"), ("kind", "scheduled")))] == 1
    assert found[(started, (("credential", "trading"), ("kind", "emergency")))] == 1
    assert found[(started, (("credential", "tenant"), ("kind", "resumed")))] == 1
    assert found[("bluum_rotator_step_duration_seconds_count", (("step", "accept"),))] == 1
    assert found[("bluum_rotator_step_duration_seconds_bucket", (("le", "2.5"), ("step", "accept")))] == 0
    assert found[("bluum_rotator_step_duration_seconds_bucket", (("le", "5.0"), ("step", "accept")))] == 1
    assert found[("bluum_rotator_last_success_timestamp_seconds", (("credential", "trading"),))] == NOW


def test_bluum_requests_by_endpoint_and_status_and_the_rate_budget_by_payer() -> None:
    telemetry, service = attached()
    (observe,) = service.runtime.response_observers
    telemetry._budget.clock = lambda: 100.5
    for status, at in ((503, 100.0), (503, 100.1), (201, 100.2), (429, 100.3), (None, 100.4)):
        observe(response(status, at))
    observe(response(200, 100.45, endpoint="check", key="pk_investor_key"))
    found = scrape(telemetry)
    requests = "bluum_rotator_bluum_requests_total"
    assert found[(requests, (("endpoint", "create_key"), ("status", "503")))] == 2
    assert found[(requests, (("endpoint", "create_key"), ("status", "429")))] == 1
    assert found[(requests, (("endpoint", "create_key"), ("status", "none")))] == 1
    assert found[(requests, (("endpoint", "check"), ("status", "200")))] == 1
    assert found[("bluum_rotator_rate_budget_used_ratio", (("payer", "tenant"),))] == 5 / 25
    assert found[("bluum_rotator_rate_budget_peak_ratio", (("payer", "tenant"),))] == 5 / 25
    assert found[("bluum_rotator_rate_limit_requests_per_second", (("payer", "unknown"),))] == 25
    telemetry._budget.clock = lambda: 200.0  # a second later nothing is in flight; the peak stays
    found = scrape(telemetry)
    assert found[("bluum_rotator_rate_budget_used_ratio", (("payer", "tenant"),))] == 0
    assert found[("bluum_rotator_rate_budget_peak_ratio", (("payer", "tenant"),))] == 5 / 25
    assert not any(TENANT_KEY in str(labels) or key_hash(TENANT_KEY) in str(labels) for _, labels in found)


def test_notification_failures_are_the_sinks_own_counts() -> None:
    telemetry, _ = attached()
    found = scrape(telemetry)
    assert found[("bluum_rotator_notifications_failed_total", (("sink", "oncall"), ("type", "webhook")))] == 2
    assert found[("bluum_rotator_notifications_delivered_total", (("sink", "oncall"), ("type", "webhook")))] == 5


def test_a_tick_sets_alert_gauges_from_its_findings_and_resets_them_next_tick() -> None:
    """The findings are the tick's (rotator.ops.tick judged them); telemetry records them and announces nothing."""
    telemetry, service = attached()
    counted = TrafficCount()
    for at in (1.0, 2.0, 3.0):
        counted(response(502, at))
    counted(response(429, 4.0))
    rows = [
        CredentialStatus("trading", "sandbox", "apk_1", 5.0, NOW - 10, "deployed", "unfinished", updated_at=NOW - 7200)
    ]
    settings = AlertSettings()
    findings = [
        *status_findings(rows, NOW, settings, mints=lambda _: True),
        *traffic_findings(counted.traffic, settings),
    ]
    telemetry.observe_tick(rows, [Outcome("trading", ExitCode.INCOMPLETE, "m")], findings, now=NOW)
    found = scrape(telemetry)
    assert found[("bluum_rotator_alert", (("alert", "bluum_5xx"),))] == 1
    assert found[("bluum_rotator_alert", (("alert", "bluum_429"),))] == 1
    where = (("credential", "trading"), ("environment", "sandbox"))
    assert found[("bluum_rotator_rotation_stuck", where)] == 1
    assert found[("bluum_rotator_key_overdue", where)] == 1
    assert found[("bluum_rotator_rotation_updated_timestamp_seconds", where)] == NOW - 7200
    assert found[("bluum_rotator_findings_total", (("kind", "alert"),))] == 3  # 5xx, 429, stuck
    assert service.published == [], "telemetry records; the tick announces"
    telemetry.observe_tick([], [], [], now=NOW + 900)
    found = scrape(telemetry)
    assert found[("bluum_rotator_alert", (("alert", "bluum_5xx"),))] == 0
    assert ("bluum_rotator_rotation_stuck", where) not in found


def test_endpoint_kinds_come_from_the_clients_operation_names() -> None:
    assert endpoint_kind("POST", "create key for inv_1") == "create_key"
    assert endpoint_kind("GET", "list keys of inv_1") == "list_keys"
    assert endpoint_kind("POST", "revoke apk_1 of inv_1") == "revoke_key"
    assert endpoint_kind("GET", "check") == "check"
    assert endpoint_kind("DELETE", "something new") == "other"
