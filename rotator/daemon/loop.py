"""`rotator daemon`: one long-running process that runs the scheduler tick (what `rotator run-due` does) every
interval, with jitter, until it is asked to stop.

Why a daemon when cron can run `run-due`: it keeps one runtime (HTTP connection pools, the rate budget of each
manager key) from tick to tick, serves `/metrics` and `/healthz` for Prometheus and orchestrators, and fits where
there is no cron (a container). Two daemons, or a daemon and a cron job or the Lambda, can share the same stores:
each credential's ledger lease lets exactly one of them rotate it; the other gets exit 3 for it and moves on.

How it stops. The first SIGTERM or SIGINT sets the runtime's `stopping` event: each rotation in hand stops after the
step it is on (its record is written at every step), no new credential is started, the tick ends and the process
exits 0. A second signal ends the process at once, by that signal's default action (so a shell sees 143 for
SIGTERM, 130 for SIGINT): nothing is lost either way, since what was in hand is finished by `rotator resume` or by the
next tick of any runner. The handlers are `rotator.daemon.stop_signals`.

What survives a bad tick: everything. An exception in a tick is logged (its type and message, never a secret) and
counted, the heartbeat still beats, and the next tick runs on schedule. rotator.toml is read again before every tick,
so an edit takes effect without a restart; an edit that does not parse is reported at every tick and the daemon keeps
running on the configuration it last read successfully (a typo must not stop rotations that were working). So does a
file that another user became able to change (rotator/config/trust.py): its new content is never read, and the
configuration kept was read while the file could be trusted. The notification sinks are told once, with the kind
and number of problems and never a line of the file (`config_alert`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import schedule

from rotator.core.durations import format_duration, parse_duration
from rotator.core.errors import ConfigError, ConfigUntrusted, ExitCode, RotatorError
from rotator.core.events import EventKind, RotationEvent
from rotator.core.timestamps import format_timestamp
from rotator.daemon.health import Beat, HealthServer, stale_after
from rotator.daemon.lanes import lane_lines
from rotator.daemon.leak import LeakDesk, check_leak_settings
from rotator.daemon.metrics import Telemetry
from rotator.daemon.stop_signals import StopSignals
from rotator.ops.tick import run_due_each, run_tick

if TYPE_CHECKING:
    from rotator.config.loader import Config
    from rotator.ops.app import App
    from rotator.rotation.driver import Outcome
    from rotator.rotation.service import RotationService

__all__ = ["DEFAULT_EVERY", "Cadence", "Daemon", "config_alert", "parse_cadence", "summarize"]

log = logging.getLogger("rotator.daemon")

DEFAULT_EVERY = "15m"
"""Cheap when nothing is due (stores are read, Bluum is not called), and an old key is revoked soon after its grace
window ends."""
TICK_FAILED = "daemon_tick_failed"
"""The `alert` subject of a tick that raised (announced once per run of failed ticks)."""
LEAK_WAIT_SECONDS = 30.0
"""At stop, how long the daemon waits for an emergency a leak report started to stop after its step."""
RELOAD_FAILED = "config_reload_failed"
"""The `alert` subject of a rotator.toml that could not be read again (announced once until it is fixed)."""


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often the daemon ticks: `every` seconds after the previous tick ended, plus up to `jitter` more, drawn at
    random each time (so daemons started together, or many hosts, do not all call Bluum in the same second)."""

    every: int
    jitter: int

    @property
    def stale_after(self) -> float:
        """Seconds without a beat after which `/healthz` answers 503 (see rotator.daemon.health.stale_after)."""
        return stale_after(self.every, self.jitter)

    def describe(self) -> str:
        every = format_duration(self.every)
        return f"every {every}" + (f" + up to {format_duration(self.jitter)} jitter" if self.jitter else "")


def parse_cadence(every: str, jitter: str | None) -> Cadence:
    """`--every` and `--jitter` as durations ("15m", "90s"); jitter defaults to a tenth of the interval.

    Whole seconds only (the scheduler counts in seconds), and at least one second between ticks: a ConfigError that
    names the flag and the fix otherwise.
    """
    period = _whole_seconds("--every", every)
    if period < 1:
        raise ConfigError(f"--every {every}: the daemon ticks at most once a second; write e.g. --every 15m")
    spread = period // 10 if jitter is None else _whole_seconds("--jitter", jitter)
    if spread > period:
        raise ConfigError(
            f"--jitter {jitter}: longer than --every {every}, so ticks could be further apart than /healthz allows "
            f"for; write at most --jitter {format_duration(period)}"
        )
    return Cadence(every=period, jitter=spread)


def _whole_seconds(flag: str, text: str) -> int:
    try:
        seconds = parse_duration(text).total_seconds()
    except ConfigError as exc:
        raise ConfigError(f"{flag} {text}: {exc}") from None
    if seconds != int(seconds):
        raise ConfigError(
            f"{flag} {text}: the daemon counts in whole seconds; write e.g. {flag} {max(1, math.ceil(seconds))}s"
        )
    return int(seconds)


def summarize(outcomes: Sequence[Outcome]) -> str:
    """Counts of outcomes by exit code, for a person: "3 ok, 1 in_progress (3)"; "no credentials" for none."""
    if not outcomes:
        return "no credentials"
    counts = Counter(ExitCode(outcome.exit_code) for outcome in outcomes)
    parts = []
    for code in sorted(counts):
        label = code.name.lower()
        parts.append(f"{counts[code]} {label}" if code is ExitCode.OK else f"{counts[code]} {label} ({int(code)})")
    return ", ".join(parts)


class Daemon:
    """The loop: tick, beat, wait; signals stop it. Build one per process and call `run()` from the main thread.

    `load` reads rotator.toml (called at start, where an error ends the command with exit 2, and before every tick);
    `build` assembles the app (service, history, sinks: `rotator.ops.app`) for a configuration; `say` prints a line
    for a person (None: quiet); `warn` prints an error line (always).
    """

    def __init__(
        self,
        *,
        load: Callable[[], Config],
        build: Callable[[Config], App],
        cadence: Cadence,
        say: Callable[[str], None] | None,
        warn: Callable[[str], None],
        heartbeat_file: Path | None = None,
        listen: tuple[str, int] | None = None,
    ) -> None:
        self._load = load
        self._build = build
        self.cadence = cadence
        self._say_line = say
        self._warn = warn
        self._heartbeat_file = heartbeat_file
        self._listen = listen
        self._stop = threading.Event()
        self._app: App | None = None
        self._server: HealthServer | None = None
        self._leak: LeakDesk | None = None
        self._config: Config | None = None
        self._config_read_at = 0.0
        self._ticks = 0
        self._line = ""
        self._alerting: set[str] = set()
        """Alert subjects announced and not yet recovered."""
        self.beat = Beat(cadence.stale_after)
        self.telemetry = Telemetry()
        """The process's one set of metrics: the tick's (rotator.daemon.metrics) and the daemon's own."""
        self._metrics = _DaemonMetrics(self.telemetry)

    @property
    def app(self) -> App:
        """The app (service, history, sinks) of the configuration in effect (rebuilt when rotator.toml changes)."""
        if self._app is None:
            raise RuntimeError("the daemon is not running: call run()")
        return self._app

    @property
    def service(self) -> RotationService:
        """The rotation service of the configuration in effect."""
        return self.app.service

    @property
    def config(self) -> Config:
        if self._config is None:
            raise RuntimeError("the daemon is not running: call run()")
        return self._config

    # ----------------------------------------------------------------- the loop

    def run(self) -> int:
        """Run until asked to stop; returns the exit code (0). Start-up errors (configuration, flags, the heartbeat
        file, the listen address) raise ConfigError before any tick, so the command exits 2 having changed nothing."""
        self.open()
        try:
            with StopSignals(self._on_stop, who="rotator daemon"):
                self._loop()
        finally:
            self.close()
        self._say(
            f"stopped after {self._ticks} tick(s); anything stopped half-way is finished by the next start or "
            "`rotator resume`"
        )
        log.info("daemon stopped", extra={"fields": {"ticks": self._ticks}})
        return int(ExitCode.OK)

    def open(self) -> None:
        """Read the configuration, build the service, write the first heartbeat, start the HTTP server."""
        config = self._load()
        self._config, self._config_read_at = config, time.time()
        self._app = self._build(config)
        try:
            self.telemetry.attach(self._app)
            self._write_heartbeat(at_start=True)
            check_leak_settings(config, listening=self._listen is not None)
            if self._listen is not None:
                self._leak = LeakDesk(
                    config=lambda: self.config, service=lambda: self.service, registry=self.telemetry.registry
                )
                self._server = HealthServer(*self._listen, self.beat, self.telemetry.registry, self._leak).start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the HTTP server and close the app (its service's clients and stores, its sinks' deliveries)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._leak is not None:  # an emergency a report started stops after its step (the runtime is stopping)
            self._leak.wait(timeout=LEAK_WAIT_SECONDS)
        if self._app is not None:
            self._app.close()

    def _loop(self) -> None:
        scheduler = schedule.Scheduler()
        job = scheduler.every(self.cadence.every)
        if self.cadence.jitter:
            job = job.to(self.cadence.every + self.cadence.jitter)
        job.seconds.do(self.tick_once)
        where = f"; /metrics and /healthz on {self._server.url}" if self._server is not None else ""
        if self._server is not None and self.config.leak_reports is not None:
            where += f"; leak reports to POST {self._server.url}{self.config.leak_reports.path}"
        self._say(
            f"daemon started: {len(self.config.credentials)} credential(s) from {self.config.source}, "
            f"{self.cadence.describe()}{where}; SIGTERM or SIGINT stops it after the step in hand"
        )
        log.info(
            "daemon started",
            extra={"fields": {"every": self.cadence.every, "jitter": self.cadence.jitter, "pid": os.getpid()}},
        )
        scheduler.run_all()  # the first tick now: a restarted daemon finishes what its predecessor left
        self._announce(scheduler)
        while not self._stop.is_set():
            idle = scheduler.idle_seconds
            if idle is not None and idle > 0:
                self._stop.wait(idle)
            if self._stop.is_set():
                break
            scheduler.run_pending()
            self._announce(scheduler)

    def _announce(self, scheduler: schedule.Scheduler) -> None:
        """The line of the tick that just ended, with when the next one runs."""
        if not self._line:
            return
        line, self._line = self._line, ""
        idle = scheduler.idle_seconds
        if self._stop.is_set() or idle is None:
            self._say(line)
            return
        wait = max(0.0, idle)
        at = format_timestamp(time.time() + wait)
        self._say(f"{line}; next tick at {at} (in {format_duration(round(wait))})")

    # ----------------------------------------------------------------- one tick

    def tick_once(self) -> None:
        """One tick (after `open()`). Never raises: the scheduler would not plan the next run after an exception."""
        if self._stop.is_set():
            return
        self._ticks += 1
        number, started = self._ticks, time.monotonic()
        result = "failed"
        try:
            self._reload()
            service = self.service
            self._say(f"tick {number}: started over {len(service.config.credentials)} credential(s)")
            log.info("tick started", extra={"fields": {"tick": number, "credentials": len(service.config.credentials)}})
            outcomes = run_tick(service, telemetry=self.telemetry, fleet=self._run_tick)
            for line in lane_lines(service.runtime, number):  # [fleet] lanes: who runs which tenant key's lane
                self._say(line)
            for outcome in outcomes:
                if outcome.exit_code != ExitCode.OK:
                    self._warn(outcome.message)
            result = "ok"
            self._alerting.discard(TICK_FAILED)
            seconds = time.monotonic() - started
            counts = Counter(ExitCode(o.exit_code).name.lower() for o in outcomes)
            log.info("tick done", extra={"fields": {"tick": number, "seconds": round(seconds, 3), **counts}})
            self._line = f"tick {number}: done in {format_duration(seconds, places=2)}: {summarize(outcomes)}"
        except Exception as exc:  # a bad tick must not end the daemon; the next one may well succeed
            shown = str(exc) if isinstance(exc, RotatorError) else f"unexpected {type(exc).__name__} (see the log)"
            log.error("tick failed; the next tick runs as scheduled", exc_info=True, extra={"fields": {"tick": number}})
            self._warn(f"error: tick {number} failed: {shown}; the next tick runs as scheduled")
            told = shown  # a configuration error's text stays here: it may describe what was written (item 7)
            if isinstance(exc, ConfigError):
                told = f"a configuration problem ({type(exc).__name__}, see the log)"
            self._alert(TICK_FAILED, f"daemon tick {number} failed: {told}; the next tick runs as scheduled")
            self._line = f"tick {number}: failed after {format_duration(time.monotonic() - started, places=2)}"
        finally:
            self._metrics.ticks.labels(result=result).inc()
            self._after_tick(result)

    def _run_tick(self, service: RotationService) -> list[Outcome]:
        """The tick's fleet step, what `rotator run-due` runs: every credential, concurrently within the fleet's
        limits (`rotator.ops.tick` then reads the status, announces the alerts and hands the metrics what it found)."""
        return run_due_each(service)

    def _reload(self) -> None:
        """Read rotator.toml again; a changed file gets a new app, a broken one keeps the last good."""
        if self._leak is not None and self._leak.busy():  # its rotation runs on this service: keep it until it ends
            log.info("configuration not read again: an emergency started by a leak report is running")
            return
        try:
            config = self._load()
            if config == self.config:
                self._config_read_at = time.time()
                self._alerting.discard(RELOAD_FAILED)
                return
            app = self._build(config)
        except RotatorError as exc:
            self._metrics.reload_failures.inc()
            since = format_timestamp(self._config_read_at)
            log.error(
                "configuration not reloaded; keeping the last good one",
                exc_info=True,
                extra={"fields": {"last_good": since}},
            )
            kept = f"the daemon keeps running on the configuration it read at {since} until the file is fixed"
            self._warn(f"error: {exc} ({kept})")
            self._alert(RELOAD_FAILED, f"{config_alert(self.config.source, exc)}; {kept}")
            return
        old, self._app = self.app, app
        self._config, self._config_read_at = config, time.time()
        self._alerting.discard(RELOAD_FAILED)
        if self._stop.is_set():  # a signal came while the new service was being built
            app.service.runtime.stopping.set()
        self.telemetry.attach(app)
        old.close()
        self._say(f"configuration changed: now {len(config.credentials)} credential(s)")
        log.info("configuration reloaded", extra={"fields": {"credentials": len(config.credentials)}})

    def _alert(self, subject: str, message: str) -> None:
        """Tell the notification sinks (an `alert` event on the service's bus: webhooks, SNS, the log) when `subject`
        starts failing; not again until it has recovered, so a file left broken overnight is one message, not one per
        tick. A configuration error's own text never goes out (`config_alert`): it stays in the log and on stderr."""
        if subject in self._alerting:
            return
        self._alerting.add(subject)
        service = self.service
        try:
            service.bus.publish(
                RotationEvent(
                    kind=EventKind.ALERT,
                    credential="",
                    step="daemon",
                    message=message,
                    subject=subject,
                    actor=service.runtime.owner,
                    at=service.now(),
                )
            )
        except Exception:  # the alert of a failure must not become a failure of the loop
            log.exception("alert not announced", extra={"fields": {"subject": subject}})

    def _after_tick(self, result: str) -> None:
        self.beat.beat(ticks=self._ticks, last_tick=result)
        self._metrics.heartbeat.set(time.time())
        try:
            self._write_heartbeat(at_start=False, last_tick=result)
        except ConfigError as exc:
            log.error("heartbeat file not written", extra={"fields": {"problem": str(exc)}})
            self._warn(f"error: {exc}")

    # ----------------------------------------------------------------- health

    def _write_heartbeat(self, *, at_start: bool, last_tick: str = "none yet") -> None:
        """The heartbeat file: one JSON line, replaced atomically (a reader never sees half of it); its mtime is the
        beat. At start a failure is a ConfigError (the command exits 2); later the caller logs it."""
        if self._heartbeat_file is None:
            return
        from rotator.core.atomicfile import atomic_write_text

        now = time.time()
        body = {
            "time": format_timestamp(now),
            "unix": round(now, 3),
            "pid": os.getpid(),
            "ticks": self._ticks,
            "last_tick": last_tick,
            "stale_after_seconds": self.cadence.stale_after,
        }
        try:
            atomic_write_text(self._heartbeat_file, json.dumps(body) + "\n", mode=0o644)
        except OSError as exc:
            when = "at start" if at_start else f"after tick {self._ticks}"
            raise ConfigError(
                f"--heartbeat-file {self._heartbeat_file}: cannot be written {when} ({exc.strerror or exc}). Fix: "
                "point it at a writable folder (e.g. /run/bluum-rotator/heartbeat)"
            ) from None

    # ----------------------------------------------------------------- signals

    def _say(self, line: str) -> None:
        if self._say_line is not None:
            self._say_line(line)

    def _on_stop(self, name: str) -> None:
        """The first SIGTERM or SIGINT (in the watcher thread): no new tick; each rotation stops after its step."""
        self._stop.set()
        app = self._app
        if app is not None:
            app.service.runtime.stopping.set()
        log.warning("stopping after the step in hand", extra={"fields": {"signal": name}})
        self._say(
            f"{name}: stopping after the step in hand (send it again to stop at once; `rotator resume` finishes "
            "the rest)"
        )


def config_alert(source: str, exc: RotatorError) -> str:
    """What the notification sinks are told of a rotator.toml that could not be read again: what kind of problem and
    how many, never a line of it. A problem line names keys and may describe what was written under them, and a
    webhook or an SNS topic reaches more people and systems than the host's log does (issue 16, item 7)."""
    from rotator.config.loader import ConfigProblems

    if isinstance(exc, ConfigUntrusted):
        what = f"is refused: another user than its owner and root could change it ({len(exc.problems)} problem(s))"
    elif isinstance(exc, ConfigProblems):
        what = f"is invalid: {len(exc.problems)} problem(s)"
    else:
        what = f"could not be read again ({type(exc).__name__})"
    return f"{source} {what}; see the daemon's log, or run `rotator status` for each problem and its fix"


class _DaemonMetrics:
    """The daemon's own series, in the process's one registry beside the tick's."""

    def __init__(self, telemetry: Telemetry) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Gauge

        registry = telemetry.registry
        self.ticks = PromCounter(
            "bluum_rotator_daemon_ticks", "Ticks the daemon ran, by result (ok, failed).", ["result"], registry=registry
        )
        for result in ("ok", "failed"):  # both series exist from the start, so an alert on failures has a baseline
            self.ticks.labels(result=result)
        self.reload_failures = PromCounter(
            "bluum_rotator_daemon_config_reload_failures",
            "Times rotator.toml could not be read again; the daemon kept its last good configuration.",
            registry=registry,
        )
        self.heartbeat = Gauge(
            "bluum_rotator_daemon_heartbeat_timestamp_seconds",
            "When the daemon last beat (at start and after every tick).",
            registry=registry,
        )
        self.heartbeat.set(time.time())
