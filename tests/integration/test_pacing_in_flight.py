"""The throttle against a request still on its way after a whole window: TCP resends a lost SYN after 1 s, and a
loaded host can keep the sending thread off the CPU as long. The window counted such a request from when it was cleared
to go, so it aged out of the window while still unanswered, the next sends went out as if it were gone, and Bluum,
which counts it when it arrives, answered 429 (to it or to a send after it). A request not yet answered may arrive at
any moment, so it counts as sent *now* until it is answered. The simulator over HTTP, a transport that holds the first
request longer than the window; in this process's window, and in a host's shared window (`[bluum] shared_budget_dir`),
where the fleet's denser tenant traffic (3 calls a rotation) met it."""

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

HOLD = 1.3
"""Seconds the first request is held between the throttle and the wire: longer than the window and its guard."""

AFTER = 15
"""Requests sent one after another while the first is held: enough to fill the window it arrives in, at 10/s."""


class HoldFirst(httpx.HTTPTransport):
    """Sends the first request HOLD seconds after the client handed it over; `handed` is set when it was."""

    def __init__(self) -> None:
        super().__init__()
        self.handed = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.handed.is_set():
            self.handed.set()
            threading.Event().wait(HOLD)
        return super().handle_request(request)


@pytest.mark.parametrize("shared", [False, True], ids=["this-process", "shared-window"])
def test_a_request_held_past_the_window_draws_no_429(sim: Simulator, tmp_path: Path, shared: bool) -> None:
    """Sandbox, 10/s: the held request arrives HOLD s after it was cleared; with the sends made meanwhile, no second
    of Bluum's may see more than ten."""
    tenant = sim.create_tenant_key(environment="TEST")
    pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.SANDBOX, tenant["id"])
    budget = tmp_path / "budget"
    budget.mkdir()
    transport = HoldFirst()
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
        for _ in range(AFTER):
            client.check(pair)  # one attempt each: a 429 is not retried away
        held.join(10)
    statuses = [entry["status"] for entry in sim.request_log()[before:]]
    assert statuses == [200] * (AFTER + 1), f"statuses in order sent: {statuses}"
    assert list(budget.glob("*.window")) if shared else not list(budget.iterdir())
