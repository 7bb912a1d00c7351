"""Many credentials at once: `rotate --all`, `run-due`, `resume` and the daemon's tick run their rotations in threads,
grouped by the key that pays for them.

Why threads: a rotation spends most of its time waiting (for a new key to propagate, for the rate budget, for a
store), so one process can keep many in flight. Why grouped by payer: the tenant (manager) key that mints and revokes
the investor keys of a group has one rate budget (25 requests/s in production), shared by every rotation it serves;
the throttle paces each key process-wide, and the lanes here keep enough rotations of each group in flight to use
that budget, and no more, so one big group cannot take every worker from the others.

An error in one credential becomes that credential's outcome and the others go on. When the runtime is asked to stop
(the daemon's SIGTERM), no credential is started any more, and those in hand stop after the step they are on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rotator.core.durations import format_duration
from rotator.core.errors import ExitCode, RotatorError
from rotator.rotation.driver import Outcome

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.rotation.service import RotationService

__all__ = ["FleetProgress", "payer", "run_each"]

log = logging.getLogger("rotator.fleet")

Action = Callable[[str], Outcome]


def payer(cred: CredentialConfig) -> str:
    """Whose rate budget a rotation of `cred` spends most: its manager's key (mint, list, revoke), else its own."""
    return cred.manager or cred.name


class _Lanes:
    """Hands out credentials so that no group has more than `per_group` in flight; groups take turns."""

    def __init__(self, groups: dict[str, deque[int]], per_group: int) -> None:
        self._groups = groups
        self._running = dict.fromkeys(groups, 0)
        self._per_group = per_group
        self._order = deque(groups)
        self._cond = threading.Condition()

    def take(self, stopping: threading.Event) -> tuple[str, int] | None:
        """The next (group, index) to run, waiting while every group with work is at its limit; None when done."""
        with self._cond:
            while True:
                if stopping.is_set() or not any(self._groups.values()):
                    return None
                for _ in range(len(self._order)):
                    group = self._order[0]
                    self._order.rotate(-1)
                    if self._groups[group] and self._running[group] < self._per_group:
                        self._running[group] += 1
                        return group, self._groups[group].popleft()
                self._cond.wait(0.5)

    def done(self, group: str) -> None:
        with self._cond:
            self._running[group] -= 1
            self._cond.notify_all()


def _guarded(name: str, action: Action) -> Outcome:
    """One credential's action; its error becomes its outcome so the others go on."""
    try:
        return action(name)
    except RotatorError as exc:
        return Outcome(name, exc.exit_code, f"error: {exc}")
    except Exception as exc:  # a bug must not take the other credentials of the tick down with it
        log.exception("unexpected error", extra={"fields": {"credential": name}})
        return Outcome(
            name,
            ExitCode.INCOMPLETE,
            f"error: {name}: unexpected {type(exc).__name__} (see the log); run `rotator resume {name}` to finish "
            "whatever it left, and report it",
        )


class FleetProgress:
    """Counts outcomes as they arrive and says, at most every `every` seconds, how far the fleet is: for the person
    watching a thousand rotations go by (the step lines say what each does; this says how much is left)."""

    def __init__(
        self,
        total: int,
        say: Callable[[str], None],
        *,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._say, self._every, self._clock = total, say, every, clock
        self._started = self._last = clock()
        self._done = self._not_ok = 0
        self._lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        with self._lock:
            self._done += 1
            self._not_ok += outcome.exit_code != ExitCode.OK
            now = self._clock()
            if self._done >= self._total or now - self._last < self._every:
                return
            self._last = now
            line = self.line(now)
        self._say(line)

    def line(self, now: float) -> str:
        done, left = self._done, self._total - self._done
        rate = done / max(now - self._started, 1e-9)
        eta = f", about {format_duration(round(left / rate))} left" if rate > 0 else ""
        return (
            f"  fleet: {done} of {self._total} done ({done - self._not_ok} ok, {self._not_ok} not), {rate:.1f}/s{eta}"
        )


def run_each(
    service: RotationService,
    names: Sequence[str],
    action: Action,
    *,
    concurrency: int | None = None,
    per_payer: int | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run `action` for every name, concurrently within the limits; the outcomes come back in `names`' order.

    A name not reached because the runtime was asked to stop gets an outcome that says so (exit 4: resume it).
    `on_done` hears of each outcome as it comes (from the thread that made it; `FleetProgress`).
    """
    fleet = service.config.fleet
    total = max(1, concurrency or fleet.concurrency)
    lane_width = max(1, per_payer or fleet.per_payer)
    outcomes: list[Outcome | None] = [None] * len(names)
    groups: dict[str, deque[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(payer(service.config.credential(name)), deque()).append(index)
    stopping = service.runtime.stopping
    if total == 1 or len(names) <= 1:
        for index, name in enumerate(names):
            if not stopping.is_set():
                outcomes[index] = _run_one(name, action, on_done)
        return _filled(names, outcomes)
    lanes = _Lanes(groups, lane_width)

    def work() -> None:
        while (taken := lanes.take(stopping)) is not None:
            group, index = taken
            try:
                outcomes[index] = _run_one(names[index], action, on_done)
            finally:
                lanes.done(group)

    workers = [
        threading.Thread(target=work, name=f"rotator-fleet-{n}", daemon=True) for n in range(min(total, len(names)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return _filled(names, outcomes)


def _run_one(name: str, action: Action, on_done: Callable[[Outcome], None] | None) -> Outcome:
    """One name's action, guarded once; `on_done` hears of its outcome, and a report that fails costs nothing."""
    outcome = _guarded(name, action)
    if on_done is not None:
        try:
            on_done(outcome)
        except Exception:  # a progress line must never cost a rotation its outcome
            log.exception("progress report failed", extra={"fields": {"credential": name}})
    return outcome


def _filled(names: Sequence[str], outcomes: list[Outcome | None]) -> list[Outcome]:
    return [
        outcome
        if outcome is not None
        else Outcome(name, ExitCode.INCOMPLETE, f"{name}: not started: the run was asked to stop; the next run does it")
        for name, outcome in zip(names, outcomes, strict=True)
    ]
