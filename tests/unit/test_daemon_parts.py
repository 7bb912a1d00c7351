"""The daemon's pure parts: its cadence flags, the staleness rule behind /healthz and the heartbeat, the listen address,
the per-tick summary; and one tick's resilience (an exception, a broken rotator.toml) without the loop, the signals or
any socket. The loop, the signals and the HTTP server run for real in tests/e2e/test_daemon.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rotator.config.loader import Config, parse_config
from rotator.core.errors import ConfigError, ExitCode
from rotator.core.events import EventKind, RotationEvent
from rotator.daemon.health import Beat, parse_listen, stale_after, verdict
from rotator.daemon.loop import Cadence, Daemon, parse_cadence, summarize
from rotator.ops.app import App, assemble
from rotator.rotation.driver import Outcome
from rotator.rotation.service import RotationService

# ----------------------------------------------------------------- cadence


def test_the_default_is_fifteen_minutes_with_a_tenth_of_it_as_jitter():
    assert parse_cadence("15m", None) == Cadence(every=900, jitter=90)


def test_jitter_can_be_given_or_turned_off():
    assert parse_cadence("1h", "5m") == Cadence(every=3600, jitter=300)
    assert parse_cadence("1s", None) == Cadence(every=1, jitter=0)
    assert parse_cadence("10m", "0s") == Cadence(every=600, jitter=0)


def test_a_jitter_longer_than_the_interval_is_refused_and_a_fraction_gets_advice_that_works():
    with pytest.raises(ConfigError, match=r"--jitter 2h: longer than --every 1h.*at most --jitter 1h"):
        parse_cadence("1h", "2h")
    with pytest.raises(ConfigError, match=r"write e.g. --every 1s"):
        parse_cadence("0.5s", None)


@pytest.mark.parametrize(
    ("every", "jitter", "says"),
    [
        ("0s", None, "at most once a second"),
        ("500ms", None, "whole seconds"),
        ("1.5s", None, "--every 2s"),
        ("15", None, "has no unit"),
        ("soon", None, "--every soon"),
        ("15m", "-1s", "--jitter -1s"),
        ("15m", "2.5s", "whole seconds"),
    ],
)
def test_bad_cadence_flags_name_the_flag_and_the_fix(every: str, jitter: str | None, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_cadence(every, jitter)
    assert says in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_a_cadence_describes_itself_for_the_start_line():
    assert Cadence(900, 90).describe() == "every 15m + up to 1m30s jitter"
    assert Cadence(1, 0).describe() == "every 1s"


# ----------------------------------------------------------------- staleness


def test_stale_after_is_two_intervals_with_jitter_plus_one_interval_of_slack_capped_at_five_minutes():
    assert stale_after(1, 0) == 3
    assert stale_after(60, 6) == 2 * 66 + 60
    assert stale_after(900, 90) == 2 * 990 + 300
    assert Cadence(900, 90).stale_after == stale_after(900, 90)


def test_a_beat_is_fresh_up_to_the_limit_and_stale_after_it():
    assert verdict(last_beat=100.0, now=103.0, limit=3.0).healthy
    found = verdict(last_beat=100.0, now=103.5, limit=3.0)
    assert not found.healthy
    assert (found.age, found.limit) == (3.5, 3.0)


def test_a_beat_from_the_future_counts_as_fresh():
    found = verdict(last_beat=200.0, now=100.0, limit=3.0)
    assert found.healthy
    assert found.age == 0.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_healthz_body_says_why_and_a_new_beat_makes_it_healthy_again():
    clock = FakeMonotonic()
    beat = Beat(limit=3.0, monotonic=clock)
    found, body = beat.report()
    assert found.healthy
    assert body["status"] == "ok"
    assert body["last_tick"] == "none yet"
    clock.now += 10
    found, body = beat.report()
    assert not found.healthy
    assert body["status"] == "stale"
    assert body["age_seconds"] == 10.0
    assert body["stale_after_seconds"] == 3.0
    beat.beat(ticks=4, last_tick="failed")
    found, body = beat.report()
    assert found.healthy
    assert body["ticks"] == 4
    assert body["last_tick"] == "failed"
    json.dumps(body)  # it is what /healthz sends


# ----------------------------------------------------------------- listen address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]):
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9464", "no port"),
        ("host:", "no port"),
        ("host:99999", "above 65535"),
        ("::1:9464", "brackets"),
        ("[x]:1", "IPv6"),
    ],
)
def test_bad_listen_addresses_say_how_to_write_one(text: str, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_listen(text)
    assert says in str(caught.value)
    assert "HOST:PORT" in str(caught.value)


# ----------------------------------------------------------------- the tick line


def test_a_tick_is_summed_up_by_exit_code():
    outcomes = [
        Outcome("a", ExitCode.OK, ""),
        Outcome("b", ExitCode.IN_PROGRESS, ""),
        Outcome("c", ExitCode.OK, ""),
        Outcome("d", ExitCode.INCOMPLETE, ""),
    ]
    assert summarize(outcomes) == "2 ok, 1 in_progress (3), 1 incomplete (4)"
    assert summarize([]) == "no credentials"


# ----------------------------------------------------------------- one tick, without the loop

CONFIG = """
[stores.app]
type = "env"
path = "app.env"

[credentials.{name}]
environment = "sandbox"
base_url = "http://127.0.0.1:9/v1"
issuer = "manual"
store = "app"
"""


class ScriptedDaemon(Daemon):
    """A daemon whose ticks do what the test says instead of rotating: raise, or return outcomes."""

    def __init__(self, tmp_path: Path, script: list[object], configs: list[Config | Exception]) -> None:
        self.script = script
        self.configs = configs
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.built: list[App] = []
        super().__init__(
            load=self._next_config,
            build=self._build_service,
            cadence=Cadence(1, 0),
            say=self.lines.append,
            warn=self.warnings.append,
            heartbeat_file=tmp_path / "heartbeat",
        )

    def _next_config(self) -> Config:
        found = self.configs.pop(0) if len(self.configs) > 1 else self.configs[0]
        if isinstance(found, Exception):
            raise found
        return found

    def _build_service(self, config: Config) -> App:
        app = assemble(config)
        self.built.append(app)
        return app

    def _run_tick(self, service: RotationService) -> list[Outcome]:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, list)
        return step


def config(tmp_path: Path, name: str = "trading") -> Config:
    return parse_config(CONFIG.format(name=name), base_dir=tmp_path)


def test_an_exception_in_a_tick_is_reported_alerted_once_and_the_next_tick_runs(tmp_path: Path):
    ok = [Outcome("trading", ExitCode.OK, "trading: not due")]
    daemon = ScriptedDaemon(
        tmp_path, [RuntimeError("boom"), RuntimeError("boom"), ok, RuntimeError("boom")], [config(tmp_path)]
    )
    daemon.open()
    events: list[RotationEvent] = []
    daemon.service.bus.subscribe(events.append)
    try:
        daemon.tick_once()
        assert daemon.warnings == [
            "error: tick 1 failed: unexpected RuntimeError (see the log); the next tick runs as scheduled"
        ]
        assert json.loads((tmp_path / "heartbeat").read_text())["last_tick"] == "failed", "a failed tick still beats"
        daemon.tick_once()  # failing again: no second alert
        daemon.tick_once()  # recovered
        daemon.tick_once()  # failing anew: alerted anew
    finally:
        daemon.close()
    alerts = [(e.kind, e.subject, e.message) for e in events if e.kind is EventKind.ALERT]
    assert alerts == [
        (
            EventKind.ALERT,
            "daemon_tick_failed",
            f"daemon tick {n} failed: unexpected RuntimeError (see the log); the next tick runs as scheduled",
        )
        for n in (1, 4)
    ]
    assert json.loads((tmp_path / "heartbeat").read_text())["ticks"] == 4
    samples = {s.name + str(s.labels): s.value for m in daemon.telemetry.registry.collect() for s in m.samples}
    assert samples["bluum_rotator_daemon_ticks_total{'result': 'failed'}"] == 3
    assert samples["bluum_rotator_daemon_ticks_total{'result': 'ok'}"] == 1
    assert samples["bluum_rotator_last_run_exit_code{'credential': 'trading'}"] == 0


def test_a_broken_edit_keeps_the_last_good_configuration_and_a_good_one_is_taken(tmp_path: Path):
    first = config(tmp_path)
    broken = ConfigError("rotator.toml: line 3: expected ']'")
    renamed = config(tmp_path, name="payments")
    outcome = [Outcome("x", ExitCode.OK, "")]
    daemon = ScriptedDaemon(tmp_path, [outcome, outcome, outcome], [first, broken, renamed])
    daemon.open()
    events: list[RotationEvent] = []
    daemon.service.bus.subscribe(events.append)
    try:
        daemon.tick_once()  # the broken file: the tick runs on the first configuration
        assert daemon.config is first
        assert len(daemon.built) == 1
        assert "keeps running on the configuration it read at" in daemon.warnings[0]
        assert "expected ']'" in daemon.warnings[0]
        assert [(e.kind, e.subject) for e in events] == [(EventKind.ALERT, "config_reload_failed")]
        daemon.tick_once()  # fixed, and changed: a new service for it
        assert daemon.config is renamed
        assert len(daemon.built) == 2
        assert daemon.app is daemon.built[1]
        assert "configuration changed: now 1 credential(s)" in daemon.lines
        daemon.tick_once()  # unchanged: the same service goes on
        assert len(daemon.built) == 2
    finally:
        daemon.close()
    samples = {s.name: s.value for m in daemon.telemetry.registry.collect() for s in m.samples}
    assert samples["bluum_rotator_daemon_config_reload_failures_total"] == 1
