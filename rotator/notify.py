"""Webhook notifications: rotation events POSTed as JSON (or a Slack message), signed, retried, never in the way.

Why a bus subscriber with its own thread: a rotation must never wait on, or fail because of, a chat server. Each
event the webhook asked for is queued and the rotation goes on; a worker thread delivers in order, retrying with
backoff, and a delivery that still fails is logged and counted (`failed`), nothing more. `close()` gives the queue a
bounded time to drain when the command ends.

Signature (so a receiver can tell the rotator from anyone who learnt its URL): headers `X-Rotator-Timestamp` (Unix
seconds) and `X-Rotator-Signature: sha256=<hex>`, the HMAC-SHA256, under the key in the environment variable the
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

from rotator.config import WebhookSettings
from rotator.errors import ConfigError
from rotator.events import EventKind, RotationEvent

__all__ = ["Webhook", "payload", "sign", "topic_of"]

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
}


def topic_of(event: RotationEvent) -> str | None:
    """What a webhook calls the event (`emergency` for the start of one), or None for what it is never told."""
    topic = _TOPICS.get(event.kind)
    if topic == "started" and event.reason:
        return "emergency"
    return topic


def payload(event: RotationEvent, topic: str, form: str) -> dict[str, Any]:
    """The body for `form` ("json": every fact of the event; "slack": one line a Slack incoming webhook shows)."""
    if form == "slack":
        marks = {"emergency": ":rotating_light:", "rolled_back": ":warning:", "stopped": ":x:", "completed": ":key:"}
        return {"text": f"{marks.get(topic, ':information_source:')} *{event.credential}*: {event.message}"}
    return {
        "event": topic,
        "credential": event.credential,
        "step": event.step,
        "message": event.message,
        "token": event.token,
        "old_key": event.old_key,
        "new_key": event.new_key,
        "reason": event.reason,
        "actor": event.actor,
        "at": event.at,
    }


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`."""
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Webhook:
    """One `[notifications.NAME]` table as a bus subscriber. Built before a command runs; a missing key refuses."""

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
            raise ConfigError(
                f"notifications.{settings.name}: the environment variable {settings.secret_env} is not set; it holds "
                "the key webhook payloads are signed with. Set it (the receiver checks the same key), or remove the "
                "table"
            )
        self.settings = settings
        self._key = key.encode()
        self._post = post or _post
        self._sleep = sleep
        self._queue: queue.Queue[tuple[RotationEvent, str] | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._worker = threading.Thread(target=self._deliver_all, name=f"webhook-{settings.name}", daemon=True)
        self._worker.start()

    def __call__(self, event: RotationEvent) -> None:
        """The bus subscriber: queue the event when the webhook asked for it, and return at once."""
        topic = topic_of(event)
        if topic is not None and topic in self.settings.events:
            self._queue.put((event, topic))

    def close(self, timeout: float = 10.0) -> None:
        """Let the queue drain for up to `timeout` seconds; what is left is logged as not delivered."""
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.warning(
                "webhook %s: %d notification(s) not delivered before the command ended",
                self.settings.name,
                self._queue.qsize(),
                extra={"fields": {"webhook": self.settings.name}},
            )

    def _deliver_all(self) -> None:
        while (item := self._queue.get()) is not None:
            self._deliver(*item)

    def _deliver(self, event: RotationEvent, topic: str) -> None:
        body = json.dumps(payload(event, topic, self.settings.format), separators=(",", ":")).encode()
        for attempt in range(1, ATTEMPTS + 1):
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Rotator-Event": topic,
                "X-Rotator-Timestamp": str(timestamp),
                "X-Rotator-Signature": sign(self._key, timestamp, body),
            }
            try:
                status = self._post(self.settings.url, body, headers, self.settings.timeout.total_seconds())
                problem = None if 200 <= status < 300 else f"HTTP {status}"
            except Exception as exc:
                problem = type(exc).__name__
            if problem is None:
                self.delivered += 1
                return
            if attempt < ATTEMPTS:
                self._sleep(0.5 * 2 ** (attempt - 1))
        self.failed += 1
        log.warning(
            "webhook %s: could not deliver %s of %s after %d attempts (%s); the rotation is not affected",
            self.settings.name,
            topic,
            event.credential,
            ATTEMPTS,
            problem,
            extra={"fields": {"webhook": self.settings.name, "event": topic, "credential": event.credential}},
        )


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    import httpx  # only a command that has webhooks loads it here

    return httpx.post(url, content=body, headers=headers, timeout=timeout).status_code
