"""A paying key's lane as one runner holds it (rotator/ops/lanes.py), on clocks the test moves: a holder frozen past
its lane sends nothing more, not even a renewal, and the lane's guard is asked before the credential's own."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.ledger import Lease
from backends.memory import MemoryStore
from rotator.core.errors import ExitCode, LeaseLost, RotationInProgress
from rotator.core.lease_clock import LeaseClock, before_request, guarding, guarding_lane
from rotator.ops.lanes import Lane, run_in_lane
from rotator.rotation.driver import Outcome


class Clocks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLedger(MemoryStore):
    """A memory ledger that counts renewals (each would be a write to Vault or DynamoDB)."""

    renewals = 0

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        self.renewals += 1
        return super().renew(lease, ttl_seconds)


def held_lane(clock: Clocks, ttl: float = 10.0) -> tuple[Lane, CountingLedger]:
    ledger = CountingLedger("tenant#lane", clock=clock)
    lease = ledger.acquire("ops@host-a pid 1", ttl + 3.0)
    lane_clock = LeaseClock(ttl, monotonic=clock, wall=clock)
    return Lane("tenant", ledger, lease, lane_clock, ttl + 3.0), ledger


def test_a_holder_frozen_past_its_lane_sends_nothing_more_and_does_not_renew() -> None:
    clock = Clocks()
    lane, ledger = held_lane(clock)
    lane.guard(2.0)  # held: the request may leave
    clock.now += 10.5  # SIGSTOP for longer than the lane, then SIGCONT
    with pytest.raises(LeaseLost, match="the lane of paying key tenant is lost: this runner was frozen"):
        lane.guard(0.0)
    with pytest.raises(LeaseLost):
        lane.renew()
    assert ledger.renewals == 0  # a renewal must not make a frozen runner's view current again
    started: list[str] = []

    def rotate(name: str) -> Outcome:
        started.append(name)
        return Outcome(name, ExitCode.OK, "rotated")

    outcome = run_in_lane(lane, rotate, "app0")  # the fleet comes to a credential of the lost lane
    assert (outcome.exit_code, started) == (ExitCode.IN_PROGRESS, [])
    assert "app0: not started: the lane of paying key tenant is lost" in outcome.message


def test_a_holder_with_less_left_than_the_request_needs_renews_first() -> None:
    clock = Clocks()
    lane, ledger = held_lane(clock)
    clock.now += 8.0
    lane.guard(5.0)
    assert ledger.renewals == 1
    assert lane.clock.left() == pytest.approx(10.0)


def test_the_lane_guard_is_asked_before_the_credentials_own() -> None:
    clock = Clocks()
    lane, _ = held_lane(clock)
    asked: list[str] = []
    clock.now += 11.0
    with guarding_lane(lane.guard), guarding(lambda seconds: asked.append("credential")), pytest.raises(LeaseLost):
        before_request(1.0)
    assert asked == []


class FakeRuntime(SimpleNamespace):
    """A runtime's attributes, and a weak reference to it (what the lanes and the start gate keep per runtime)."""

    __hash__ = object.__hash__  # type: ignore[assignment]


def fake_service(stores: dict[str, MemoryStore], owner: str, clock: Clocks) -> Any:
    """What a LaneScope reads of a RotationService: the lease's length, the credentials' paying keys and stores, and a
    runtime with its owner, clocks and store handles."""
    from rotator.config.settings import BluumSettings

    bluum = BluumSettings()
    creds = {
        "tenant": SimpleNamespace(name="tenant", manager=None, store="tenant"),
        **{f"app{n}": SimpleNamespace(name=f"app{n}", manager="tenant", store=f"app{n}") for n in range(3)},
    }
    config = SimpleNamespace(
        ledger=SimpleNamespace(lease_ttl=30.0), bluum=bluum, stores={}, credential=creds.__getitem__
    )
    runtime = FakeRuntime(config=config, owner=owner, clock=clock, monotonic=clock, store=stores.__getitem__)
    return SimpleNamespace(config=config, runtime=runtime)


def test_a_second_runner_waits_for_the_lane_says_who_holds_it_and_takes_it_once_given_up() -> None:
    from rotator.daemon.lanes import LaneCollector, lane_lines
    from rotator.ops.lanes import LaneScope, last_seen

    clock = Clocks()
    tenant = MemoryStore("tenant", clock=clock)
    host_a = fake_service({"tenant": tenant}, "ops@host-a pid 1", clock)
    host_b = fake_service({"tenant": tenant.twin()}, "ops@host-b pid 2", clock)
    names = ["tenant", "app0", "app1", "app2"]
    ran: list[str] = []

    def rotate(name: str) -> Outcome:
        ran.append(name)
        return Outcome(name, ExitCode.OK, "rotated")

    with LaneScope(host_a, names) as a:
        with LaneScope(host_b, names) as b:
            waited = [b.guarded(rotate)(name) for name in names]
        assert [a.guarded(rotate)(name).message for name in names] == ["rotated"] * 4
    assert ran == names  # only A ran them
    assert {o.exit_code for o in waited} == {ExitCode.OK}
    assert waited[1].message.startswith("app0: waiting: the lane of paying key tenant is held by ops@host-a pid 1")
    assert last_seen(host_b.runtime)[0].here is False
    assert lane_lines(host_b.runtime, 7) == [
        "tick 7: waiting: the lane of paying key tenant is held by ops@host-a pid 1; its credentials run there "
        "(this daemon takes the lane over if it is not given up by then)"
    ]
    collector = LaneCollector()
    collector.runtime = host_a.runtime
    assert [sample.value for family in collector.collect() for sample in family.samples] == [1.0]
    with LaneScope(host_b, names) as b_again:  # A gave the lane up at the end of its tick
        assert list(b_again.held) == ["tenant"]
        assert b_again.refused == {}


def test_a_dotenv_files_lane_is_a_lock_beside_it_apart_from_the_credentials_own(tmp_path: Path) -> None:
    """The dotenv lane: a same-host kernel lock on `<file>.lane.rotator.lock`; the credential's own lease is another
    lock, so the lane's holder can still rotate the tenant credential itself."""
    from backends.env.store import EnvStore

    (tmp_path / "tenant.env").write_text("BLUUM_API_KEY=k\nBLUUM_API_SECRET=s\n")
    (tmp_path / "tenant.env").chmod(0o600)
    here, there = EnvStore("tenant", path=tmp_path / "tenant.env"), EnvStore("tenant", path=tmp_path / "tenant.env")
    mine = here.lane_ledger()
    lane = mine.acquire("ops@host-a pid 1", 30.0)
    with pytest.raises(RotationInProgress) as refused:
        there.lane_ledger().acquire("ops@host-a pid 2", 30.0)
    assert refused.value.held_by == "ops@host-a pid 1"
    assert (tmp_path / "tenant.env.lane.rotator.lock").exists()
    own = there.acquire("ops@host-a pid 2", 30.0)  # the credential's own lease is not the lane
    there.release(own)
    mine.release(lane)
    theirs = there.lane_ledger()
    taken = theirs.acquire("ops@host-a pid 2", 30.0)
    assert taken.fence == lane.fence + 1
    theirs.release(taken)
