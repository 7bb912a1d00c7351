"""A send not yet answered counts as sent *now*, in this process's window and in the host's shared one: it may arrive
at any moment, however long ago it was cleared (`rotator.bluum.throttle`). Once answered it counts from its answer and
ages out a window later; one left in flight by a crashed process ages out after `IN_FLIGHT_LIMIT`. Clocks are passed
in, so nothing here sleeps."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from rotator.bluum import BluumClient, RetryPolicy
from rotator.bluum.shared_window import IN_FLIGHT_LIMIT, SharedWindow
from rotator.bluum.throttle import Slot, Throttle, throttle_for
from rotator.core import lease_clock
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret

GUARD = 0.05
SPAN = 1.0 + GUARD


def test_a_shared_send_in_flight_keeps_its_place_in_the_window_until_answered(tmp_path: Path) -> None:
    window = SharedWindow(tmp_path / "k.window", GUARD)
    assert window.admit(100.0, limit=1) == 0.0
    assert window.admit(100.0 + SPAN + 0.5, limit=1) == pytest.approx(SPAN)  # before: 0.0, it had aged out
    window.answered(100.0, 101.6)  # it arrived by 101.6
    assert window.admit(101.6 + SPAN - 0.01, limit=1) == pytest.approx(0.01)
    assert window.admit(101.6 + SPAN + 0.001, limit=1) == 0.0


def test_a_shared_send_left_in_flight_by_a_crashed_process_ages_out(tmp_path: Path) -> None:
    path = tmp_path / "k.window"
    assert SharedWindow(path, GUARD).admit(100.0, limit=1) == 0.0
    assert path.read_text() == "+100.000000"
    window = SharedWindow(path, GUARD)  # another process; the first never answers
    assert window.admit(100.0 + IN_FLIGHT_LIMIT - 1, limit=1) == pytest.approx(SPAN)
    assert window.admit(100.0 + IN_FLIGHT_LIMIT + 0.001, limit=1) == 0.0


def test_lines_an_older_rotator_wrote_count_from_their_time(tmp_path: Path) -> None:
    path = tmp_path / "k.window"
    path.write_text("100.000000")  # an older rotator on the host: no in-flight mark
    window = SharedWindow(path, GUARD)
    assert window.admit(100.5, limit=1) == pytest.approx(100.0 + SPAN - 100.5)
    assert window.admit(100.0 + SPAN + 0.001, limit=1) == 0.0


def test_this_process_window_keeps_a_send_in_flight_until_answered() -> None:
    throttle = Throttle(1.0)
    assert throttle.admit(100.0) == 0.0
    assert throttle.admit(100.0 + SPAN + 0.5) == pytest.approx(SPAN)
    throttle.answered(Slot(0.0, 100.0), 101.6)
    assert throttle.admit(101.6 + SPAN - 0.01) == pytest.approx(0.01)
    assert throttle.admit(101.6 + SPAN + 0.001) == 0.0
    assert throttle.admit(101.6 + SPAN + 0.002 + IN_FLIGHT_LIMIT) == 0.0  # the last, never answered, aged out


class LeaseGone(Exception):
    """What the lease guard raises (LeaseLost in the rotator) to keep a request from leaving."""


def test_a_request_the_lease_guard_stops_is_no_longer_in_flight() -> None:
    """The transport answers the slot of a request it never sent: left in flight, it would hold one of the pair's
    sends for IN_FLIGHT_LIMIT seconds (in a daemon, every later rotation's)."""
    now = [1000.0]
    sent: list[httpx.Request] = []

    def refuse(seconds: float) -> None:
        raise LeaseGone

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    pair = KeyPair(f"pk_lease_{uuid.uuid4().hex}", Secret("sk"), Environment.SANDBOX, None)
    with (
        BluumClient(
            "http://bluum.invalid",
            transport=httpx.MockTransport(answer),
            rate_limits={Environment.SANDBOX: 1.0},
            retry=RetryPolicy(max_attempts=1),
            clock=lambda: now[0],
            sleep=lambda seconds: None,
        ) as client,
        lease_clock.guarding(refuse),
        pytest.raises(LeaseGone),
    ):
        client.check(pair)
    assert not sent
    assert throttle_for(pair.api_key, 1.0).admit(now[0] + SPAN + 0.001) == 0.0
