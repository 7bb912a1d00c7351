"""Prometheus metrics of the rotator: served on `/metrics` by the daemon, written as a textfile by `run-due`.

Why a textfile too: cron's `rotator run-due` is a short process, so nothing can scrape it; node_exporter reads `*.prom`
files from a folder instead, and alerts can then fire on what matters at 3 a.m.: a key older than its rotation
period, a tick that failed, a tick that stopped running. The file is written atomically by prometheus_client (a
temporary file, then a rename), so a scrape never sees half of it. Labels are credential names and environments;
never a key or a secret.

The Lambda never imports this module (prometheus_client is not in its package); it logs CloudWatch EMF lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from rotator.rotation.driver import Outcome
from rotator.status import CredentialStatus

__all__ = ["Telemetry", "write_tick_metrics"]


class Telemetry:
    """One process's metrics, in a registry of their own (so tests and two services never share counters).

    `observe_tick` records what a tick found and did; the entry point (run-due, the daemon) then writes or serves
    `registry`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["credential", "environment"], registry=registry)

        self.key_age = gauge("bluum_rotator_key_age_seconds", "Age of the current key (absent when unknown).")
        self.next_due = gauge("bluum_rotator_next_due_timestamp_seconds", "When the next scheduled rotation is due.")
        self.overdue = gauge("bluum_rotator_key_overdue", "1 when the current key is past its rotation period.")
        self.status_error = gauge(
            "bluum_rotator_status_error", "1 when the credential's stores or record could not be read."
        )
        self.exit_code = Gauge(
            "bluum_rotator_last_run_exit_code",
            "Exit code of the last tick for the credential (0 ok, 1 rolled back, 2 bad input, 3 in progress, 4 "
            "incomplete, 5 unavailable).",
            ["credential"],
            registry=registry,
        )
        self.last_run = Gauge("bluum_rotator_last_run_timestamp_seconds", "When the last tick ran.", registry=registry)

    def observe_tick(self, statuses: Sequence[CredentialStatus], outcomes: Sequence[Outcome], *, now: float) -> None:
        """What one tick found (each credential's status) and did (its outcome)."""
        self.last_run.set(now)
        for gauge in (self.key_age, self.next_due, self.overdue, self.status_error):
            gauge.clear()  # a credential removed from the configuration leaves no stale series
        for row in statuses:
            where = {"credential": row.name, "environment": row.environment}
            self.status_error.labels(**where).set(1 if row.exit_code else 0)
            if row.age_seconds is not None:
                self.key_age.labels(**where).set(row.age_seconds)
            if row.next_due is not None:
                self.next_due.labels(**where).set(row.next_due)
                self.overdue.labels(**where).set(1 if row.next_due < now else 0)
        for outcome in outcomes:
            self.exit_code.labels(credential=outcome.credential).set(int(outcome.exit_code))

    def write_textfile(self, path: Path) -> None:
        """Everything, in Prometheus text format, replacing `path` atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)


def write_tick_metrics(
    path: Path, statuses: Sequence[CredentialStatus], outcomes: Sequence[Outcome], *, now: float
) -> None:
    """Write what one tick found and did to `path` (Prometheus text format, replaced atomically)."""
    telemetry = Telemetry()
    telemetry.observe_tick(statuses, outcomes, now=now)
    telemetry.write_textfile(path)
