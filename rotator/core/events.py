"""What a rotation reports, as typed events on one bus; the CLI's lines, the logs and the history subscribe.

Why a bus rather than print and log calls in every step: a rotation runs from the CLI, from cron, from a daemon
thread and (one step at a time) from a Lambda, and each wants the same facts in another form: a line for a person,
a JSON log record, an append-only history entry, later a notification or a metric. Steps publish once; each
subscriber decides what to do with it. Events carry key ids and labels, never a secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger("rotator.events")


class EventKind(StrEnum):
    """What happened. One rotation publishes STARTED (or RESUMED), a STEP per finished step, and one ending."""

    STARTED = "started"
    RESUMED = "resumed"
    STEP = "step"
    NOTE = "note"  # something worth telling that is not a step of its own (a duplicate key revoked, ...)
    PROGRESS = "progress"  # a long wait goes on (for the person watching, and the log; not for the history)
    WAITING = "waiting"  # stopped to wait: the grace window, or a person (the message says what to do)
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    STOPPED = "stopped"  # left incomplete by an error: `rotator resume` or a person finishes
    # Findings about the fleet, published by a tick or a sweep rather than by a rotation (see OBSERVATIONS):
    NEEDS_PERSON = "needs_person"  # a due rotation that only a person can start (a key made in the dashboard)
    OVERDUE = "overdue"  # the current key is past its rotation period
    ORPHAN = "orphan"  # an active key at Bluum that no store knows (`subject` is its id)
    PAUSED = "paused"  # an operator paused the credential's scheduled rotations (`rotator pause`)
    UNPAUSED = "unpaused"  # ... and lifted that pause (`rotator unpause`)
    ALERT = "alert"  # a threshold was crossed: Bluum 5xx, 429s, a stuck rotation (`subject` names the alert)


OBSERVATIONS: frozenset[EventKind] = frozenset(
    {EventKind.NEEDS_PERSON, EventKind.OVERDUE, EventKind.ORPHAN, EventKind.ALERT}
)
"""Kinds that report the state of the fleet, not a step of a rotation: they go to notifications and metrics, not to a
credential's history (a tick repeats them) nor to the step lines a person watches."""


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """One fact about one rotation of one credential. `step` is a `machine.Step` value or a command word."""

    kind: EventKind
    credential: str
    step: str
    message: str
    token: str | None = None
    seconds: float | None = None
    """How long the step took, when it was a step."""
    waited: float | None = None
    """How much of `seconds` was sleeping (propagation polls, the throttle, retry back-off)."""
    old_key: str | None = None
    new_key: str | None = None
    reason: str | None = None
    """An emergency's reason, or why a rotation failed."""
    emergency: bool = False
    """The rotation is an emergency (never inferred from `reason`: an enrollment has a reason too)."""
    actor: str | None = None
    """Who ran it: user@host pid N, or a function's ARN."""
    subject: str | None = None
    """What an observation is about: an orphan key's id, or an alert's name (`bluum_5xx`, `bluum_429`, `stuck`)."""
    at: float = field(default_factory=time.time)


Subscriber = Callable[[RotationEvent], None]


class EventBus:
    """Hands each event to every subscriber, in subscription order, from any thread.

    A subscriber that raises is logged and skipped: a full disk under the history file must not stop a rotation
    half-way (the rotation record, not the history, is what `resume` relies on).
    """

    def __init__(self, *subscribers: Subscriber) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def publish(self, event: RotationEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception(
                    "an event subscriber failed; the rotation goes on",
                    extra={"fields": {"credential": event.credential, "step": event.step}},
                )


def log_event(event: RotationEvent) -> None:
    """The log subscriber: one info record per event, its facts as structured fields."""
    fields = {
        "credential": event.credential,
        "step": event.step,
        "event": event.kind.value,
        "token": event.token[:8] if event.token else None,
        "seconds": None if event.seconds is None else round(event.seconds, 3),
        "old_key": event.old_key,
        "new_key": event.new_key,
    }
    log.info(event.message, extra={"fields": {k: v for k, v in fields.items() if v is not None}})
