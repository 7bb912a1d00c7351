"""One scheduler tick's shared reloads: an application that reads the keys of several credentials (one service, one
`systemctl restart` named by each of their stores) is reloaded once per tick, after all of them were promoted.

How, without a step outside the per-credential state machine: the tick runs in two passes (rotator/ops/tick.py).
In the first, a credential whose reload actions are shared with another credential stops where its reload would
run: at DEPLOYED, its new key CURRENT in every target and the old key still active, as after a failed reload, and
the time that was seen is noted here (`defer`). In the second, those credentials are resumed; the first to reach an
action runs it, and each of the others skips an identical action (same command and folder, or same URL and method:
`reload.action_id`) whose run succeeded and STARTED after this credential's new key was in place, since the
application it reloaded then read this credential's new key too (`reload_retry.run_stands_for`). A run that started
earlier loaded the old key: such a credential runs the action itself. Identical actions never run at once (one lock
each), so a credential reaching one while it runs waits for its result.

Why this is safe: every credential still passes DEPLOYED -> RELOADED -> confirm through its own driver, under its own
lease; a skipped action counts as done for its key in its own record. Nothing is revoked in between (the grace
window starts at confirm). If the process dies between the passes, the next tick (or `resume`) finds DEPLOYED and
reloads. What is kept is in this process only and for this tick only; a promote in another process is never known
here, so its credential runs its actions itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from rotator.rules.reload_retry import run_stands_for

__all__ = ["ReloadTick", "Run", "sharing"]

WAIT_SLICE = 5.0
"""Seconds between two renewals (when due) of a rotation's lease while it waits for an identical action to end."""


@dataclass(frozen=True, slots=True)
class Run:
    """A run of one reload action in this tick: when it started (monotonic), whether it succeeded, for whom."""

    started: float
    ok: bool
    credential: str


class ReloadTick:
    """What one tick knows about its reloads. Safe in threads (the fleet's workers share it)."""

    def __init__(self, monotonic: Callable[[], float], defer: Collection[str]) -> None:
        self._monotonic = monotonic
        self._defer = set(defer)
        self._lock = threading.Lock()
        self._promoted: dict[tuple[str, str], float] = {}
        self._runs: dict[str, Run] = {}
        self._running: dict[str, threading.Lock] = {}
        self.deferred: set[str] = set()
        """Credentials stopped before their reload in the first pass: the second pass resumes them."""

    def defers(self, credential: str) -> bool:
        """Whether `credential`'s reload waits for the second pass."""
        with self._lock:
            return credential in self._defer

    def defer(self, credential: str, token: str) -> None:
        """`credential`'s rotation `token` is at DEPLOYED now (its new key in place): note when, and that it waits."""
        with self._lock:
            self._promoted.setdefault((credential, token), self._monotonic())
            self.deferred.add(credential)

    def second_pass(self) -> None:
        """From now on nothing is deferred: the reloads run."""
        with self._lock:
            self._defer.clear()

    def continues(self, credential: str, token: str) -> bool:
        """Whether `credential`'s rotation `token` was deferred in this tick (its resume is this tick's own doing)."""
        with self._lock:
            return (credential, token) in self._promoted

    @contextmanager
    def running(self, action: str, keepalive: Callable[[], None]) -> Iterator[None]:
        """Hold the action `action` (an `action_id`) while it is decided on and run: identical actions never overlap.
        While another credential's run is waited for, `keepalive` (the waiting rotation's lease) is called every
        WAIT_SLICE seconds: that run may take its whole timeout, up to 10 minutes."""
        with self._lock:
            lock = self._running.setdefault(action, threading.Lock())
        while not lock.acquire(timeout=WAIT_SLICE):
            keepalive()
        try:
            yield
        finally:
            lock.release()

    def stands_in(self, action: str, credential: str, token: str) -> Run | None:
        """The run of `action` in this tick that reloaded `credential`'s new key (rotation `token`), if there is one."""
        with self._lock:
            run = self._runs.get(action)
            promoted = self._promoted.get((credential, token))
        if run is None or not run_stands_for(ran_ok=run.ok, started=run.started, promoted=promoted):
            return None
        return run

    def started(self) -> float:
        return self._monotonic()

    def ran(self, action: str, run: Run) -> None:
        with self._lock:
            self._runs[action] = run


class Holder(Protocol):
    """Where the reload step finds the tick: the runtime (rotator/rotation/runtime.py)."""

    reload_tick: ReloadTick | None
    monotonic: Callable[[], float]


@contextmanager
def sharing(runtime: Holder, defer: Collection[str]) -> Iterator[ReloadTick]:
    """The tick's `ReloadTick` on `runtime` for the block (the reload step finds it there)."""
    tick = ReloadTick(runtime.monotonic, defer)
    runtime.reload_tick = tick
    try:
        yield tick
    finally:
        runtime.reload_tick = None
