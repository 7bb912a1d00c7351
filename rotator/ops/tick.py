"""The scheduler tick, one for cron's `rotator run-due` and the daemon: fleet -> status -> alerts -> telemetry.

1. fleet: every credential's `run_due`, several at once (`rotator.ops.fleet`): resume what is unfinished, revoke
   what waited out its grace window, rotate what is due;
2. status: each credential's row, read after the fleet so it shows what the tick left;
3. alerts: the rows and the tick's Bluum answers (5xx, 429, counted while the fleet and the status ran) judged
   by `rotator.ops.alerts`, and what is new or due for a reminder announced on the bus (so every notification
   sink hears of it); a read-only sweep every `[alerts] sweep_every`;
4. telemetry: what the tick found and did handed to a recorder (the daemon's and `run-due --metrics-textfile`'s
   Prometheus metrics), which only records: it calls nobody, Bluum least of all.

Why in one place: the daemon and `run-due` ran the same tick with their own copies of steps 2 to 4, and alerts
depended on telemetry being attached. The Lambda's tick is another shape (one service per managed secret, resume
and sweep, Secrets Manager's own schedule) and shares the parts that are the same: `alerts.counting` and
`alerts.overdue`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from rotator.ops.alerts import Finding, TickWatch, counting
from rotator.ops.fleet import run_each
from rotator.ops.lanes import lanes_for_tick

if TYPE_CHECKING:
    from rotator.rotation.driver import Outcome
    from rotator.rotation.service import RotationService
    from rotator.rotation.status import CredentialStatus

__all__ = ["TickRecorder", "run_due_each", "run_tick"]


class TickRecorder(Protocol):
    """What the tick hands its findings to (rotator.daemon.metrics.Telemetry): records, never acts."""

    def observe_tick(
        self,
        statuses: Sequence[CredentialStatus],
        outcomes: Sequence[Outcome],
        found: Sequence[Finding],
        *,
        now: float,
    ) -> None: ...


def run_due_each(
    service: RotationService, *, concurrency: int | None = None, on_done: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """The fleet step: `run_due` for every credential, concurrently within the fleet's limits.

    Credentials whose reload actions are shared (one application reads the keys of several) go in two passes, so
    that each shared action runs once, after all of them were promoted (rotator/rotation/reload_tick.py): the first
    pass stops them before their reload, the second resumes them. With `[fleet] lanes`, each paying key's credentials
    run only under its lane (rotator/ops/lanes.py); the others say who holds it."""
    from rotator.rotation.reload import shared_reloads
    from rotator.rotation.reload_tick import sharing

    names = list(service.config.credentials)
    with lanes_for_tick(service, names) as lanes:
        run_due = service.run_due if lanes is None else lanes.guarded(service.run_due)
        shared = shared_reloads(service.config)
        if not shared:
            return run_each(service, names, run_due, concurrency=concurrency, on_done=on_done)
        with sharing(service.runtime, shared) as tick:

            def first_heard(outcome: Outcome) -> None:
                if on_done is not None and outcome.credential not in tick.deferred:
                    on_done(outcome)  # a deferred credential's outcome is the second pass's

            outcomes = run_each(service, names, run_due, concurrency=concurrency, on_done=first_heard)
            tick.second_pass()
            later = [name for name in names if name in tick.deferred]
            second = run_each(service, later, run_due, concurrency=concurrency, on_done=on_done)
    finished = {outcome.credential: outcome for outcome in second}
    return [finished.get(outcome.credential, outcome) for outcome in outcomes]


def run_tick(
    service: RotationService,
    *,
    telemetry: TickRecorder | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    fleet: Callable[[RotationService], list[Outcome]] | None = None,
) -> list[Outcome]:
    """One tick over every credential; returns each credential's outcome (the exit code is theirs).

    `on_done` hears of each outcome as it comes (the fleet's progress line); `fleet` replaces the fleet step (the
    daemon's seam, which its unit tests script)."""
    with counting(service.runtime.response_observers) as count:
        outcomes = fleet(service) if fleet is not None else run_due_each(service, on_done=on_done)
        statuses = service.status()
    now = service.now()
    found = TickWatch(service).after_tick(statuses, count.traffic, now=now)
    if telemetry is not None:
        telemetry.observe_tick(statuses, outcomes, found, now=now)
    return outcomes
