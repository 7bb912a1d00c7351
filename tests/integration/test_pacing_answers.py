"""The throttle against a request that arrives late: the sending thread stalled (a loaded machine, the GIL) or the
network held it after the throttle cleared it to go, while later requests arrived on time. Bluum counts the late one
when it arrives, so the throttle must not count it from when it left (the rare 429 a fleet drew at 0.97 of the limit
under load): once answered, it counts from its answer. The simulator over HTTP, a transport that holds the first
request on its way out; in this process's window, and in a host's shared window (`[bluum] shared_budget_dir`)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from rotator.bluum import BluumClient, RetryPolicy
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator

pytestmark = pytest.mark.slow

HOLD = 0.3
"""Seconds the first request is held between the throttle and the wire: longer than the window's guard (50 ms)."""


class HoldFirst(httpx.HTTPTransport):
    """Sends the first request `hold` seconds after the client handed it over; `handed` is set when it was."""

    def __init__(self, hold: float = HOLD) -> None:
        super().__init__()
        self.hold = hold
        self.handed = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.handed.is_set():
            self.handed.set()
            threading.Event().wait(self.hold)
        return super().handle_request(request)


@pytest.mark.parametrize("shared", [False, True], ids=["this-process", "shared-window"])
def test_a_request_held_on_its_way_out_draws_no_429_from_those_sent_after_it(
    sim: Simulator, tmp_path: Path, shared: bool
) -> None:
    """Sandbox, 10/s: the held request arrives HOLD s late; the ten sent after it must not reach Bluum within one
    second of its arrival."""
    statuses = send_after_held(sim, tmp_path, shared, HoldFirst(), after=10)
    assert statuses == [200] * 11, statuses


def send_after_held(sim: Simulator, tmp_path: Path, shared: bool, transport: HoldFirst, after: int) -> list[object]:
    """One sandbox check held by `transport`, `after` more one after another meanwhile, one attempt each (a 429 is
    not retried away); the statuses Bluum answered, in the order it logged them."""
    tenant = sim.create_tenant_key(environment="TEST")
    pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.SANDBOX, tenant["id"])
    budget = tmp_path / "budget"
    budget.mkdir()
    before = len(sim.request_log())
    with BluumClient(
        sim.base_url,
        transport=transport,
        retry=RetryPolicy(max_attempts=1),
        shared_budget_dir=budget if shared else None,
    ) as client:
        held = threading.Thread(target=client.check, args=(pair,))
        held.start()
        assert transport.handed.wait(10)
        for _ in range(after):
            client.check(pair)
        held.join(10)
    assert list(budget.glob("*.window")) if shared else not list(budget.iterdir())
    return [entry["status"] for entry in sim.request_log()[before:]]
