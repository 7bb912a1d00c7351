"""What a tick tells people about the fleet: overdue keys, keys only a person can rotate, stuck rotations, orphan keys,
and Bluum answering 5xx or 429, as events on the bus (so every notification sink gets them) and as findings the
metrics show.

Why decisions are pure functions of a tick's status rows and request counts (`status_findings`, `traffic_findings`):
the same rules must hold in the daemon, in cron's `run-due`, and in the tests, and a rule is easiest to trust when a
table of inputs pins it. Why `Reminders`: cron starts a new process every 15 minutes, so without memory an overdue key
would page someone 96 times a day. A condition is announced when it appears, again every `remind_every` while it
lasts, and forgotten when it clears (so its return is announced at once). The memory is a small JSON file beside the
history (no secret: credential names, key ids, times).

Why the tick does not sweep by default: finding orphans needs one key-list call per investor at Bluum. After a crash the
unfinished record makes `resume` (run by the tick) finish or undo the rotation, so orphans are rare; `[alerts]
sweep_every = "24h"` makes the tick run a read-only sweep that often, and `rotator sweep` announces what it finds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rotator.config.notifications import AlertSettings
from rotator.core.events import EventKind, RotationEvent
from rotator.core.timestamps import format_timestamp

if TYPE_CHECKING:
    from rotator.bluum.traffic import ResponseInfo, ResponseObserver
    from rotator.rotation.service import RotationService
    from rotator.rotation.status import CredentialStatus
    from rotator.rotation.sweep import SweepFinding

__all__ = [
    "Finding",
    "Reminders",
    "TickWatch",
    "Traffic",
    "TrafficCount",
    "counting",
    "overdue",
    "publish_sweep",
    "server_errors_alarming",
    "status_findings",
    "stuck",
    "sweep_findings",
    "traffic_findings",
]

log = logging.getLogger("rotator.alerts")

STATE_FILE: Final = ".alerts-state.json"
"""In the history folder: when each active condition was last announced, and when the tick last swept."""
BLUUM_5XX: Final = "bluum_5xx"
BLUUM_429: Final = "bluum_429"
STUCK: Final = "stuck"
TOO_MANY_KEYS: Final = "too_many_keys"


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bluum requests of one tick (every attempt, retries included), by what came back."""

    requests: int = 0
    server_errors: int = 0
    """Answers 500-599."""
    rate_limited: int = 0
    """Answers 429."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition a tick found; `key` says which, so it is announced once per `remind_every`."""

    kind: EventKind
    credential: str
    """The credential it concerns, or "" for the whole fleet (Bluum's 5xx)."""
    message: str
    subject: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.credential}:{self.subject or ''}"


class TrafficCount:
    """A Bluum response observer counting what came back (every attempt, retries included): the one count of 5xx
    and 429 answers, read by the tick's alerts and by the Lambda's CloudWatch records alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traffic = Traffic()

    def __call__(self, info: ResponseInfo) -> None:
        """On the request's thread: cheap, never raises."""
        status = info.status
        with self._lock:
            now = self._traffic
            self._traffic = Traffic(
                requests=now.requests + 1,
                server_errors=now.server_errors + (status is not None and 500 <= status <= 599),
                rate_limited=now.rate_limited + (status == 429),
            )

    @property
    def traffic(self) -> Traffic:
        with self._lock:
            return self._traffic


@contextmanager
def counting(observers: MutableSequence[ResponseObserver]) -> Iterator[TrafficCount]:
    """Count the Bluum answers of the block (`observers`: a runtime's `response_observers`)."""
    count = TrafficCount()
    observers.append(count)
    try:
        yield count
    finally:
        observers.remove(count)


# --------------------------------------------------------------------------------------------------- the rules


def overdue(next_due: float | None, now: float) -> bool:
    """The one overdue rule: the current key is past the time its rotation was due (unknown is not overdue: a key
    of unknown age is rotated as due by the tick, and `status` says its age is unknown)."""
    return next_due is not None and next_due < now


def server_errors_alarming(traffic: Traffic, settings: AlertSettings) -> bool:
    """At least `server_errors` 5xx answers in the tick, or at least 2 that are `server_error_ratio` of its requests.

    The second rule catches an outage in a quiet tick (2 of 4 calls failed) without paging for one retried blip.
    """
    count = traffic.server_errors
    if count >= settings.server_errors:
        return True
    return count >= 2 and traffic.requests > 0 and count / traffic.requests >= settings.server_error_ratio


def traffic_findings(traffic: Traffic, settings: AlertSettings) -> list[Finding]:
    """Alerts on what Bluum answered during the tick."""
    found = []
    if server_errors_alarming(traffic, settings):
        found.append(
            Finding(
                EventKind.ALERT,
                "",
                f"Bluum answered {traffic.server_errors} of {traffic.requests} requests with a 5xx in this tick; "
                "rotations retry and resume, but check Bluum's status page if it goes on",
                BLUUM_5XX,
            )
        )
    if traffic.rate_limited >= settings.rate_limited:
        found.append(
            Finding(
                EventKind.ALERT,
                "",
                f"Bluum answered {traffic.rate_limited} request(s) with 429 in this tick: something else uses the same "
                "key pair's rate limit (another rotator, an application using the tenant key); lower [bluum] "
                "rate_limit_* or give that caller a key of its own",
                BLUUM_429,
            )
        )
    return found


def stuck(row: CredentialStatus, now: float, settings: AlertSettings) -> bool:
    """An unfinished rotation not waiting out its grace window whose record has not changed for `stuck_after`."""
    if row.updated_at is None:
        return False
    if row.grace_until is not None and row.grace_until > now:
        return False
    return now - row.updated_at > settings.stuck_after.total_seconds()


def status_findings(
    rows: Iterable[CredentialStatus], now: float, settings: AlertSettings, *, mints: Callable[[str], bool]
) -> list[Finding]:
    """Overdue keys (a person's, when only a person can make the new one) and stuck rotations, after a tick."""
    found = []
    for row in rows:
        if row.exit_code == 0 and row.next_due is not None and overdue(row.next_due, now):
            days = (now - row.next_due) / 86400
            if row.paused:  # a pause holds back the scheduler, never the alarm: someone must decide
                message = (
                    f"{row.name}: the current key {row.current_key or '?'} is {days:.1f} day(s) past its rotation "
                    f"period and is PAUSED (by {row.paused_by}, until "
                    f"{format_timestamp(row.paused_until) if row.paused_until else '`rotator unpause`'}; reason: "
                    f"{row.pause_reason}), so no scheduler rotates it: `rotator unpause {row.name}` or "
                    f"`rotator rotate {row.name}`"
                )
                found.append(Finding(EventKind.OVERDUE, row.name, message))
            elif mints(row.name):
                message = (
                    f"{row.name}: the current key {row.current_key or '?'} is {days:.1f} day(s) past its rotation "
                    f"period and the tick did not rotate it: {row.waiting}"
                )
                found.append(Finding(EventKind.OVERDUE, row.name, message))
            else:
                message = (
                    f"{row.name}: the current key {row.current_key or '?'} is due for rotation ({days:.1f} day(s) "
                    f"over) and only a person can make the new pair: create it in Bluum's dashboard, then "
                    f"`rotator rotate {row.name} --new-key-file FILE`"
                )
                found.append(Finding(EventKind.NEEDS_PERSON, row.name, message))
        if stuck(row, now, settings):
            hours = (now - (row.updated_at or now)) / 3600
            message = (
                f"{row.name}: the rotation at {row.stage} has not moved for {hours:.1f} h ({row.waiting}); if no "
                f"runner is on it, `rotator resume {row.name}` finishes it"
            )
            found.append(Finding(EventKind.ALERT, row.name, message, STUCK))
    return found


def sweep_findings(findings: Iterable[SweepFinding]) -> list[Finding]:
    """What a sweep found that a person should hear of: active keys no store knows, and too many active keys."""
    found = []
    for item in findings:
        if item.kind in ("orphan", "held") and item.key_id:
            message = f"{item.credential}: {item.key_id} is active at Bluum and no store knows it ({item.message})"
            found.append(Finding(EventKind.ORPHAN, item.credential, message, item.key_id))
        elif item.kind == "warning":
            found.append(Finding(EventKind.ALERT, item.credential, f"{item.credential}: {item.message}", TOO_MANY_KEYS))
    return found


# --------------------------------------------------------------------------------------------------- memory


class Reminders:
    """When each active condition was last announced, kept in a JSON file so cron's processes share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.announced: dict[str, float] = {}
        self.last_sweep: float | None = None
        self._load()

    def due(self, findings: Sequence[Finding], now: float, remind_every: float) -> list[Finding]:
        """The findings to announce now; conditions no longer found are forgotten."""
        active = {finding.key for finding in findings}
        self.announced = {key: when for key, when in self.announced.items() if key in active}
        chosen = []
        for finding in findings:
            last = self.announced.get(finding.key)
            if last is None or now - last >= remind_every:
                self.announced[finding.key] = now
                chosen.append(finding)
        return chosen

    def save(self) -> None:
        """Write the file (atomically); a failure is logged: at worst a reminder comes early."""
        from rotator.core.errors import StoreError
        from rotator.core.state_files import write_own_file

        state = {"announced": self.announced, "last_sweep": self.last_sweep}
        try:
            if not self.announced and self.last_sweep is None and not self.path.exists():
                return  # nothing to remember: leave no file behind
            text = json.dumps(state, indent=1, sort_keys=True) + "\n"
            write_own_file(self.path, text, setting="[history] dir in rotator.toml")  # the rotator's own file
        except (OSError, StoreError) as exc:
            why = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
            log.warning("could not save %s (%s); reminders may repeat early", self.path, why)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("could not read %s (%s); every active condition is announced again", self.path, exc)
            return
        announced = data.get("announced") if isinstance(data, dict) else None
        if isinstance(announced, dict):
            self.announced = {str(k): float(v) for k, v in announced.items() if isinstance(v, int | float)}
        last_sweep = data.get("last_sweep") if isinstance(data, dict) else None
        self.last_sweep = float(last_sweep) if isinstance(last_sweep, int | float) else None


# --------------------------------------------------------------------------------------------------- the tick


def _publish(service: RotationService, finding: Finding, now: float) -> None:
    service.bus.publish(
        RotationEvent(
            kind=finding.kind,
            credential=finding.credential,
            step="tick",
            message=finding.message,
            subject=finding.subject,
            actor=service.runtime.owner,
            at=now,
        )
    )


def publish_sweep(service: RotationService, findings: Iterable[SweepFinding]) -> list[Finding]:
    """Announce what a sweep found (`rotator sweep`: a person asked, so no reminder memory applies)."""
    found = sweep_findings(findings)
    now = service.now()
    for finding in found:
        _publish(service, finding, now)
    return found


class TickWatch:
    """After each tick: judge the status rows, the tick's Bluum traffic and (every `sweep_every`) a sweep, announce
    what is new or due for a reminder on the service's bus, and return everything found (for the metrics)."""

    def __init__(self, service: RotationService) -> None:
        self.service = service
        self.settings = service.config.alerts
        self.state_path = service.config.history.dir / STATE_FILE

    def after_tick(self, rows: Sequence[CredentialStatus], traffic: Traffic, *, now: float) -> list[Finding]:
        reminders = Reminders(self.state_path)
        found = [
            *status_findings(rows, now, self.settings, mints=self._mints),
            *traffic_findings(traffic, self.settings),
        ]
        found += self._sweep_if_due(reminders, now)
        for finding in reminders.due(found, now, self.settings.remind_every.total_seconds()):
            _publish(self.service, finding, now)
        reminders.save()
        return found

    def _mints(self, name: str) -> bool:
        try:
            return self.service.mints(name)
        except Exception:  # an issuer that cannot be built is reported by the tick itself; call it unattended
            return True

    def _sweep_if_due(self, reminders: Reminders, now: float) -> list[Finding]:
        every = self.settings.sweep_every
        if every is None or (reminders.last_sweep is not None and now - reminders.last_sweep < every.total_seconds()):
            return []
        reminders.last_sweep = now
        try:
            return sweep_findings(self.service.sweep(revoke=False))
        except Exception as exc:
            log.warning(
                "the tick's sweep for orphan keys failed (%s: %s); the next sweep tries again",
                type(exc).__name__,
                exc,
                extra={"fields": {"step": "sweep"}},
            )
            return []
