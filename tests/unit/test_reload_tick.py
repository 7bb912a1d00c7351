"""rotator/rotation/reload_tick.py: what one tick knows of its reloads. A run stands for a credential only if it
succeeded and started after that credential's new key was noted in place; identical actions never run at once, and
a rotation waiting for one keeps its lease alive."""

from __future__ import annotations

import threading
import time

from rotator.rotation import reload_tick
from rotator.rotation.reload_tick import ReloadTick, Run


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_run_counts_only_for_credentials_whose_key_was_in_place_before_it_started():
    tick = ReloadTick(Ticking(), defer={"a", "b"})
    early = tick.started()
    tick.defer("b", "token-b")
    tick.ran("restart", Run(early, True, "a"))
    assert tick.stands_in("restart", "b", "token-b") is None, "it started before b's key was in place"
    late = tick.started()
    tick.ran("restart", Run(late, True, "a"))
    assert tick.stands_in("restart", "b", "token-b") == Run(late, True, "a")
    assert tick.stands_in("restart", "b", "another-token") is None, "another rotation of b: not known here"
    assert tick.stands_in("restart", "c", "token-c") is None, "promoted elsewhere: runs its own"
    tick.ran("restart", Run(tick.started(), False, "a"))
    assert tick.stands_in("restart", "b", "token-b") is None, "a failed run stands for nobody"


def test_deferral_ends_with_the_second_pass_and_the_deferred_are_known():
    tick = ReloadTick(Ticking(), defer={"a"})
    assert tick.defers("a")
    assert not tick.defers("b")
    tick.defer("a", "t")
    assert tick.deferred == {"a"}
    assert tick.continues("a", "t")
    tick.second_pass()
    assert not tick.defers("a")


def test_identical_actions_wait_for_each_other_and_the_waiter_keeps_its_lease(monkeypatch):
    monkeypatch.setattr(reload_tick, "WAIT_SLICE", 0.05)
    tick = ReloadTick(time.monotonic, defer=())
    inside = threading.Event()
    leave = threading.Event()
    order: list[str] = []

    def first() -> None:
        with tick.running("restart", lambda: None):
            order.append("first in")
            inside.set()
            leave.wait(5)
            order.append("first out")

    worker = threading.Thread(target=first)
    worker.start()
    inside.wait(5)
    renewals: list[float] = []

    def keepalive() -> None:
        renewals.append(time.monotonic())
        if len(renewals) == 3:
            leave.set()

    with tick.running("restart", keepalive):
        order.append("second in")
    worker.join(5)
    assert order == ["first in", "first out", "second in"]
    assert len(renewals) >= 3
