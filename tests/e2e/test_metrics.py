"""`rotator run-due --metrics-textfile`: the tick's metrics, parsed back with Prometheus's own text parser."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said


def samples(path: Path) -> dict[tuple[str, str], float]:
    """(metric name, credential) → value; the run's own timestamp under credential ""."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("credential", ""))] = sample.value
    return found


def test_a_tick_writes_key_age_next_due_and_exit_codes(ws: Workspace, tmp_path: Path):
    textfile = tmp_path / "textfile_collector" / "bluum_rotator.prom"
    textfile.parent.mkdir()  # node_exporter's folder exists; a missing one is refused (test_trust_config.py)
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "1d"')
    ws.add_config("\n[credentials.trading.seeded_key_age]\n" if False else "")
    first = ws.run("rotate", "trading")
    assert first.returncode == ExitCode.OK, said(first)
    tick = ws.run("run-due", "--metrics-textfile", str(textfile))
    assert tick.returncode == ExitCode.OK, said(tick)
    found = samples(textfile)
    assert found[("bluum_rotator_last_run_exit_code", "trading")] == 0
    assert found[("bluum_rotator_last_run_exit_code", "tenant")] in (0, 4)  # a manual key nobody dated: 4
    assert 0 <= found[("bluum_rotator_key_age_seconds", "trading")] < 600
    assert found[("bluum_rotator_key_overdue", "trading")] == 0
    assert (
        found[("bluum_rotator_next_due_timestamp_seconds", "trading")]
        > found[("bluum_rotator_last_run_timestamp_seconds", "")]
    )
    assert found[("bluum_rotator_status_error", "trading")] == 0
    assert not list(textfile.parent.glob("*.tmp*")), "written atomically: no temporary file left"


def test_a_store_that_cannot_be_read_is_an_error_in_the_metrics_not_a_missing_file(ws: Workspace, tmp_path: Path):
    """An alert on bluum_rotator_status_error fires; the file is still written for every credential."""
    textfile = tmp_path / "bluum_rotator.prom"
    app = ws.root / "app.env"
    with ws.sampling_paused():  # app.env leaves the sampler's list before it becomes a folder
        ws.sampled = [t for t in ws.sampled if t != ("app.env", "BLUUM_")]
        app.rename(ws.root / "app.env.bak")
        app.mkdir()  # a deploy script that made a folder where the file was
    try:
        tick = ws.run("run-due", "--metrics-textfile", str(textfile))
        found = samples(textfile)
    finally:
        app.rmdir()
        (ws.root / "app.env.bak").rename(app)
    assert tick.returncode == ExitCode.BAD_INPUT, said(tick)
    assert found[("bluum_rotator_status_error", "trading")] == 1
    assert found[("bluum_rotator_status_error", "tenant")] == 0
    assert found[("bluum_rotator_last_run_exit_code", "trading")] == ExitCode.BAD_INPUT


def test_the_textfile_holds_every_family_telemetry_has(ws: Workspace, tmp_path: Path):
    """Rotations, steps, Bluum requests, the rate budget, notifications and alerts, beside the tick's gauges."""
    textfile = tmp_path / "bluum_rotator.prom"
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "1d"')
    first = ws.run("rotate", "trading")
    assert first.returncode == ExitCode.OK, said(first)
    tick = ws.run("run-due", "--metrics-textfile", str(textfile))
    assert tick.returncode == ExitCode.OK, said(tick)
    families = {family.name: family for family in text_string_to_metric_families(textfile.read_text())}
    for name in (
        "bluum_rotator_rotations",
        "bluum_rotator_rotations_started",
        "bluum_rotator_step_duration_seconds",
        "bluum_rotator_bluum_requests",
        "bluum_rotator_bluum_request_duration_seconds",
        "bluum_rotator_rate_budget_used_ratio",
        "bluum_rotator_rate_budget_peak_ratio",
        "bluum_rotator_notifications_failed",
        "bluum_rotator_alert",
        "bluum_rotator_rotation_stuck",
        "bluum_rotator_last_success_timestamp_seconds",
    ):
        assert name in families, name
    assert families["bluum_rotator_rotations"].type == "counter"
    assert families["bluum_rotator_step_duration_seconds"].type == "histogram"
    found = samples(textfile)
    assert (
        found[("bluum_rotator_last_success_timestamp_seconds", "trading")]
        <= found[("bluum_rotator_last_run_timestamp_seconds", "")]
    )
    alerts = {s.labels["alert"]: s.value for s in families["bluum_rotator_alert"].samples}
    assert alerts == {"bluum_5xx": 0, "bluum_429": 0}
    assert found[("bluum_rotator_rotation_stuck", "trading")] == 0
