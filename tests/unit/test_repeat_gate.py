"""rotation/repeat_gate.RepeatGate: a scheduler's resume reaches the bus only when it does more than repeat its wait.

The end-to-end proofs drive the daemon and the Lambda's tick (tests/e2e/test_quiet_ticks.py,
tests/integration/test_lambda_quiet_ticks.py); these walk the sequences a run can publish, the consumers' wait and
a person's among them, which those do not reach."""

from __future__ import annotations

from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.rotation.repeat_gate import RepeatGate

WAIT = "trading: 1 of 2 consumers report the new key; billing (store app) does not"


def event(kind: EventKind, message: str = "") -> RotationEvent:
    return RotationEvent(kind=kind, credential="trading", step=kind.value, message=message, at=1.0)


def through(waiting_on: str | None, *kinds: tuple[EventKind, str]) -> list[tuple[EventKind, str]]:
    seen: list[RotationEvent] = []
    gate = RepeatGate(EventBus(seen.append), waiting_on)
    for kind, message in kinds:
        gate.publish(event(kind, message))
    return [(e.kind, e.message) for e in seen]


def test_the_same_wait_again_publishes_nothing() -> None:
    assert through(WAIT, (EventKind.RESUMED, "resuming"), (EventKind.WAITING, WAIT)) == []


def test_a_run_that_publishes_nothing_after_resuming_publishes_nothing() -> None:
    assert through(WAIT, (EventKind.RESUMED, "resuming")) == []


def test_another_wait_is_news_and_goes_out_after_its_resume() -> None:
    moved = "trading: 2 of 2 consumers report the new key"
    assert through(WAIT, (EventKind.RESUMED, "resuming"), (EventKind.WAITING, moved)) == [
        (EventKind.RESUMED, "resuming"),
        (EventKind.WAITING, moved),
    ]


def test_a_step_opens_the_gate_for_everything_after_it_in_order() -> None:
    sequence = [
        (EventKind.RESUMED, "resuming"),
        (EventKind.STEP, "revoked"),
        (EventKind.WAITING, WAIT),
        (EventKind.COMPLETED, "done"),
    ]
    assert through(WAIT, *sequence) == sequence


def test_a_wait_the_record_did_not_say_yet_is_news() -> None:
    assert through(None, (EventKind.RESUMED, "resuming"), (EventKind.WAITING, WAIT)) == [
        (EventKind.RESUMED, "resuming"),
        (EventKind.WAITING, WAIT),
    ]
