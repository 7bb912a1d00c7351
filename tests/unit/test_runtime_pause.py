"""Runtime.pause: the wait a consumer poll makes between rounds. It must go through the injected sleep (so a test's
fake clock sees it and `waited` counts it) and end early when the process is asked to stop (a wait of minutes must not
hold up a stop request). `stopping.wait`, which the gate used before, spent real time whatever sleep was injected."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rotator.config.loader import parse_config
from rotator.rotation.runtime import Meter, Runtime

CONFIG = """
[stores.a]
type = "env"
path = "a.env"

[credentials.a]
environment = "sandbox"
issuer = "manual"
store = "a"
"""


def runtime(tmp_path: Path, **kwargs: object) -> Runtime:
    return Runtime(parse_config(CONFIG, base_dir=tmp_path, store_types=("env",)), **kwargs)  # type: ignore[arg-type]


def test_pause_sleeps_through_the_injected_sleep_and_is_counted(tmp_path: Path) -> None:
    slept: list[float] = []
    rt = runtime(tmp_path, sleep=slept.append)
    meter = Meter()
    started = time.monotonic()
    with rt.metering(meter):
        assert rt.pause(30.0) is False
    assert time.monotonic() - started < 1.0  # no real 30 s wait
    assert slept == [30.0]
    assert rt.waited == 30.0
    assert meter.waited == 30.0


def test_pause_says_stop_when_the_process_was_asked_to(tmp_path: Path) -> None:
    rt = runtime(tmp_path, sleep=lambda seconds: None)
    rt.stopping.set()
    assert rt.pause(5.0) is True


def test_with_the_real_sleep_a_stop_request_ends_the_pause_early(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    threading.Timer(0.1, rt.stopping.set).start()
    started = time.monotonic()
    assert rt.pause(30.0) is True
    assert time.monotonic() - started < 5.0
