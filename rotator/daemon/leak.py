"""The daemon's leak-report route (`[leak_reports]` in rotator.toml; docs/leak-reports.md): a signed report naming
a leaked key starts an emergency rotation of the one credential whose current key it is.

Why in the daemon: it is the process that is already up, holds the runtime (clients, rate budgets) and serves HTTP;
a scanner (GitHub secret scanning, a SIEM rule, a person with curl) can reach it at once, instead of waiting for a
person to run `rotator rotate NAME --emergency`. The rotation is exactly that command's (`RotationService.rotate` with
`emergency=True`), so I1-I8 hold as they do there; it runs in a thread of its own and the request is answered 202 at
once with the report's id. A second report for a credential whose emergency is still running is answered 409 with the
first one's id and starts nothing (the ledger lease would refuse it anyway: I5).

Anything else changes nothing: each refusal is one log line (the reason, the client, the key's fingerprint once the
report is authentic; never the body nor a header's value) and one count in
`bluum_rotator_leak_reports_refused_total{reason=...}`. The decisions are rotator/rules/leak_report.py.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rotator.core.errors import ConfigError, ExitCode, RotatorError
from rotator.core.model import Stage
from rotator.rules.leak_report import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Refusal,
    Report,
    check_signature,
    malformed_detail,
    match_current,
    match_previous,
    parse_report,
    previous_in_grace,
    reason_text,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from rotator.config.leak_reports import LeakReportSettings
    from rotator.config.loader import Config
    from rotator.rotation.service import RotationService

__all__ = ["Answer", "LeakDesk", "check_leak_settings"]

log = logging.getLogger("rotator.daemon.leak")

MAX_REMEMBERED: Final = 10_000
"""Signatures remembered for replay; only authentic reports are remembered, so only a key holder can fill it."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the route answers: an HTTP status and a small JSON object."""

    status: int
    body: Mapping[str, object]

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode() + b"\n"


def check_leak_settings(config: Config, listening: bool, environ: Mapping[str, str] | None = None) -> None:
    """At the daemon's start: a `[leak_reports]` table needs the listener and its key; ConfigError with the fix."""
    settings = config.leak_reports
    if settings is None:
        return
    if not listening:
        raise ConfigError(
            f"{config.source}: [leak_reports] is configured but the daemon has no listener. Fix: start it with "
            "--metrics-listen HOST:PORT (reports go to that address), or remove the table"
        )
    env = os.environ if environ is None else environ
    key = env.get(settings.secret_env, "")
    if not key:
        raise ConfigError(
            f"{config.source}: leak_reports.secret_env names an environment variable that is not set (or empty); it "
            "holds the key reports are signed with. Fix: set that variable, or remove the table"
        )
    for hook in config.notifications:
        if getattr(hook, "secret_env", None) and env.get(getattr(hook, "secret_env", "")) == key:
            raise ConfigError(
                f"{config.source}: leak_reports.secret_env holds the same key as notifications.{hook.name}: a "
                "webhook the rotator signed must never pass for a leak report. Fix: give leak reports a key of their "
                "own"
            )


class LeakDesk:
    """Receives reports for the daemon: checks, remembers signatures, matches, starts emergencies, counts.

    `config` and `service` are read at each report, so an edit of rotator.toml (the daemon rebuilds its service)
    takes effect for the next one; a table removed turns the route off.
    """

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        service: Callable[[], RotationService],
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        from prometheus_client import Counter

        self._config = config
        self._service = service
        self._clock = clock
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        """Signature -> when it may be forgotten (its timestamp plus the tolerance)."""
        self._running: dict[str, str] = {}
        """Credential -> the id of the report whose emergency rotation is running."""
        self._threads: list[threading.Thread] = []
        self._rotated: dict[str, tuple[str, str]] = {}
        """Fingerprint of a key a report's emergency replaced -> (that report's id, the credential): a scanner that
        reports the same key again is told it is done, not that the key is unknown (kept while the daemon runs)."""
        self.refused = Counter(
            "bluum_rotator_leak_reports_refused",
            "Leak reports that changed nothing, by reason (bad_signature, stale_timestamp, replay, unknown_key, ...).",
            ["reason"],
            registry=registry,
        )
        for reason in Refusal:
            self.refused.labels(reason=reason.value)
        self.accepted = Counter(
            "bluum_rotator_leak_reports_accepted",
            "Authentic leak reports naming a current key: started an emergency, or found one already running.",
            ["result"],
            registry=registry,
        )
        for result in ("started", "in_progress", "already_rotated"):
            self.accepted.labels(result=result)

    @property
    def settings(self) -> LeakReportSettings | None:
        return self._config().leak_reports

    def routes(self, path: str) -> bool:
        """Whether `path` is the route (False when leak reports are off)."""
        settings = self.settings
        return settings is not None and path == settings.path

    # ----------------------------------------------------------------- one request

    def refuse(
        self, reason: Refusal, client: str, fingerprint: str | None = None, *, detail: str | None = None
    ) -> Answer:
        """Count and log a report that changes nothing; the answer says why (it helps an honest sender, and tells
        anyone else nothing they did not send). `detail`: the rule a malformed report broke (never a value)."""
        self.refused.labels(reason=reason.value).inc()
        fields: dict[str, object] = {"reason": reason.value, "client": client}
        if fingerprint:
            fields["fingerprint"] = fingerprint
        answer: dict[str, object] = {"status": "refused", "reason": reason.value}
        if detail:
            fields["detail"] = answer["detail"] = detail
        log.warning("leak report refused: %s", reason.value, extra={"fields": fields})
        return Answer(reason.status, answer)

    def receive(self, headers: Mapping[str, str], body: bytes, client: str) -> Answer:
        """One POST whose content type and length the HTTP handler already checked (`refuse` otherwise)."""
        settings = self.settings
        if settings is None:  # turned off by an edit since the handler looked
            return Answer(404, {"status": "not_found"})
        key = self._environ.get(settings.secret_env, "")
        if not key:
            return self.refuse(Refusal.NO_SECRET, client)
        now = self._clock()
        signature = headers.get(SIGNATURE_HEADER)
        problem = check_signature(
            key.encode(), headers.get(TIMESTAMP_HEADER), signature, body, now=now, tolerance=settings.tolerance
        )
        if problem is not None:
            return self.refuse(problem, client)
        assert signature is not None  # checked above
        if not self._remember(signature.strip(), int(headers[TIMESTAMP_HEADER].strip()) + settings.tolerance, now):
            return self.refuse(Refusal.REPLAY, client)
        report = parse_report(body)
        if isinstance(report, Refusal):
            return self.refuse(report, client, detail=malformed_detail(body))
        return self._act(report, client)

    def _remember(self, signature: str, until: float, now: float) -> bool:
        """False when `signature` was seen within its tolerance; forgets what has expired."""
        with self._lock:
            for old in [s for s, end in self._seen.items() if end < now]:
                del self._seen[old]
            if signature in self._seen:
                return False
            if len(self._seen) >= MAX_REMEMBERED:
                del self._seen[min(self._seen, key=self._seen.__getitem__)]
            self._seen[signature] = until
            return True

    def _act(self, report: Report, client: str) -> Answer:
        service = self._service()
        currents, unreadable = self._currents(service)
        found = match_current(report, currents, unreadable)
        if found in (Refusal.UNKNOWN_KEY, Refusal.STORE_UNREADABLE):
            # Not a current key: an old key still in its grace window is just as alive (and just as leaked).
            previous = match_previous(report, self._olds(service))
            if isinstance(previous, str):
                return self._start(service, previous, report, client, previous=True)
            found = previous or found
        if found is Refusal.UNKNOWN_KEY and report.fingerprint in self._rotated:
            first, name = self._rotated[report.fingerprint]
            self.accepted.labels(result="already_rotated").inc()
            log.info(
                "leak report: that key was replaced by an earlier report's emergency",
                extra={"fields": {"report": first, "credential": name, "fingerprint": report.fingerprint}},
            )
            return Answer(200, {"status": "already_rotated", "id": first, "credential": name})
        if isinstance(found, Refusal):
            return self.refuse(found, client, report.fingerprint)
        return self._start(service, found, report, client, previous=False)

    def _start(self, service: RotationService, name: str, report: Report, client: str, *, previous: bool) -> Answer:
        """Start the credential's emergency (`previous`: the revoke of its old key now) in a thread of its own,
        unless one started by a report is running; a key a person must handle gets an alert instead."""
        report_id = "lr-" + uuid.uuid4().hex[:12]
        if not (service.revokes(name) if previous else service.mints(name)):
            return self._needs_person(service, name, report, report_id, client, previous=previous)
        with self._lock:
            running = self._running.get(name)
            if running is None:
                self._running[name] = report_id
        action = "revoke_previous" if previous else "emergency_rotation"
        fields = {"report": report_id, "credential": name, "fingerprint": report.fingerprint, "client": client}
        if running is not None:
            self.accepted.labels(result="in_progress").inc()
            log.warning("leak report: an emergency of this credential is already running", extra={"fields": fields})
            return Answer(409, {"status": "in_progress", "id": running, "credential": name, "refused_id": report_id})
        self.accepted.labels(result="started").inc()
        log.warning("leak report accepted: %s starting", action.replace("_", " "), extra={"fields": fields})
        thread = threading.Thread(
            target=self._rotate,
            args=(service, name, report, report_id, previous),
            name=f"rotator-{report_id}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return Answer(202, {"status": "accepted", "id": report_id, "credential": name, "action": action})

    def _needs_person(
        self, service: RotationService, name: str, report: Report, report_id: str, client: str, *, previous: bool
    ) -> Answer:
        """A key only Bluum's dashboard can mint or revoke (`issuer = "manual"`) cannot be handled unattended:
        refused, and the notification sinks get an alert that says what a person must do now."""
        from rotator.core.events import EventKind, RotationEvent

        if previous:
            message = (
                f"leak report {report_id} names the old key of {name} ({report.fingerprint}), still in its grace "
                f"window and revoked only in Bluum's dashboard: revoke it there now, then run `rotator resume {name} "
                "--now`"
            )
        else:
            message = (
                f"leak report {report_id} names the current key of {name} ({report.fingerprint}), which is minted in "
                f"Bluum's dashboard: create a new pair there now, then run `rotator rotate {name} --emergency "
                f'--reason "{reason_text(report, report_id)}" --new-key-file FILE`'
            )
        try:
            service.bus.publish(
                RotationEvent(
                    kind=EventKind.ALERT,
                    credential=name,
                    step="leak_report",
                    message=message,
                    subject="leak_report_needs_person",
                    actor=service.runtime.owner,
                    at=service.now(),
                )
            )
        except Exception:  # the alert must not turn the answer into a failure
            log.exception("leak report: alert not announced", extra={"fields": {"report": report_id}})
        answer = self.refuse(Refusal.NEEDS_PERSON, client, report.fingerprint)
        return Answer(answer.status, {**answer.body, "id": report_id, "credential": name})

    def _currents(self, service: RotationService) -> tuple[dict[str, str | None], int]:
        """Each credential's current public key, as its primary store holds it; and how many could not be read."""
        currents: dict[str, str | None] = {}
        unreadable = 0
        for cred in service.config.credentials.values():
            try:
                current = service.runtime.store(cred.store).read(Stage.CURRENT)
            except RotatorError as exc:
                unreadable += 1
                log.warning(
                    "leak report: a store could not be read",
                    extra={"fields": {"credential": cred.name, "error": type(exc).__name__}},
                )
                continue
            currents[cred.name] = current.api_key if current is not None else None
        return currents, unreadable

    def _olds(self, service: RotationService) -> dict[str, str | None]:
        """Each credential's old key while its rotation waits out the grace window (from its record, which names the
        key as Bluum listed it); a record that cannot be read counts as none (the refusal stands)."""
        olds: dict[str, str | None] = {}
        for cred in service.config.credentials.values():
            try:
                olds[cred.name] = previous_in_grace(service.runtime.read_record(cred))
            except RotatorError as exc:
                log.warning(
                    "leak report: a rotation record could not be read",
                    extra={"fields": {"credential": cred.name, "error": type(exc).__name__}},
                )
        return olds

    def _rotate(self, service: RotationService, name: str, report: Report, report_id: str, previous: bool) -> None:
        """In its own thread: `rotator rotate NAME --emergency --reason "leak report ..."`, or (`previous`) the
        revoke of the old key now, as `rotator resume NAME --now` with the consumers not waited for."""
        fields: dict[str, object] = {"report": report_id, "credential": name}
        what = "revoke of the old key" if previous else "emergency rotation"
        reason = reason_text(report, report_id)
        try:
            if previous:
                outcome = service.revoke_leaked(name, leaked=report.fingerprint, reason=reason)
            else:
                outcome = service.rotate(name, emergency=True, reason=reason)
            fields["exit_code"] = int(outcome.exit_code)
            if outcome.exit_code == ExitCode.OK:
                with self._lock:
                    self._rotated[report.fingerprint] = (report_id, name)
            log.warning("leak report %s: %s ended: %s", report_id, what, outcome.message, extra={"fields": fields})
        except RotatorError as exc:
            fields["exit_code"] = int(exc.exit_code)
            log.error("leak report %s: %s failed: %s", report_id, what, exc, extra={"fields": fields})
        except Exception:  # a thread's exception would only reach stderr; the log gets its type
            log.exception("leak report %s: %s failed unexpectedly", report_id, what, extra={"fields": fields})
        finally:
            with self._lock:
                self._running.pop(name, None)

    def busy(self) -> bool:
        """Whether an emergency started by a report is running (the daemon keeps its service until it ends)."""
        with self._lock:
            return bool(self._running)

    def wait(self, timeout: float) -> None:
        """Wait for the running emergencies to end (each stops after its step once the runtime is stopping)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
