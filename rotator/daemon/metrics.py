"""Prometheus metrics of the rotator: served on `/metrics` by the daemon, written as a textfile by `run-due`.

Why a textfile too: cron's `rotator run-due` is a short process, so nothing can scrape it; node_exporter reads `*.prom`
files from a folder instead, and alerts can then fire on what matters at 3 a.m.: a key older than its rotation
period, a tick that failed, a tick that stopped running. The file is written atomically by prometheus_client (a
temporary file, then a rename), so a scrape never sees half of it.

Where the numbers come from: `observe_tick` (what a tick found and did), the event bus (`observe_event`: rotations by
outcome, step durations, last success), the Bluum client's response hook (`observe_response`: requests by endpoint
and status, the rate budget in use), and the notification sinks' own counters. `attach(app)` wires the last three
to a running app (`rotator.ops.app`); the Bluum client never imports this module. Telemetry only records: judging
what a tick found and announcing it is the tick's (`rotator.ops.tick`), so recording a metric never calls Bluum.

Labels are bounded: credential names, environments, step names, endpoint kinds, HTTP statuses, sink names, alert
names. Never a key id, a request id, or a secret; a paying key is named by its credential.

The Lambda never imports this module (prometheus_client is not in its package, and this folder, `rotator/daemon/`,
is not in the Lambda's zip); it logs CloudWatch EMF lines.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rotator.bluum.traffic import ResponseInfo
from rotator.core.errors import ConfigError
from rotator.core.events import EventKind, RotationEvent
from rotator.daemon.lanes import LaneCollector
from rotator.ops.alerts import BLUUM_5XX, BLUUM_429, STUCK, Finding, overdue
from rotator.rotation.driver import Outcome
from rotator.rotation.status import CredentialStatus

if TYPE_CHECKING:
    from rotator.notify.webhook import QueuedSink
    from rotator.ops.app import App

__all__ = ["Telemetry", "check_textfile"]

STEP_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
"""Seconds: a store write takes milliseconds, an accept step waits out Bluum's propagation (up to minutes)."""
REQUEST_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OUTCOMES: Final = {
    EventKind.COMPLETED: "completed",
    EventKind.ROLLED_BACK: "rolled_back",
    EventKind.STOPPED: "stopped",
    EventKind.WAITING: "waiting",
}
_UNNAMED: Final = "unknown"
"""The payer label of a key no command named (see Runtime.name_key)."""


def check_textfile(path: Path) -> None:
    """Refuse, before a tick changes anything, a textfile that could not be written after it (ConfigError).

    A missing folder is refused, never made: node_exporter reads one folder, so a folder that is not there is a
    typo (or a collector not installed yet), and a file written into a folder made for it would never be scraped:
    the metrics would be lost with no alarm."""
    folder = path.parent
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ConfigError(
                f"--metrics-textfile {path}: its folder {folder} {what}; it is not created, since a file nothing "
                "scrapes loses the metrics silently. Fix: correct the path to the folder node_exporter's textfile "
                "collector reads (--collector.textfile.directory), or create that folder first"
            )
    except OSError as exc:
        raise ConfigError(_textfile_problem(path, exc)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(_textfile_problem(path, PermissionError(13, "its folder is not writable")))


def _textfile_problem(path: Path, exc: OSError) -> str:
    return (
        f"--metrics-textfile {path}: cannot be written ({exc.strerror or exc}). Fix: point it at a file in a folder "
        "this user can write, e.g. /var/lib/node_exporter/textfile_collector/bluum_rotator.prom"
    )


class Telemetry:
    """One process's metrics, in a registry of their own (so tests and two services never share counters).

    It only records: `observe_tick` takes what a tick found and did (`rotator.ops.tick` judged it and announced it);
    `attach(app)` adds what the app's rotations, Bluum calls and sinks do as they happen. It never calls Bluum, a
    store or a sink. The entry point (run-due, the daemon) then writes or serves `registry`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._credential_series()
        self._rotation_series()
        self._bluum_series()
        self._budget = _RateBudget()
        self._sinks = _SinkCounters()
        self.registry.register(self._budget)
        self.registry.register(self._sinks)
        self._lanes = LaneCollector()
        self.registry.register(self._lanes)
        self._lock = threading.Lock()
        self._last_success: dict[str, float] = {}
        self._app: App | None = None

    def _credential_series(self) -> None:
        """What the last tick's status rows say, per credential: cleared and set again by every tick."""

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["credential", "environment"], registry=self.registry)

        self.key_age = gauge("bluum_rotator_key_age_seconds", "Age of the current key (absent when unknown).")
        self.next_due = gauge("bluum_rotator_next_due_timestamp_seconds", "When the next scheduled rotation is due.")
        self.overdue = gauge("bluum_rotator_key_overdue", "1 when the current key is past its rotation period.")
        self.status_error = gauge(
            "bluum_rotator_status_error", "1 when the credential's stores or record could not be read."
        )
        self.stuck = gauge(
            "bluum_rotator_rotation_stuck",
            "1 when an unfinished rotation, not waiting out its grace window, has not moved for [alerts] stuck_after.",
        )
        self.updated = gauge(
            "bluum_rotator_rotation_updated_timestamp_seconds",
            "When the unfinished rotation's record last changed (absent when nothing is unfinished).",
        )

    def _rotation_series(self) -> None:
        """What rotations and ticks did, from the bus and the tick's outcomes."""
        registry = self.registry
        self.exit_code = Gauge(
            "bluum_rotator_last_run_exit_code",
            "Exit code of the last tick for the credential (0 ok, 1 rolled back, 2 bad input, 3 in progress, 4 "
            "incomplete, 5 unavailable).",
            ["credential"],
            registry=registry,
        )
        self.last_run = Gauge("bluum_rotator_last_run_timestamp_seconds", "When the last tick ran.", registry=registry)
        self.last_success = Gauge(
            "bluum_rotator_last_success_timestamp_seconds",
            "When the credential's last rotation completed (as far as this process or the rotation record knows).",
            ["credential"],
            registry=registry,
        )
        self.rotations = Counter(
            "bluum_rotator_rotations",
            "Rotations that ended, or stopped to wait, by outcome (completed, rolled_back, stopped: left incomplete, "
            "waiting: for the grace window or a person).",
            ["credential", "outcome"],
            registry=registry,
        )
        self.started = Counter(
            "bluum_rotator_rotations_started",
            "Rotations started or resumed, by kind (scheduled, emergency, resumed).",
            ["credential", "kind"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "bluum_rotator_step_duration_seconds",
            "Time each rotation step took, waits included.",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )

    def _bluum_series(self) -> None:
        """Bluum's answers, and the findings and alerts the ticks raised."""
        registry = self.registry
        self.requests = Counter(
            "bluum_rotator_bluum_requests",
            "Bluum API requests (every attempt, retries included) by endpoint kind and HTTP status "
            "('none': no answer).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "bluum_rotator_bluum_request_duration_seconds",
            "Time Bluum took to answer, by endpoint kind.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.findings = Counter(
            "bluum_rotator_findings",
            "Conditions the ticks found (overdue, needs_person, alert, orphan), each tick counting each once.",
            ["kind"],
            registry=registry,
        )
        self.consumers = Gauge(
            "bluum_rotator_consumers",
            "While a key waits on a credential's consumers: how many reported the key the rotation moves them to at "
            "the last poll (attested; the new key, or the old key in a rollback that waits on them) and how many did "
            "not (unattested), from the rotation record.",
            ["credential", "state"],
            registry=registry,
        )
        self.alert = Gauge(
            "bluum_rotator_alert",
            "1 when the last tick raised the alert (bluum_5xx, bluum_429), else 0.",
            ["alert"],
            registry=registry,
        )

    # ----------------------------------------------------------------- a running service

    def attach(self, app: App) -> None:
        """Follow `app`: its service's events and Bluum responses, its notification sinks' counts. Attaching twice to
        the same app does nothing."""
        if self._app is app:
            return
        self._app = app
        app.service.bus.subscribe(self.observe_event)
        runtime = app.service.runtime
        runtime.response_observers.append(self.observe_response)
        self._budget.name = runtime.key_name
        self._lanes.runtime = runtime
        self._sinks.sinks = app.sinks

    def observe_event(self, event: RotationEvent) -> None:
        """The bus subscriber: rotations by outcome, starts, step durations, last success."""
        name = event.credential
        if event.kind is EventKind.STEP and event.seconds is not None:
            self.step_seconds.labels(step=event.step).observe(event.seconds)
        elif event.kind in _OUTCOMES:
            self.rotations.labels(credential=name, outcome=_OUTCOMES[event.kind]).inc()
            if event.kind is EventKind.COMPLETED:
                self._succeeded(name, event.at)
        elif event.kind is EventKind.STARTED:
            self.started.labels(credential=name, kind="emergency" if event.emergency else "scheduled").inc()
        elif event.kind is EventKind.RESUMED:
            self.started.labels(credential=name, kind="resumed").inc()

    def observe_response(self, info: ResponseInfo) -> None:
        """The Bluum client's hook: one request attempt (a plain function call on the request's thread: cheap)."""
        status = "none" if info.status is None else str(info.status)
        self.requests.labels(endpoint=info.endpoint, status=status).inc()
        if info.status is not None:
            self.request_seconds.labels(endpoint=info.endpoint).observe(info.seconds)
        self._budget.sent(info)

    # ----------------------------------------------------------------- a tick

    def observe_tick(
        self,
        statuses: Sequence[CredentialStatus],
        outcomes: Sequence[Outcome],
        found: Sequence[Finding],
        *,
        now: float,
    ) -> None:
        """What one tick found (each credential's status, the findings `rotator.ops.tick` announced) and did (its
        outcomes). Records only."""
        self.last_run.set(now)
        for gauge in (
            self.key_age,
            self.next_due,
            self.overdue,
            self.status_error,
            self.stuck,
            self.updated,
            self.consumers,
        ):
            gauge.clear()  # a credential removed from the configuration leaves no stale series
        self._record_findings(found)
        for row in statuses:
            where = {"credential": row.name, "environment": row.environment}
            self.status_error.labels(**where).set(1 if row.exit_code else 0)
            if row.age_seconds is not None:
                self.key_age.labels(**where).set(row.age_seconds)
            if row.next_due is not None:
                self.next_due.labels(**where).set(row.next_due)
                self.overdue.labels(**where).set(1 if overdue(row.next_due, now) else 0)
            if row.updated_at is not None:
                self.updated.labels(**where).set(row.updated_at)
            self.stuck.labels(**where).set(any(f.subject == STUCK and f.credential == row.name for f in found))
            if row.last_success is not None:
                self._succeeded(row.name, row.last_success)
            if row.consumer_counts is not None:
                for state, count in zip(("attested", "unattested"), row.consumer_counts, strict=True):
                    self.consumers.labels(credential=row.name, state=state).set(count)
        for outcome in outcomes:
            self.exit_code.labels(credential=outcome.credential).set(int(outcome.exit_code))

    def write_textfile(self, path: Path) -> None:
        """Everything, in Prometheus text format, replacing `path` atomically, in a folder `check_textfile` made sure
        of before the tick. ConfigError when it cannot be written all the same (the disk filled up meanwhile)."""
        try:
            write_to_textfile(str(path), self.registry)
        except OSError as exc:
            raise ConfigError(_textfile_problem(path, exc)) from None

    # ----------------------------------------------------------------- helpers

    def _record_findings(self, found: Sequence[Finding]) -> None:
        for finding in found:
            self.findings.labels(kind=finding.kind.value).inc()
        subjects = {finding.subject for finding in found}
        for alert in (BLUUM_5XX, BLUUM_429):
            self.alert.labels(alert=alert).set(1 if alert in subjects else 0)

    def _succeeded(self, name: str, when: float) -> None:
        with self._lock:
            if when <= self._last_success.get(name, 0.0):
                return
            self._last_success[name] = when
        self.last_success.labels(credential=name).set(when)


class _RateBudget(Collector):
    """Per paying key: requests this process sent in the last second, the most in any one second, and the limit.

    Kept by key hash on the request path, named by credential when collected (`name`, the Runtime's `key_name`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._peak: dict[str, int] = {}
        self._limit: dict[str, float] = {}
        self.name: Callable[[str], str | None] = _nobody
        self.clock = time.monotonic
        """The clock of `ResponseInfo.at` (the client's default, monotonic)."""

    def sent(self, info: ResponseInfo) -> None:
        with self._lock:
            window = self._sent.setdefault(info.key_hash, deque())
            window.append(info.at)
            _trim(window, info.at)
            self._peak[info.key_hash] = max(self._peak.get(info.key_hash, 0), len(window))
            self._limit[info.key_hash] = info.rate_limit

    def collect(self) -> Iterator[Metric]:
        labels = ["payer"]
        used = GaugeMetricFamily(
            "bluum_rotator_rate_budget_used_ratio",
            "Requests the paying key sent in the last second over its limit (Bluum's 10/s sandbox, 25/s production).",
            labels=labels,
        )
        peak = GaugeMetricFamily(
            "bluum_rotator_rate_budget_peak_ratio",
            "The most requests the paying key sent in any one second, over its limit, since the process started.",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "bluum_rotator_rate_limit_requests_per_second", "The paying key's rate limit.", labels=labels
        )
        now = self.clock()
        with self._lock:
            rows = []
            for digest, window in self._sent.items():
                _trim(window, now)
                rows.append((digest, len(window), self._peak[digest], self._limit[digest]))
        merged: dict[str, tuple[int, int, float]] = {}
        for digest, count, most, rate in rows:  # two unnamed keys share "unknown": add them up
            payer = self.name(digest) or _UNNAMED
            before = merged.get(payer, (0, 0, rate))
            merged[payer] = (before[0] + count, max(before[1], most), min(before[2], rate))
        for payer, (count, most, rate) in sorted(merged.items()):
            used.add_metric([payer], count / rate if rate else 0.0)
            peak.add_metric([payer], most / rate if rate else 0.0)
            limit.add_metric([payer], rate)
        yield used
        yield peak
        yield limit


def _nobody(digest: str) -> str | None:
    return None


def _trim(window: deque[float], now: float) -> None:
    while window and now - window[0] >= 1.0:
        window.popleft()


class _SinkCounters(Collector):
    """The notification sinks' own delivered/failed counts (rotator.notify.webhook counts them; this only reads)."""

    def __init__(self) -> None:
        self.sinks: Sequence[QueuedSink] = ()

    def collect(self) -> Iterator[Metric]:
        failed = CounterMetricFamily(
            "bluum_rotator_notifications_failed",
            "Notifications given up on after every retry, by sink ([notifications.NAME]) and type.",
            labels=["sink", "type"],
        )
        delivered = CounterMetricFamily(
            "bluum_rotator_notifications_delivered",
            "Notifications delivered, by sink and type.",
            labels=["sink", "type"],
        )
        for sink in self.sinks:
            failed.add_metric([sink.name, sink.kind], float(sink.failed))
            delivered.add_metric([sink.name, sink.kind], float(sink.delivered))
        yield failed
        yield delivered
