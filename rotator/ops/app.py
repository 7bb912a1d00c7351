"""One assembly for every way in: a rotation service and what listens to its bus.

The command line (each command, `run-due`, the daemon at start and at every reload of rotator.toml) and the Lambda
(one service per managed secret and call) all get their service here, so they cannot drift apart: the same
subscribers in the same order (the log; the caller's own, e.g. the terminal's step lines; the history; the
notification sinks), and the same closing. `RotationService` builds none of them: it runs commands, and an event it
publishes reaches whoever was subscribed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rotator.core.events import EventBus, Subscriber, log_event
from rotator.notify.history import HistoryLog
from rotator.notify.sinks import build_sink
from rotator.notify.webhook import QueuedSink, Webhook
from rotator.rotation.service import RotationService

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.bluum.client import BluumClient
    from rotator.config.loader import Config

__all__ = ["App", "assemble"]


class App:
    """A rotation service with its history and notification sinks; closing it closes all of them."""

    def __init__(self, service: RotationService, history: HistoryLog, sinks: list[QueuedSink]) -> None:
        self.service = service
        self.history = history
        self.sinks = sinks
        """Where notifications go (`[notifications.NAME]`): webhooks and SNS topics, each with its own thread."""

    @property
    def config(self) -> Config:
        return self.service.config

    @property
    def webhooks(self) -> list[Webhook]:
        """The sinks that are webhooks."""
        return [sink for sink in self.sinks if isinstance(sink, Webhook)]

    def close(self) -> None:
        """Deliver what the sinks still hold (each waits a bounded time), then close the service's clients and
        stores: the order the service used when it owned its sinks, so a last notification is not cut short."""
        try:
            for sink in self.sinks:
                sink.close()
        finally:
            self.service.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assemble(
    config: Config,
    *,
    echo: Subscriber | None = None,
    stores: Mapping[str, SecretStore] | None = None,
    clients: Mapping[str, BluumClient] | None = None,
    owner: str | None = None,
) -> App:
    """The service for `config` and its bus: the log first, then `echo` (the terminal's step lines; None when
    quiet or unattended), the history (`[history]`), then each `[notifications.NAME]` sink.

    `stores`, `clients`: handles the caller made itself (the Lambda's AWS stores); `owner`: the runner's name in
    leases and history (default: user@host).
    """
    bus = EventBus(log_event) if echo is None else EventBus(log_event, echo)
    history = HistoryLog(config.history.dir, keep=config.history.keep)
    service = RotationService(config, bus=bus, history=history, owner=owner, stores=stores, clients=clients)
    bus.subscribe(history)
    sinks: list[QueuedSink] = []
    try:
        for settings in config.notifications:
            sinks.append(build_sink(settings))
            bus.subscribe(sinks[-1])
    except BaseException:
        App(service, history, sinks).close()
        raise
    return App(service, history, sinks)
