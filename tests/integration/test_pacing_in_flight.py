"""The throttle against a request still on its way after a whole window: TCP resends a lost SYN after 1 s, and a
loaded host can keep the sending thread off the CPU as long. The window counted such a request from when it was cleared
to go, so it aged out of the window while still unanswered, the next sends went out as if it were gone, and Bluum,
which counts it when it arrives, answered 429 (to it or to a send after it). A request not yet answered may arrive at
any moment, so it counts as sent *now* until it is answered. The simulator over HTTP, a transport that holds the first
request longer than the window; in this process's window, and in a host's shared window (`[bluum] shared_budget_dir`),
where the fleet's denser tenant traffic (3 calls a rotation) met it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.simulator import Simulator
from tests.integration.test_pacing_answers import HoldFirst, send_after_held

pytestmark = pytest.mark.slow

HOLD = 1.3
"""Seconds the first request is held between the throttle and the wire: longer than the window and its guard."""

AFTER = 15
"""Requests sent one after another while the first is held: enough to fill the window it arrives in, at 10/s."""


@pytest.mark.parametrize("shared", [False, True], ids=["this-process", "shared-window"])
def test_a_request_held_past_the_window_draws_no_429(sim: Simulator, tmp_path: Path, shared: bool) -> None:
    """Sandbox, 10/s: the held request arrives HOLD s after it was cleared; with the sends made meanwhile, no second
    of Bluum's may see more than ten."""
    statuses = send_after_held(sim, tmp_path, shared, HoldFirst(HOLD), after=AFTER)
    assert statuses == [200] * (AFTER + 1), f"statuses in order logged: {statuses}"
