"""Consumers for the driver's property test (tests/unit/test_driver_properties.py), in memory: applications that
load a credential's key from its store and say which key they hold when the rotator asks (issue 19).

Why in memory, and how they reach the rotator: the property test plays a thousand random runs, so no socket and no
process. The rotator's own poller runs as in production (`rotator.consumers.poll`: one thread per consumer, the
answers judged by `rotator.attest.parse_answer` and `rotator.rules.consumers`); only its one I/O call, `ask` (an HTTP
GET or a command), is replaced by `Fleet.ask`, as the property test replaces the reload runner's `run_action`. A
consumer that hangs costs the poll its timeout on the test's clock (`Fleet.poll_once`), and the gate's back-off
between polls sleeps on that clock too (`FakeStopping`): the gate waits on the runtime's `stopping` event, not on its
injected `sleep`.

A consumer holds the key it loaded: at start, and later what its store's CURRENT shows when it loads again, which
it does when a reload action of its store works ("prompt"), when the action `catch_up` comes or while the gate polls
it ("late": a reload that said 0 but restarted nothing, an agent rendering late), or never until the run settles
("never"). Asked, it tells the truth, or hangs, fails, or answers junk, as drawn, one drawn answer per question, then
the truth.

What is checked (the property test's I1, with consumers): a consumer's key is always one Bluum accepts, after every
step and at the moment any key dies, except where a person or an emergency took that risk and the rotation said so,
and a rollback revokes the new key only under the same rule (ROLLBACK_GATED). See `Fleet.dying` and `Fleet.check`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import strategies as st

from rotator.attest import answer
from rotator.config.consumers import Consumer
from rotator.consumers import poll
from rotator.consumers.ask import Answer
from rotator.core.durations import format_duration
from rotator.core.model import Stage, StoredKey
from rotator.rotation import revoke_gate
from rotator.rules.consumers import Attestation

__all__ = [
    "CONSUMER_POINTS",
    "ROLLBACK_GATED",
    "ConsumerSpec",
    "FakeConsumer",
    "FakeStopping",
    "Fleet",
    "consumers_toml",
    "fleets",
]

CONSUMER_POINTS = (
    "attest.record",
    "awaiting_consumers.record",
    "attested.record",
    "override.record",
    "attest_once.record",
)
"""The fault points of the consumer gate (rotator/rotation/revoke_gate.py): crash points too when drawn."""

MODES = ("prompt", "late", "never")
ANSWERS = ("truth", "reload", "reload", "hang", "fail", "junk")
"""How a consumer answers one question: the truth; the truth after loading what its store shows (it reloads while
the gate polls, unless it never does); no answer in its timeout; a failure; junk."""
JUNK = b"<html><body>OK</body></html>\n"
"""What a health page answers when asked for a fingerprint: malformed, never counted as on the new key."""
TIMEOUT = timedelta(seconds=5)
"""Each consumer's `timeout` in the test's configuration: what a hanging one costs a poll."""

real_poll_once = poll.poll_once
"""The poller's own `poll_once`, kept before a test replaces the module's name with `Fleet.poll_once`."""

ROLLBACK_GATED = True
"""Whether a rollback waits for consumers to move back before it revokes the new key (issue 19, "Rollback is a
rotation in reverse": rotator/rotation/reverse.py). It does: the property test holds rollbacks to the same rule as
revokes of the old key (a consumer on the new key when a rollback revokes it is excused only when an override named
it)."""


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer as drawn: the store it reads, when it loads again, and its first answers."""

    store: str
    mode: str
    answers: tuple[str, ...] = ()


def fleets() -> st.SearchStrategy[list[ConsumerSpec]]:
    """No consumer in half the examples (the property test's other parts keep their share), one to three else."""
    spec = st.builds(
        ConsumerSpec,
        st.sampled_from(("app", "mirror")),
        st.sampled_from(MODES),
        st.lists(st.sampled_from(ANSWERS), max_size=4).map(tuple),
    )
    return st.booleans().flatmap(lambda on: st.lists(spec, min_size=1, max_size=3) if on else st.just([]))


def consumers_toml(specs: Sequence[ConsumerSpec], store: str) -> str:
    """The `consumers` line of `[stores.<store>]` ("" when none reads it): command consumers, so that a poll builds no
    HTTP client (the runner is faked; `true` only keeps the configuration honest)."""
    items = [
        f'{{ name = "c{n}", command = ["true", "c{n}"], timeout = "{format_duration(TIMEOUT)}" }}'
        for n, spec in enumerate(specs)
        if spec.store == store
    ]
    return f"consumers = [{', '.join(items)}]\n" if items else ""


class FakeStopping(threading.Event):
    """The runtime's `stopping` event on the test's clock: the consumer gate waits between polls on
    `runtime.stopping.wait` (so that a SIGTERM ends the wait at once), which would sleep for real and leave the fake
    clock where it is. Here a wait is the runner's injected sleep (a take-over may happen in it), and nobody asks the
    process to stop."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        super().__init__()
        self._sleep = sleep

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None, "the gate always waits a bounded time"
        self._sleep(timeout)
        return self.is_set()


@dataclass
class FakeConsumer:
    name: str
    store: str
    mode: str
    answers: list[str]
    held: StoredKey | None = None
    excused: str = ""
    """Why it may hold a dead key (who took that risk), until it loads another one; "" when it may not."""
    asked: int = 0


@dataclass
class Fleet:
    """The consumers of the credential `trading`, and the checks of I1 for them."""

    stores: dict[str, Any]
    accepts: Callable[[StoredKey | None], bool]
    """Whether Bluum accepts a key now (the fake Bluum's own test)."""
    record: Callable[[], dict[str, Any] | None]
    """The rotation record as the primary store holds it now."""
    advance: Callable[[float], None]
    tally: Callable[[str], None]
    """Counts what happened in the statistics (`--hypothesis-show-statistics`)."""
    consumers: list[FakeConsumer] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        specs: Sequence[ConsumerSpec],
        stores: dict[str, Any],
        accepts: Callable[[StoredKey | None], bool],
        record: Callable[[], dict[str, Any] | None],
        advance: Callable[[float], None],
        tally: Callable[[str], None],
    ) -> Fleet:
        fleet = cls(stores, accepts, record, advance, tally)
        for n, spec in enumerate(specs):
            consumer = FakeConsumer(f"c{n}", spec.store, spec.mode, list(spec.answers))
            fleet.load(consumer)  # each application starts with what its store shows
            fleet.consumers.append(consumer)
        return fleet

    # ----------------------------------------------------------------- what consumers do

    def load(self, consumer: FakeConsumer) -> None:
        consumer.held = self.stores[consumer.store].read(Stage.CURRENT)
        consumer.excused = ""

    def reloaded(self, store: str) -> None:
        """A reload action of `store` worked: the consumers that reload when told to load what the store shows."""
        for consumer in self.consumers:
            if consumer.store == store and consumer.mode == "prompt":
                self.load(consumer)

    def catch_up(self) -> str:
        """The action `catch_up`: the first consumer (not one that never reloads) whose key is not its store's
        CURRENT loads it, late; what happened, for the statistics."""
        for consumer in self.consumers:
            if consumer.mode != "never" and consumer.held != self.stores[consumer.store].read(Stage.CURRENT):
                self.load(consumer)
                return f"a {consumer.mode} consumer caught up"
        return "no consumer to catch up"

    def settle(self) -> None:
        """The faults stop: every consumer tells the truth from now on and loads what its store shows (a person
        restarted the ones that never reload)."""
        for consumer in self.consumers:
            consumer.answers.clear()
            self.load(consumer)

    # ----------------------------------------------------------------- what the rotator's poller sees

    def ask(self, config: Consumer, credential: str, client: object = None) -> Answer:
        """Stands in for `rotator.consumers.ask.ask`, in the poller's threads: one thread per consumer, and each
        consumer's drawn answers are its own, so the order of the threads changes nothing."""
        consumer = next(c for c in self.consumers if c.name == config.name)
        consumer.asked += 1
        how = consumer.answers.pop(0) if consumer.answers else "truth"
        if how == "hang":
            return Answer(None, f"timed out after {format_duration(config.timeout)}")
        if how == "fail":
            return Answer(None, "exit 1")
        if how == "reload" and consumer.mode != "never":
            self.load(consumer)
        if how == "junk" or consumer.held is None:
            return Answer(JUNK)
        return Answer(answer(consumer.held.api_key))

    def poll_once(
        self, consumers: Sequence[Consumer], *, new_fingerprint: str, old_fingerprint: str | None, credential: str = ""
    ) -> list[Attestation]:
        """The real poll (threads, judging) with `ask` faked; a consumer that hung cost the poll its timeout."""
        found = real_poll_once(
            consumers, new_fingerprint=new_fingerprint, old_fingerprint=old_fingerprint, credential=credential
        )
        for attestation in found:
            self.tally(f"a consumer was polled: {attestation.outcome}")
        hung = [c.timeout.total_seconds() for c, a in zip(consumers, found, strict=True) if "timed out" in a.detail]
        if hung:
            self.advance(max(hung))
        return found

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route the gate's polls (`poll_until`'s and the emergency's or override's single one) through this fleet."""
        monkeypatch.setattr(poll, "ask", self.ask)
        monkeypatch.setattr(poll, "poll_once", self.poll_once)
        monkeypatch.setattr(revoke_gate, "poll_once", self.poll_once)

    # ----------------------------------------------------------------- I1 for consumers

    def dying(self, public_key: str, key_id: str) -> None:
        """Bluum is about to revoke `key_id`. Allowed while a consumer holds it only when
        - it is the old key of a rotation in an emergency or that a person overrode (`resume --revoke-anyway`),
          and the record (what the revoke's report, the history and the notification are made from) names every
          such consumer among those not on the new key; or
        - it is the new key of a rotation rolling back, while ROLLBACK_GATED is False.
        And whatever consumers hold: the old key of a rotation with consumers, neither emergency nor overridden, goes
        only once they all reported the new key (`consumers_moved_at`)."""
        record = self.record() or {}
        holders = [c for c in self.consumers if c.held is not None and c.held.api_key == public_key]
        old = key_id == record.get("old_key_id")
        overridden = old and (record.get("emergency") or record.get("revoked_over"))
        if self.consumers and old and not overridden and record.get("consumers_moved_at") is None:
            raise AssertionError(
                f"I1: the old key {key_id} is being revoked before every consumer reported the new key "
                f"(phase {record.get('phase')}, last poll: {record.get('unmoved')})"
            )
        if self.consumers and old:
            self.tally(f"the old key revoked: {'overridden' if overridden else 'every consumer on the new key'}")
        if not holders:
            return
        names = ", ".join(c.name for c in holders)
        if overridden:
            named = record.get("unmoved") or []
            unnamed = [c.name for c in holders if not any(line.startswith(f"{c.name} (store ") for line in named)]
            if unnamed:
                raise AssertionError(
                    f"I1: {'an emergency' if record.get('emergency') else 'an override'} revokes {key_id}, which "
                    f"{', '.join(unnamed)} still use(s), without naming them (the record names: {named})"
                )
            why = "named by the emergency" if record.get("emergency") else "named by the override"
        elif key_id == record.get("new_key_id") and record.get("phase") == "rolling_back" and not ROLLBACK_GATED:
            why = "the rollback revoked the new key under it (not gated yet)"
        else:
            raise AssertionError(
                f"I1: revoking {key_id} while consumer(s) {names} use it (phase {record.get('phase')}, "
                f"emergency {record.get('emergency')}, override {record.get('revoked_over')!r})"
            )
        for consumer in holders:
            consumer.excused = why
            self.tally(f"a consumer kept a dead key: {why}")

    def check(self) -> None:
        """After every step: every consumer holds a key Bluum accepts, or was excused when its key died."""
        for consumer in self.consumers:
            if not consumer.excused and not self.accepts(consumer.held):
                what = consumer.held.api_key if consumer.held else "nothing"
                raise AssertionError(f"I1: consumer {consumer.name} (store {consumer.store}) holds {what}, now dead")
