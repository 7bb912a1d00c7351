"""The memory store: the Protocol contract, plus what only a lease in shared memory can get wrong.

The memory store exists so that people can test code that drives stores without files or clouds; it is only useful
if it behaves exactly like a real store. So it runs the same contract suite as the env store, and then the two parts
it has of its own: a lease that expires on an injectable clock (how a dead holder stops blocking), and a mutex that
keeps every call atomic when threads race (each round of a lock race must have exactly one winner).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from backends.base import SecretStore
from backends.ledger import Lease, VersionedRecord, held_lease
from backends.memory import MemoryStore
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict, StoreError
from rotator.core.model import DEFAULT_BASE_URLS, Environment, Stage, StoredKey
from rotator.core.secret import Secret
from tests.store_contract import LEASE_TTL, StoreContract, assert_holds, make_key, snapshot

SANDBOX_URL = DEFAULT_BASE_URLS[Environment.SANDBOX]
THREADS = 8
ROUNDS = 25
WAIT = 10.0  # seconds a barrier waits before the test fails instead of hanging


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def seeded(clock: FakeClock) -> MemoryStore:
    return MemoryStore("app", current=make_key(0), environment=Environment.SANDBOX, base_url=SANDBOX_URL, clock=clock)


def expire_lease(clock: FakeClock) -> Callable[[SecretStore, Lease], None]:
    """A memory lease loses its hold by expiring: move the clock past it."""

    def take_over(store: SecretStore, lease: Lease) -> None:
        clock.advance(lease.expires_at - clock() + 1)

    return take_over


class TestMemoryStoreContract(StoreContract):
    """The shared Protocol suite, with `twin` a second handle on the same state (as a second process would be)."""

    @pytest.fixture
    def store(self, seed_key: StoredKey, clock: FakeClock) -> SecretStore:
        return MemoryStore("app", current=seed_key, environment=Environment.SANDBOX, base_url=SANDBOX_URL, clock=clock)

    @pytest.fixture
    def twin(self, store: SecretStore) -> SecretStore:
        assert isinstance(store, MemoryStore)
        return store.twin()

    @pytest.fixture
    def take_over(self, clock: FakeClock) -> Callable[[SecretStore, Lease], None]:
        return expire_lease(clock)


class TestMemoryStoreContractSameHandle(StoreContract):
    """The suite again with the default `twin` (the same handle): the lease must not be re-entrant, like `flock`."""

    @pytest.fixture
    def store(self, seed_key: StoredKey, clock: FakeClock) -> SecretStore:
        return MemoryStore("app", current=seed_key, clock=clock)

    @pytest.fixture
    def take_over(self, clock: FakeClock) -> Callable[[SecretStore, Lease], None]:
        return expire_lease(clock)


# ----------------------------------------------------------------------------------------------- construction


def test_twins_share_state_and_describe_the_same_place(seeded: MemoryStore) -> None:
    twin = seeded.twin("other")
    assert twin.name == "other"
    assert twin.describe() == seeded.describe()
    twin.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    assert_holds(twin.read(Stage.CURRENT), make_key(1), token="tok-1")
    assert snapshot(twin) == snapshot(seeded)
    assert MemoryStore("x", shared=seeded).read(Stage.CURRENT) == seeded.read(Stage.CURRENT)


def test_separate_stores_share_nothing() -> None:
    first, second = MemoryStore("app", current=make_key(0)), MemoryStore("app", current=make_key(0))
    assert first.describe() != second.describe()
    first.put_pending(make_key(1, token="tok-1"))
    assert second.read(Stage.PENDING) is None
    with held_lease(first, "one", LEASE_TTL), held_lease(second, "two", LEASE_TTL):
        pass


def test_shared_handle_refuses_its_own_seed_or_clock(seeded: MemoryStore, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="shared state"):
        MemoryStore("x", shared=seeded, current=make_key(1))
    with pytest.raises(ValueError, match="shared state"):
        MemoryStore("x", shared=seeded, clock=clock)


def test_empty_store_reads_none_and_a_first_promote_leaves_previous_empty() -> None:
    """A deploy target that never held a key: CURRENT is an empty stage, not a missing secret."""
    store = MemoryStore("target")
    assert [store.read(stage) for stage in Stage] == [None, None, None]
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    assert_holds(store.read(Stage.CURRENT), make_key(1), token="tok-1")
    assert store.read(Stage.PREVIOUS) is None
    store.restore_previous("tok-other")  # CURRENT lacks that token: nothing to do
    with pytest.raises(StoreConflict, match="PREVIOUS is empty"):
        store.restore_previous("tok-1")


def test_fallbacks_fill_in_a_seed_without_environment_or_url() -> None:
    bare = StoredKey("pk_hand_0001", Secret("hand-secret-0001"))
    store = MemoryStore("app", current=bare, environment="production", base_url="https://example.test/v1")
    current = store.read(Stage.CURRENT)
    assert current is not None
    assert (current.environment, current.base_url, current.key_id, current.token) == (
        Environment.PRODUCTION,
        "https://example.test/v1",
        None,
        None,
    )
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    store.restore_previous("tok-1")
    restored = store.read(Stage.CURRENT)
    assert restored is not None
    assert restored.environment is Environment.PRODUCTION  # like the env store, the restored key keeps them


def test_put_pending_after_restore_with_the_same_token_and_key_does_nothing(seeded: MemoryStore) -> None:
    """A token still held by PREVIOUS counts too, as in the env store (Secrets Manager's ClientRequestToken)."""
    first = make_key(1, token="tok-1")
    seeded.put_pending(first)
    seeded.promote("tok-1")
    seeded.put_pending(make_key(2, token="tok-2"))
    seeded.promote("tok-2")
    before = snapshot(seeded)
    seeded.put_pending(first)  # tok-1 is PREVIOUS now
    assert snapshot(seeded) == before
    with pytest.raises(StoreConflict, match="tok-1 already stages apk_contract0001"):
        seeded.put_pending(make_key(3, token="tok-1"))


def test_promote_warns_when_it_drops_an_uncleared_previous(
    seeded: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    seeded.put_pending(make_key(2, token="tok-2"))
    with caplog.at_level(logging.WARNING, logger="rotator.store.memory"):
        seeded.promote("tok-2")
    assert any(
        "PREVIOUS apk_contract0000" in r.getMessage() and "rotator sweep" in r.getMessage() for r in caplog.records
    )
    assert_holds(seeded.read(Stage.PREVIOUS), make_key(1))


def test_put_pending_needs_a_token_and_a_secret(seeded: MemoryStore) -> None:
    before = snapshot(seeded)
    with pytest.raises(ValueError, match="token"):
        seeded.put_pending(make_key(1))
    with pytest.raises(StoreError, match="empty"):
        seeded.put_pending(StoredKey("pk_empty_0001", Secret(""), token="tok-1"))
    assert snapshot(seeded) == before


def test_record_is_a_copy_and_must_be_json(seeded: MemoryStore) -> None:
    record: dict[str, Any] = {"phase": "started", "steps": [1]}
    with held_lease(seeded, "me", LEASE_TTL) as lease:
        seeded.write_record(record, lease=lease, version=0)
        record["steps"].append(2)
        got = seeded.read_record().record
        assert got == {"phase": "started", "steps": [1]}
        assert got is not None
        got["phase"] = "mutated by the caller"
        assert seeded.read_record() == VersionedRecord({"phase": "started", "steps": [1]}, 1)
        for bad in ({"when": object()}, {"nan": float("nan")}):
            with pytest.raises(StoreError, match="JSON"):
                seeded.write_record(bad, lease=lease, version=1)
    assert seeded.read_record() == VersionedRecord({"phase": "started", "steps": [1]}, 1)


def test_messages_and_logs_never_show_a_secret(seeded: MemoryStore, caplog: pytest.LogCaptureFixture) -> None:
    """The autouse leak guard fails the test if a secret reaches any log record or output; this makes it busy."""
    with caplog.at_level(logging.DEBUG, logger="rotator.store.memory"):
        seeded.put_pending(make_key(1, token="tok-1"))
        seeded.put_pending(make_key(2, token="tok-2"))  # replaces the abandoned tok-1 with a warning
        seeded.put_pending(make_key(1, token="tok-1"))
        seeded.promote("tok-1")
        seeded.put_pending(make_key(1, token="tok-1"))  # already CURRENT: a no-op
        refused: list[Callable[[], object]] = [
            lambda: seeded.promote("tok-9"),
            lambda: seeded.put_pending(make_key(3, token="tok-1")),
        ]
        for call in refused:
            with pytest.raises(StoreConflict) as caught:
                call()
            assert "nothing was changed" in str(caught.value)
        seeded.restore_previous("tok-1")
        seeded.put_pending(make_key(1, token="tok-1"))
        seeded.restore_previous("tok-1")  # drops the never-promoted PENDING
        seeded.clear_previous("tok-1")
    assert len(caplog.records) >= 8
    text = repr(seeded) + seeded.describe() + "".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for n in range(4):
        assert make_key(n).api_secret.reveal() not in text


# ----------------------------------------------------------------------------------------------- the lease


def test_a_lease_held_elsewhere_names_the_holder_and_changes_nothing(seeded: MemoryStore, clock: FakeClock) -> None:
    twin = seeded.twin("cron")
    with held_lease(twin, "nightly-cron", 60):
        clock.advance(12)
        before = snapshot(seeded)
        with pytest.raises(RotationInProgress) as caught:
            seeded.acquire("me", LEASE_TTL)
        assert snapshot(seeded) == before
    message = str(caught.value)
    assert "nightly-cron, handle 'cron' in thread 'MainThread', held for 12s, lease expires in 48s" in message
    assert "nothing was changed" in message
    assert "rotator resume" in message
    assert seeded.describe() in message


def test_an_expired_lease_frees_a_dead_holder(
    seeded: MemoryStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    crashed = seeded.twin("crashed")
    dead = crashed.acquire("crashed-run", 30)  # never released: the holder "died" holding it
    clock.advance(29.9)
    with pytest.raises(RotationInProgress, match="crashed-run"):
        seeded.acquire("me", LEASE_TTL)
    clock.advance(0.1)  # exactly ttl_seconds after it was taken
    with caplog.at_level(logging.WARNING, logger="rotator.store.memory"), held_lease(seeded, "me", LEASE_TTL) as mine:
        assert mine.fence > dead.fence
        seeded.write_record({"owner": "me"}, lease=mine, version=0)
        # The old holder waking up and releasing must not free the lease it no longer has.
        crashed.release(dead)
        with pytest.raises(RotationInProgress, match="me, handle 'app'"):
            seeded.twin().acquire("third", LEASE_TTL)
    messages = [r.getMessage() for r in caplog.records]
    assert any("took over the rotation lease" in m and "crashed-run" in m for m in messages), messages
    assert any("had expired" in m and "taken over by me" in m for m in messages), messages
    with held_lease(seeded.twin(), "third", LEASE_TTL):
        assert seeded.read_record().record == {"owner": "me"}


def test_a_lease_that_expires_mid_rotation_is_refused_once_taken_over(seeded: MemoryStore, clock: FakeClock) -> None:
    """A runner sleeps through a long wait without renewing; another takes over. The sleeper's next write and its
    renewal are refused, and nothing it holds any more can change the record."""
    sleeper = seeded.acquire("sleeper", 60)
    version = seeded.write_record({"phase": "started", "by": "sleeper"}, lease=sleeper, version=0)
    clock.advance(61)
    with pytest.raises(LeaseLost, match="expired"):
        seeded.write_record({"phase": "deployed", "by": "sleeper"}, lease=sleeper, version=version)
    successor = seeded.twin("cron").acquire("successor", 60)
    with pytest.raises(LeaseLost, match="taken over"):
        seeded.renew(sleeper, 60)
    with pytest.raises(LeaseLost, match="taken over"):
        seeded.write_record({"phase": "deployed", "by": "sleeper"}, lease=sleeper, version=version)
    assert seeded.read_record() == VersionedRecord({"phase": "started", "by": "sleeper"}, 1)
    assert seeded.write_record({"phase": "started", "by": "successor"}, lease=successor, version=1) == 2


def test_an_expired_lease_nobody_took_over_can_be_renewed(seeded: MemoryStore, clock: FakeClock) -> None:
    lease = seeded.acquire("slow", 10)
    clock.advance(11)
    renewed = seeded.renew(lease, 10)
    assert renewed.fence == lease.fence
    assert seeded.write_record({"phase": "started"}, lease=renewed, version=0) == 1


def test_each_acquisition_has_its_own_ttl(seeded: MemoryStore, clock: FakeClock) -> None:
    with held_lease(seeded, "short", 5):
        clock.advance(4)
        with pytest.raises(RotationInProgress, match=r"lease expires in 1s"):
            seeded.twin().acquire("x", 600)
    with held_lease(seeded, "long", 600):
        clock.advance(599)
        with pytest.raises(RotationInProgress):
            seeded.twin().acquire("x", 5)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_ttl_must_be_a_positive_finite_number(seeded: MemoryStore, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        seeded.acquire("me", ttl)


# ----------------------------------------------------------------------------------------------- threads


WON = "won"


def race(contender: Callable[[int], list[str]]) -> list[list[str]]:
    """Run `contender(i)` in THREADS threads at once and collect what each saw: WON, or the messages of refusals.

    Threads only report; the asserts run here in the main thread, where pytest sees them.
    """
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(contender, range(THREADS), timeout=WAIT * 3))


@pytest.mark.parametrize("handles", ["one handle per thread", "one handle for all threads"])
def test_threads_racing_for_the_lock_have_exactly_one_winner_each_round(seeded: MemoryStore, handles: str) -> None:
    stores = [seeded.twin(f"thread-{i}") if handles.startswith("one handle per") else seeded for i in range(THREADS)]
    for round_no in range(ROUNDS):
        start = threading.Barrier(THREADS, timeout=WAIT)
        everyone_tried = threading.Barrier(THREADS, timeout=WAIT)

        def contender(
            i: int,
            round_no: int = round_no,
            start: threading.Barrier = start,
            tried: threading.Barrier = everyone_tried,
        ) -> list[str]:
            start.wait()
            try:
                with held_lease(stores[i], f"round-{round_no}-thread-{i}", LEASE_TTL) as lease:
                    stores[i].write_record({"round": round_no, "winner": i}, lease=lease, version=round_no)
                    tried.wait()  # hold the lease until every other thread has tried and failed
                    return [WON]
            except RotationInProgress as exc:
                tried.wait()
                return [str(exc)]

        outcomes = [outcome for (outcome,) in race(contender)]
        assert outcomes.count(WON) == 1, f"round {round_no}: {outcomes.count(WON)} winners"
        winner = outcomes.index(WON)
        assert seeded.read_record() == VersionedRecord({"round": round_no, "winner": winner}, round_no + 1)
        for refusal in (outcome for outcome in outcomes if outcome != WON):
            assert f"round-{round_no}-thread-{winner}" in refusal
            assert "nothing was changed" in refusal
    with held_lease(seeded, "after the races", LEASE_TTL):  # every winner released it
        pass


def test_threads_staging_one_token_with_different_keys_have_exactly_one_winner(seeded: MemoryStore) -> None:
    for round_no in range(ROUNDS):
        token = f"tok-{round_no}"
        start = threading.Barrier(THREADS, timeout=WAIT)

        def contender(i: int, token: str = token, start: threading.Barrier = start) -> list[str]:
            start.wait()
            try:
                seeded.twin().put_pending(make_key(100 + i, token=token))
            except StoreConflict as exc:
                return [str(exc)]
            return [WON]

        outcomes = [outcome for (outcome,) in race(contender)]
        assert outcomes.count(WON) == 1, f"round {round_no}: {outcomes.count(WON)} winners"
        assert all(f"token {token} already stages" in o for o in outcomes if o != WON)
        assert_holds(seeded.read(Stage.PENDING), make_key(100 + outcomes.index(WON)), token=token)


def test_threads_promoting_and_restoring_keep_the_stages_consistent(seeded: MemoryStore) -> None:
    """Threads run whole rotations and rollbacks on their own tokens at once; only documented refusals may happen,
    and the state left behind must be one the contract can keep working from."""
    start = threading.Barrier(THREADS, timeout=WAIT)

    def rotate(i: int) -> list[str]:
        start.wait()
        store, refusals = seeded.twin(), []
        for n in range(20):
            token = f"tok-{i}-{n}"
            store.put_pending(make_key(1000 + i * 100 + n, token=token))
            try:
                store.promote(token)
                store.restore_previous(token)
            except StoreConflict as exc:
                refusals.append(str(exc))
        return refusals

    refusals = [refusal for thread in race(rotate) for refusal in thread]
    for refusal in refusals:
        # Another thread replaced our PENDING before we promoted it, or another thread's rollback brought our key
        # back as CURRENT with PREVIOUS empty: both are refusals the Protocol documents, and both change nothing.
        assert "neither PENDING nor CURRENT" in refusal or "PREVIOUS is empty" in refusal, refusal
    current, pending, previous = (seeded.read(stage) for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS))
    assert current is not None
    assert previous is None or not previous.same_key(current)
    assert pending is None or not pending.same_key(current)
    seeded.put_pending(make_key(9999, token="tok-final"))
    seeded.promote("tok-final")
    assert_holds(seeded.read(Stage.PREVIOUS), current)
    seeded.restore_previous("tok-final")
    assert_holds(seeded.read(Stage.CURRENT), current)
