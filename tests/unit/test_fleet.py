"""The fleet's lanes: how many credentials run at once, per paying key and over all, in threads (no I/O)."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from rotator.config.loader import MINIMAL_EXAMPLE, ConfigProblems, FleetSettings, parse_config
from rotator.core.errors import ConfigError, ExitCode
from rotator.ops.fleet import FleetProgress, payer, run_each
from rotator.rotation.driver import Outcome


def fake_service(managers: dict[str, str | None], *, concurrency: int, per_payer: int) -> Any:
    """What run_each reads of a RotationService: the configuration's fleet table and credentials, the stop event."""
    creds = {name: SimpleNamespace(name=name, manager=manager) for name, manager in managers.items()}
    config = SimpleNamespace(fleet=FleetSettings(concurrency, per_payer), credential=creds.__getitem__)
    return SimpleNamespace(config=config, runtime=SimpleNamespace(stopping=threading.Event()))


class Recorder:
    """An action that records how many run at once, over all and per payer, and holds each one a moment."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.most_total = 0

    def __call__(self, name: str) -> Outcome:
        group = payer(self.service.config.credential(name))
        with self.lock:
            self.running[group] += 1
            self.most[group] = max(self.most[group], self.running[group])
            self.most_total = max(self.most_total, sum(self.running.values()))
        time.sleep(0.02)
        with self.lock:
            self.running[group] -= 1
        return Outcome(name, ExitCode.OK, f"{name}: done")


def test_no_paying_key_has_more_than_its_lane_width_in_flight() -> None:
    managers: dict[str, str | None] = {f"a{n}": "tenant-a" for n in range(12)}
    managers |= {f"b{n}": "tenant-b" for n in range(4)}
    service = fake_service(managers, concurrency=8, per_payer=3)
    action = Recorder(service)
    outcomes = run_each(cast(Any, service), list(managers), action)
    assert [o.credential for o in outcomes] == list(managers)
    assert action.most["tenant-a"] == 3
    assert action.most["tenant-b"] == 3  # the small group is not starved by the big one
    assert action.most_total <= 6


def test_the_overall_limit_caps_many_small_groups() -> None:
    managers: dict[str, str | None] = {f"m{n}": None for n in range(10)}  # manual: each pays for itself
    service = fake_service(managers, concurrency=4, per_payer=3)
    action = Recorder(service)
    run_each(cast(Any, service), list(managers), action)
    assert 1 < action.most_total <= 4


def test_an_error_is_that_credentials_outcome_and_the_others_go_on() -> None:
    managers: dict[str, str | None] = {"good": "t", "bad": "t", "bug": "t", "also-good": "t"}
    service = fake_service(managers, concurrency=4, per_payer=4)

    def action(name: str) -> Outcome:
        if name == "bad":
            raise ConfigError("bad: something to fix")
        if name == "bug":
            raise KeyError("a bug")
        return Outcome(name, ExitCode.OK, "ok")

    outcomes = {o.credential: o for o in run_each(cast(Any, service), list(managers), action)}
    assert outcomes["good"].exit_code is ExitCode.OK
    assert outcomes["also-good"].exit_code is ExitCode.OK
    assert outcomes["bad"].exit_code is ExitCode.BAD_INPUT
    assert outcomes["bad"].message == "error: bad: something to fix"
    assert outcomes["bug"].exit_code is ExitCode.INCOMPLETE
    assert "rotator resume bug" in outcomes["bug"].message


def test_nothing_new_starts_once_stopping_is_set() -> None:
    managers: dict[str, str | None] = {f"c{n}": "t" for n in range(6)}
    service = fake_service(managers, concurrency=2, per_payer=2)
    ran: list[str] = []

    def action(name: str) -> Outcome:
        ran.append(name)
        service.runtime.stopping.set()  # a SIGTERM while the first ones run
        return Outcome(name, ExitCode.OK, "ok")

    outcomes = run_each(cast(Any, service), list(managers), action)
    assert 1 <= len(ran) <= 2
    skipped = [o for o in outcomes if o.credential not in ran]
    assert skipped
    assert all(o.exit_code is ExitCode.INCOMPLETE and "not started" in o.message for o in skipped)


def test_one_credential_or_a_width_of_one_runs_in_the_calling_thread() -> None:
    service = fake_service({"only": None}, concurrency=8, per_payer=8)
    threads: list[str] = []

    def action(name: str) -> Outcome:
        threads.append(threading.current_thread().name)
        return Outcome(name, ExitCode.OK, "ok")

    run_each(cast(Any, service), ["only"], action)
    assert threads == [threading.current_thread().name]


MINIMAL = textwrap.dedent(MINIMAL_EXAMPLE) + "\n"
"""The smallest valid rotator.toml (the one error messages show)."""


def test_the_fleet_table_is_optional_and_validated(tmp_path: Path) -> None:
    assert parse_config(MINIMAL, base_dir=tmp_path).fleet == FleetSettings(16, 12)
    good = parse_config(MINIMAL + "[fleet]\nconcurrency = 4\nper_payer = 2\n", base_dir=tmp_path)
    assert good.fleet == FleetSettings(4, 2)
    with pytest.raises(ConfigProblems) as bad:
        parse_config(MINIMAL + '[fleet]\nconcurrency = 0\nper_payer = "8"\nworkers = 3\n', base_dir=tmp_path)
    text = str(bad.value)
    assert "fleet.concurrency: must be from 1 to 256, got 0. Fix: write concurrency = 16" in text
    assert "fleet.per_payer: expected an integer, got a string of 1 character. Fix: write per_payer = 12" in text
    assert "fleet: unknown key 'workers'" in text


def test_fleet_progress_says_how_far_at_most_every_ten_seconds() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = FleetProgress(100, lines.append, every=10.0, clock=lambda: now[0])
    for n in range(30):
        now[0] = n * 0.5  # two outcomes a second
        progress(Outcome(f"c{n}", ExitCode.OK if n % 10 else ExitCode.ROLLED_BACK, "m"))
    assert lines == [
        "  fleet: 21 of 100 done (18 ok, 3 not), 2.1/s, about 38s left",
    ]
    for n in range(30, 100):
        progress(Outcome(f"c{n}", ExitCode.OK, "m"))
    assert len(lines) == 1  # no line for the last one: the outcomes themselves follow
