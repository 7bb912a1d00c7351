"""When the record keeper asks the ledger to renew its lease (issue 18: each renewal of a Vault lease is a request).

It renews at the start of each step (`confirm`), and otherwise only when its lease clock says so: a third of the lease
has passed, or less is left than the next request may take plus a store request. Between those, the clock (timed from
the last renewal's send) proves the lease is held, and a stalled runner still stops before anything else.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends.memory import MemoryStore
from rotator.core.errors import LeaseLost
from rotator.rotation.driver import RecordKeeper
from tests.unit.test_in_flight import Clock


class CountedRenewals(MemoryStore):
    """A ledger that counts the renewals it is asked for."""

    renewals = 0

    def renew(self, lease: Any, ttl_seconds: float) -> Any:
        self.renewals += 1
        return super().renew(lease, ttl_seconds)


def keeper_on(ledger: CountedRenewals, clock: Clock) -> RecordKeeper:
    return RecordKeeper(ledger, "runner 1", clock, ttl=90.0, in_flight=10.0, call=20.0, clock=clock)


def test_a_lease_its_clock_proves_held_is_not_renewed_before_a_change() -> None:
    clock = Clock()
    ledger = CountedRenewals("app", clock=clock)
    with keeper_on(ledger, clock) as keeper:
        clock.now += 10.0
        keeper.hold()
        keeper.hold(keeper.call_seconds)  # 80 s left: a 20 s call plus a 10 s request fit
        assert ledger.renewals == 0


def test_a_step_start_asks_the_ledger_whatever_the_clock_says() -> None:
    clock = Clock()
    ledger = CountedRenewals("app", clock=clock)
    with keeper_on(ledger, clock) as keeper:
        keeper.hold(confirm=True)
        assert ledger.renewals == 1


def test_a_lease_renews_once_a_third_passed_or_when_a_call_would_not_fit() -> None:
    clock = Clock()
    ledger = CountedRenewals("app", clock=clock)
    with keeper_on(ledger, clock) as keeper:
        clock.now += 30.0  # a third of 90 s
        keeper.hold()
        assert ledger.renewals == 1
        clock.now += 29.0  # 61 s left, less than one wanted 55 s plus a 10 s request
        keeper.hold(55.0)
        assert ledger.renewals == 2


def test_a_stalled_runner_stops_instead_of_trusting_its_clock() -> None:
    clock = Clock()
    ledger = CountedRenewals("app", clock=clock)
    with keeper_on(ledger, clock) as keeper:
        clock.now += 91.0
        with pytest.raises(LeaseLost, match="frozen or stalled"):
            keeper.hold()
    assert ledger.renewals == 0
