"""Prometheus metrics of a scheduler tick, written as a textfile for node_exporter's textfile collector.

Why a textfile: cron's `rotator run-due` is a short process, so nothing can scrape it; node_exporter reads `*.prom`
files from a folder instead, and alerts can then fire on what matters at 3 a.m.: a key older than its rotation
period, a tick that failed, a tick that stopped running. The file is written atomically by prometheus_client (a
temporary file, then a rename), so a scrape never sees half of it. Labels are credential names and environments;
never a key or a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from rotator.rotation.driver import Outcome
from rotator.status import CredentialStatus

__all__ = ["write_tick_metrics"]


def write_tick_metrics(
    path: Path, statuses: Sequence[CredentialStatus], outcomes: Sequence[Outcome], *, now: float
) -> None:
    """Write what one tick found and did to `path` (Prometheus text format, replaced atomically)."""
    registry = CollectorRegistry()

    def gauge(name: str, text: str) -> Gauge:
        return Gauge(name, text, ["credential", "environment"], registry=registry)

    age = gauge("bluum_rotator_key_age_seconds", "Age of the current key (absent when unknown).")
    due = gauge("bluum_rotator_next_due_timestamp_seconds", "When the next scheduled rotation is due.")
    overdue = gauge("bluum_rotator_key_overdue", "1 when the current key is past its rotation period.")
    unreadable = gauge("bluum_rotator_status_error", "1 when the credential's stores or record could not be read.")
    exit_code = Gauge(
        "bluum_rotator_last_run_exit_code",
        "Exit code of the last tick for the credential (0 ok, 1 rolled back, 2 bad input, 3 in progress, 4 "
        "incomplete, 5 unavailable).",
        ["credential"],
        registry=registry,
    )
    ran = Gauge("bluum_rotator_last_run_timestamp_seconds", "When the last tick ran.", registry=registry)
    ran.set(now)
    for row in statuses:
        where = {"credential": row.name, "environment": row.environment}
        unreadable.labels(**where).set(1 if row.exit_code else 0)
        if row.age_seconds is not None:
            age.labels(**where).set(row.age_seconds)
        if row.next_due is not None:
            due.labels(**where).set(row.next_due)
            overdue.labels(**where).set(1 if row.next_due < now else 0)
    for outcome in outcomes:
        exit_code.labels(credential=outcome.credential).set(int(outcome.exit_code))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
