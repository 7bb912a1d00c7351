"""Issue 19's rollback in reverse, set off by a failing FORWARD step: a reload batch whose health check fails after the
first batch's consumer took the new key. The rollback waits for that consumer to report the old key before it
revokes the new one, and while it waits `status` (table and --json) and the metrics gauge count the consumers on the
old key and name the rest.

Real consumer processes (tests/consumer_app.py) read app.env and call the simulator with the key they hold; the real
CLI runs in a subprocess. `first` is batch 1 (its health check: it reports the new key); `stuck` is batch 2 and never
reloads, so its batch fails and the rotation rolls back from the reload step.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotator.core.errors import ExitCode
from tests.consumer_fixtures import ConsumerFleet, eventually
from tests.e2e.conftest import Workspace
from tests.e2e.consumer_workspace import consumer_calls, fleet, fp
from tests.e2e.test_consumers_env import app_env, trading_status
from tests.e2e.test_review_scenarios import said


@pytest.fixture
def consumers(ws: Workspace) -> Iterator[ConsumerFleet]:
    with fleet(ws, rate=10) as running:
        yield running


def batches(ws: Workspace, consumers: ConsumerFleet, *, consumer_wait: str) -> None:
    """One reload action per consumer, one per batch, each health-checked by that consumer's attestation."""
    running = list(consumers.consumers.values())
    reload = ", ".join(
        f'{{ url = "{c.reload_url}", timeout = "5s", health = {{ consumer = "{c.name}" }} }}' for c in running
    )
    table = 'path = "app.env"\n'
    ws.edit_config(table, f"{table}reload = [{reload}]\n{consumers.rotator_toml(reload=False, timeout='2s')}")
    ws.edit_config(
        'store = "app"\n',
        f'store = "app"\nconsumer_wait = "{consumer_wait}"\nreload_batch = 1\nhealth_timeout = "6s"\n',
    )


def gauge(ws: Workspace) -> dict[str, float]:
    textfile = ws.root / "bluum_rotator.prom"
    ws.run("run-due", "--metrics-textfile", str(textfile))
    return {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(textfile.read_text())
        if family.name == "bluum_rotator_consumers"
        for sample in family.samples
        if sample.labels["credential"] == "trading"
    }


def test_a_failed_batch_rolls_back_only_once_the_consumer_that_took_the_new_key_reports_the_old_one(
    ws: Workspace, consumers: ConsumerFleet
):
    """`first` reloads back 1.5 s late: the rollback waits for it (0 of its calls refused), then revokes the new key."""
    first, stuck = consumers.start_many(
        [("first", app_env(ws), ("--reload-lag", "1.5")), ("stuck", app_env(ws), ("--never-reload",))], rate=10
    )
    batches(ws, consumers, consumer_wait="8s")
    old = ws.first.pair

    failed = ws.run("rotate", "trading")

    assert failed.returncode == ExitCode.ROLLED_BACK, said(failed)
    assert "batch 2 of 2 failed its health check" in said(failed), said(failed)
    new = next(e["fp"] for e in first.events("reload"))
    assert new != fp(old), "first took the new key (its batch passed)"
    assert ws.pair_in() == old
    assert ws.works(old)
    assert eventually(lambda: first.count(200, fp(old)) >= 2)
    assert first.count(401) == 0, first.statuses()
    assert stuck.count(401) == 0
    assert consumer_calls(ws, 401) == [], "the new key was revoked while a consumer still called with it"


def test_status_and_metrics_count_the_consumers_back_on_the_old_key_while_the_rollback_waits(
    ws: Workspace, consumers: ConsumerFleet
):
    """`first` does not reload back: the rollback holds the new key (exit 4), and `status` (table and --json) and the
    gauge say 1 of 2 consumers report the old key, naming `first`."""
    first, stuck = consumers.start_many(
        [("first", app_env(ws), ("--reload-once",)), ("stuck", app_env(ws), ("--never-reload",))], rate=10
    )
    batches(ws, consumers, consumer_wait="1s")

    held = ws.run("rotate", "trading")

    assert held.returncode == ExitCode.INCOMPLETE, said(held)
    assert "was NOT revoked" in said(held), said(held)
    line = "1 of 2 consumers report the old key; first (store app): reports the new key"
    row = trading_status(ws)
    assert row["stage"] == "rolling_back", row
    assert row["consumers"] == line, row
    assert row["consumer_counts"] == [1, 1], row
    table = ws.run("status").stdout
    assert line in table, table
    assert gauge(ws) == {"attested": 1, "unattested": 1}, "attested, in a rollback: reports the old key"
    assert len(ws.active_ids()) == 2, "the new key stays active while first may still use it"
    assert first.count(401) == 0
    assert stuck.count(401) == 0
