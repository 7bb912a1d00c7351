"""Notifications: rotation events and tick findings go to sinks (a signed webhook, an SNS topic), never in the way.

Why a bus subscriber with its own thread: a rotation must never wait on, or fail because of, a chat server or AWS.
Each event a sink asked for is queued and the rotation goes on; a worker thread delivers in order, retrying with
backoff, and a delivery that still fails is logged and counted (`failed`, exported as
`bluum_rotator_notifications_failed_total`), nothing more. `close()` gives the queue a bounded time to drain when the
command ends. `QueuedSink` holds that pattern; `Webhook` here and `rotator.notify.sns.SnsTopic` only say how to send
one.

Webhook signature (so a receiver can tell the rotator from anyone who learnt its URL): headers `X-Rotator-Timestamp`
(Unix seconds) and `X-Rotator-Signature: sha256=<hex>`, the HMAC-SHA256, under the key in the environment variable the
table names, of `"<timestamp>.<body>"`. A receiver recomputes it, compares in constant time, and refuses old
timestamps. Payloads carry what events carry: credential names, key ids and labels, never a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from rotator.config.loader import WebhookSettings
from rotator.core.errors import ConfigError
from rotator.core.events import EventKind, RotationEvent

__all__ = ["QueuedSink", "Webhook", "payload", "sign", "topic_of"]

log = logging.getLogger("rotator.notify")

ATTEMPTS: Final = 4
"""Deliveries tried per event (waits of 0.5, 1, 2 s between them)."""
_TOPICS: Final = {
    EventKind.STARTED: "started",
    EventKind.RESUMED: "resumed",
    EventKind.COMPLETED: "completed",
    EventKind.ROLLED_BACK: "rolled_back",
    EventKind.STOPPED: "stopped",
    EventKind.WAITING: "waiting",
    EventKind.NEEDS_PERSON: "needs_person",
    EventKind.OVERDUE: "overdue",
    EventKind.ORPHAN: "orphan",
    EventKind.ALERT: "alert",
}
_MARKS: Final = {
    "emergency": ":rotating_light:",
    "alert": ":rotating_light:",
    "rolled_back": ":warning:",
    "overdue": ":warning:",
    "orphan": ":warning:",
    "needs_person": ":raising_hand:",
    "stopped": ":x:",
    "completed": ":key:",
}


def topic_of(event: RotationEvent) -> str | None:
    """What a sink calls the event, or None for what it is never told (steps, notes, progress).

    The start of an emergency rotation is `emergency`; a rotation waiting for a person to revoke the old key in the
    dashboard is `needs_person` (waiting out a grace window stays `waiting`).
    """
    topic = _TOPICS.get(event.kind)
    if topic == "started" and event.emergency:
        return "emergency"
    if topic == "waiting" and event.step == "revoke":
        return "needs_person"
    return topic


def payload(event: RotationEvent, topic: str, form: str) -> dict[str, Any]:
    """The body for `form` ("json": every fact of the event; "slack": one line a Slack incoming webhook shows)."""
    if form == "slack":
        who = f"*{event.credential}*: " if event.credential else ""
        return {"text": f"{_MARKS.get(topic, ':information_source:')} {who}{event.message}"}
    return {
        "event": topic,
        "credential": event.credential,
        "step": event.step,
        "message": event.message,
        "token": event.token,
        "old_key": event.old_key,
        "new_key": event.new_key,
        "subject": event.subject,
        "reason": event.reason,
        "actor": event.actor,
        "at": event.at,
    }


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`."""
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class QueuedSink:
    """A bus subscriber that delivers the events it asked for from a thread of its own, retried with backoff.

    A subclass says how to send one event (`send`: None when delivered, else a short reason for the log); this class
    queues, retries, counts (`delivered`, `failed`) and drains on `close`. `kind` and `name` label its metrics.
    """

    kind = "sink"

    def __init__(self, name: str, events: tuple[str, ...], *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.events = events
        self._sleep = sleep
        self._queue: queue.Queue[tuple[RotationEvent, str] | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._worker = threading.Thread(target=self._deliver_all, name=f"{self.kind}-{name}", daemon=True)
        self._worker.start()

    def send(self, event: RotationEvent, topic: str) -> str | None:
        """Deliver once; None when delivered, else why not (an HTTP status, an exception's class name)."""
        raise NotImplementedError

    def __call__(self, event: RotationEvent) -> None:
        """The bus subscriber: queue the event when the sink asked for it, and return at once."""
        topic = topic_of(event)
        if topic is not None and topic in self.events:
            self._queue.put((event, topic))

    def close(self, timeout: float = 10.0) -> None:
        """Let the queue drain for up to `timeout` seconds; what is left is logged as not delivered."""
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning(
                "%s %s: %d notification(s) not delivered before the command ended",
                self.kind,
                self.name,
                self._queue.qsize(),
                extra={"fields": {"sink": self.name}},
            )

    def _deliver_all(self) -> None:
        while (item := self._queue.get()) is not None:
            self._deliver(*item)

    def _deliver(self, event: RotationEvent, topic: str) -> None:
        problem: str | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                problem = self.send(event, topic)
            except Exception as exc:
                problem = type(exc).__name__
            if problem is None:
                self.delivered += 1
                return
            if attempt < ATTEMPTS:
                self._sleep(0.5 * 2 ** (attempt - 1))
        self.failed += 1
        log.warning(
            "%s %s: could not deliver %s of %s after %d attempts (%s); the rotation is not affected",
            self.kind,
            self.name,
            topic,
            event.credential or "the fleet",
            ATTEMPTS,
            problem,
            extra={"fields": {"sink": self.name, "event": topic, "credential": event.credential}},
        )


class Webhook(QueuedSink):
    """One `[notifications.NAME]` table as a bus subscriber. Built before a command runs; a missing key refuses."""

    kind = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        environ: Mapping[str, str] | None = None,
        post: Callable[[str, bytes, dict[str, str], float], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = (os.environ if environ is None else environ).get(settings.secret_env, "")
        if not key:
            # The variable is not named: a key pasted into secret_env instead of a name would be printed whole.
            raise ConfigError(
                f"notifications.{settings.name}: the environment variable that its secret_env names is not set (or "
                "empty); it holds the key webhook payloads are signed with. Fix: set that variable (the receiver "
                "checks the same key), or remove the table"
            )
        self.settings = settings
        self._key = key.encode()
        self._post = post or _post
        super().__init__(settings.name, settings.events, sleep=sleep)

    def send(self, event: RotationEvent, topic: str) -> str | None:
        body = json.dumps(payload(event, topic, self.settings.format), separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Rotator-Event": topic,
            "X-Rotator-Timestamp": str(timestamp),
            "X-Rotator-Signature": sign(self._key, timestamp, body),
        }
        status = self._post(self.settings.url, body, headers, self.settings.timeout.total_seconds())
        return None if 200 <= status < 300 else f"HTTP {status}"


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    import httpx  # only a command that has webhooks loads it here

    return httpx.post(url, content=body, headers=headers, timeout=timeout).status_code
