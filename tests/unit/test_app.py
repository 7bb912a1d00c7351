"""rotator.ops.app: the one assembly of a service and its bus, for the command line, the daemon and the Lambda.

The service alone keeps no history and sends no notification: what listens to its bus is the app's doing, in one
order (the log, the caller's echo, the history, the sinks), and the app closes what it made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rotator.config.loader import parse_config
from rotator.core.events import EventKind, RotationEvent
from rotator.notify.history import HistoryLog
from rotator.ops.app import App, assemble
from rotator.rotation.service import RotationService
from tests.unit.test_daemon_parts import CONFIG

NOW = 1_800_000_000.0


def started(message: str = "rotation 12345678 of trading started") -> RotationEvent:
    return RotationEvent(EventKind.STARTED, "trading", "start", message, token="1" * 32, at=NOW)


def test_the_app_subscribes_the_echo_then_the_history_and_the_service_only_checks_it(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(name="trading"), base_dir=tmp_path)
    heard: list[str] = []

    def echo(event: RotationEvent) -> None:
        history = config.history.dir / "trading.jsonl"
        heard.append(f"echo (history written: {history.exists()})")

    with assemble(config, echo=echo) as app:
        assert app.service.history is app.history
        assert app.sinks == [], "no [notifications] table: no sink"
        app.service.bus.publish(started())
    assert heard == ["echo (history written: False)"], "the echo hears an event before the history keeps it"
    (line,) = (config.history.dir / "trading.jsonl").read_text().splitlines()
    assert json.loads(line)["event"] == "started"


def test_a_service_alone_keeps_no_history(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(name="trading"), base_dir=tmp_path)
    with RotationService(config) as service:
        assert service.history is None
        assert not hasattr(service, "sinks")
        service.bus.publish(started())
    assert not config.history.dir.exists()


class FakeSink:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(f"sink {self.name} closed")


def test_closing_the_app_delivers_the_sinks_then_closes_the_service(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(name="trading"), base_dir=tmp_path)
    closed: list[str] = []
    service = RotationService(config)
    original = service.close

    def close_service() -> None:
        closed.append("service closed")
        original()

    service.close = close_service  # type: ignore[method-assign]
    history = HistoryLog(config.history.dir, keep=config.history.keep)
    sinks: list[Any] = [FakeSink(closed, "a"), FakeSink(closed, "b")]
    app = App(service, history, sinks)
    app.close()
    assert closed == ["sink a closed", "sink b closed", "service closed"]
