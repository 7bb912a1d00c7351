"""A scheduler's resume that changes nothing leaves no trace: no history entry, no counter, no notification.

Why: every tick (`run-due`, the daemon, the Lambda's tick) resumes an unfinished rotation. While it waits out its
grace window, or waits on consumers or a person, each tick used to publish `resumed` and `waiting` again: the history
grew by two lines a tick (96 a day at the daemon's 15 minutes), `bluum_rotator_rotations_started_total{kind="resumed"}`
and `bluum_rotator_rotations_total{outcome="waiting"}` counted ticks instead of rotations, and a webhook heard the
same wait every time. So the scheduler's resume holds its `resumed` event back until the run does something: the
first other event lets it through (in order); a `waiting` that repeats the record's own wait, word for word, drops
both; a run that publishes nothing else (a reload's backoff, an error before any step) drops it too.
A person's `rotator resume` is not gated: it is asked for, and its lines are what the person watches.
"""

from __future__ import annotations

from rotator.core.events import EventBus, EventKind, RotationEvent


class RepeatGate(EventBus):
    """The bus a scheduler's resume publishes to: it forwards to `bus` once the run is more than a repeated wait.

    `waiting_on`: the wait the record said when the run began (`RotationRecord.waiting_on`)."""

    def __init__(self, bus: EventBus, waiting_on: str | None) -> None:
        super().__init__()
        self._bus = bus
        self._waiting_on = waiting_on
        self._held: RotationEvent | None = None
        self._open = False

    def publish(self, event: RotationEvent) -> None:
        if self._open:
            self._bus.publish(event)
            return
        if event.kind is EventKind.RESUMED and self._held is None:
            self._held = event  # until the run shows whether it does anything
            return
        held, self._held = self._held, None
        if event.kind is EventKind.WAITING and event.message == self._waiting_on:
            return  # the wait the record already says: nothing happened (what follows, if anything, goes through)
        self._open = True
        if held is not None:
            self._bus.publish(held)
        self._bus.publish(event)
