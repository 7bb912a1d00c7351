"""Issue 19, "rollback is a rotation in reverse": the new key is revoked only once every consumer reports the old key.

Real consumer processes (tests/consumer_app.py) read the workspace's app.env and call the simulator with the key they
hold; the real CLI runs in a subprocess. Each rotation is held in AWAITING_CONSUMERS by a consumer that never reloads
(grace windows are 0 s), so the ones that did reload hold the new key when `rotator rollback` runs. Before this was
built, every rollback here revoked the new key as soon as the reloads back answered, and each consumer below that
still held it was refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.consumer_fixtures import ConsumerFleet, eventually
from tests.e2e.conftest import Workspace
from tests.e2e.consumer_workspace import consumer_calls, declare, fleet, fp
from tests.e2e.test_consumer_gate import hook as hook  # the webhook fixture, asked for by name
from tests.e2e.test_consumer_gate import notifications
from tests.e2e.test_consumers_env import app_env, trading_status
from tests.e2e.test_review_scenarios import said
from tests.recording_http import RecordingServer


@pytest.fixture
def consumers(ws: Workspace) -> Iterator[ConsumerFleet]:
    with fleet(ws) as running:
        yield running


def test_a_consumer_that_does_not_reload_back_is_named_and_the_new_key_is_not_revoked(
    ws: Workspace, hook: RecordingServer, consumers: ConsumerFleet
):
    """The bound passes with a consumer still on the new key: the new key stays active (two keys, as I4 allows), the
    rotation stays rolling back, exit 4 names who and what it reports; only an operator's override with a reason
    revokes it, and that report names who breaks: the one consumer then refused."""
    once, stuck = consumers.start_many(
        [("once", app_env(ws), ("--reload-once",)), ("stuck", app_env(ws), ("--never-reload",))]
    )
    declare(ws, consumers, consumer_wait="2s")
    old = ws.first.pair
    assert ws.run("rotate", "trading").returncode == ExitCode.INCOMPLETE
    new = ws.pair_in()
    assert eventually(lambda: once.count(200, fp(new)) >= 1)

    back = ws.run("rollback", "trading")

    assert back.returncode == ExitCode.INCOMPLETE, said(back)
    text = said(back)
    assert "was NOT revoked" in text, text
    assert "once (store app): reports the new key" in text, text
    assert "stuck (store" not in text, "a consumer on the old key is not named"
    assert "`rotator resume trading --revoke-anyway --reason TEXT`" in text, text
    assert ws.pair_in() == old, "the old key is current again all the same"
    assert ws.works(new), "the new key was revoked while a consumer still used it"
    assert ws.works(old)
    row = trading_status(ws)
    assert row["stage"] == "rolling_back", row
    assert "once (store app): reports the new key" in ws.run("status").stdout

    again = ws.run("resume", "trading")

    assert again.returncode == ExitCode.INCOMPLETE, said(again)
    assert "once (store app): reports the new key" in said(again)
    assert ws.works(new)
    assert [e["fp"] for e in once.events("reload")] == [fp(new)], "resume asks again; it does not restart it again"
    assert once.count(401) == 0
    assert stuck.count(401) == 0

    forced = ws.run("resume", "trading", "--revoke-anyway", "--reason", "the new key leaked")

    assert forced.returncode == ExitCode.ROLLED_BACK, said(forced)
    assert "It was revoked anyway (the new key leaked) although 1 consumer(s)" in said(forced), said(forced)
    assert "once (store app): reports the new key" in said(forced), "the override must say who it breaks"
    assert not ws.works(new)
    assert ws.works(old)
    assert eventually(lambda: once.count(401, fp(new)) >= 1), "the consumer named is the one that breaks"
    assert stuck.count(401) == 0
    assert "the new key leaked" in ws.run("history", "trading").stdout
    told = [n["message"] for n in notifications(hook, ws) if n["subject"] == "consumers_not_back"]
    assert len(told) == 2, told  # when the rollback first waited on it, and when the override broke it
    assert all("once (store app): reports the new key" in message for message in told), told
    assert "revoked anyway (the new key leaked)" in told[1]


def test_a_consumer_whose_attestation_hangs_holds_the_new_key_within_the_bound(ws: Workspace, consumers: ConsumerFleet):
    """Silence is not consent going back either: a consumer that cannot say which key it uses may still use the new
    one. The rollback is bounded by consumer_wait and the consumer's timeout, and names it."""
    (hung,) = consumers.start_many([("hung", app_env(ws), ("--hang-attest",))])
    declare(ws, consumers, consumer_wait="2s", timeout="1s")
    old = ws.first.pair
    assert ws.run("rotate", "trading").returncode == ExitCode.INCOMPLETE
    new = ws.pair_in()
    started = time.monotonic()

    back = ws.run("rollback", "trading")

    assert back.returncode == ExitCode.INCOMPLETE, said(back)
    assert time.monotonic() - started < 30, "a hanging attestation must be bounded"
    assert "hung (store app): unreachable: timed out after 1s" in said(back), said(back)
    assert ws.pair_in() == old
    assert ws.works(new)
    assert ws.works(old)
    assert eventually(lambda: hung.calls()[-1]["fp"] == fp(old)), "it did reload back: only its answer hangs"
    assert hung.count(401) == 0


def test_a_rollback_that_crashed_after_its_reload_back_still_waits_when_resumed(
    ws: Workspace, consumers: ConsumerFleet
):
    """A runner killed in the middle of the reloads back: `resume` finishes the rollback, and still waits for the
    consumer 3 s slow to reload back before the new key dies (0 of its calls refused)."""
    slow, stuck = consumers.start_many(
        [("slow", app_env(ws), ("--reload-lag", "3")), ("stuck", app_env(ws), ("--never-reload",))], rate=10
    )
    declare(ws, consumers, consumer_wait="6s")
    old = ws.first.pair
    assert ws.run("rotate", "trading").returncode == ExitCode.INCOMPLETE
    new = ws.pair_in()
    assert eventually(lambda: slow.count(200, fp(new)) >= 1)

    crashed = ws.run("rollback", "trading", env={CRASH_ENV: "reload.app"})
    assert crashed.returncode < 0, said(crashed)  # killed right after the first reload back was answered
    assert trading_status(ws)["stage"] == "rolling_back"

    resumed = ws.run("resume", "trading")

    assert resumed.returncode == ExitCode.ROLLED_BACK, said(resumed)
    assert "rolled back" in said(resumed)
    assert ws.pair_in() == old
    assert not ws.works(new)
    assert ws.works(old)
    assert eventually(lambda: slow.count(200, fp(old)) >= 2)
    assert slow.count(401) == 0, slow.statuses()
    assert stuck.count(401) == 0
    assert consumer_calls(ws, 401) == []


def test_a_consumer_slower_than_the_bound_is_waited_for_by_the_next_tick(ws: Workspace, consumers: ConsumerFleet):
    """One run polls for consumer_wait, not for ever (it holds the lease): a consumer 4 s slow to reload back outlasts
    a 1 s bound, the run ends with exit 4 and the new key alive, and the scheduler's next tick (run-due) finishes the
    rollback once it reports the old key, without restarting it again: 0 of its calls refused."""
    slow, stuck = consumers.start_many(
        [("slow", app_env(ws), ("--reload-lag", "4")), ("stuck", app_env(ws), ("--never-reload",))], rate=10
    )
    declare(ws, consumers, consumer_wait="1s")
    old = ws.first.pair
    assert ws.run("rotate", "trading").returncode == ExitCode.INCOMPLETE
    new = ws.pair_in()
    assert eventually(lambda: slow.count(200, fp(new)) >= 1, timeout=10)

    back = ws.run("rollback", "trading")

    assert back.returncode == ExitCode.INCOMPLETE, said(back)
    assert "slow (store app): reports the new key" in said(back), said(back)
    assert ws.works(new)
    assert eventually(lambda: len(slow.events("reload")) == 2, timeout=10), "it reloads back, 4 s late"

    tick = ws.run("run-due")

    assert "rolled back" in said(tick), said(tick)
    assert trading_status(ws)["stage"] != "rolling_back"
    assert not ws.works(new)
    assert ws.works(old)
    assert len(slow.events("reload")) == 2, "the tick asked again; it did not reload it again"
    assert slow.count(401) == 0, slow.statuses()
    assert stuck.count(401) == 0
    assert consumer_calls(ws, 401) == []
