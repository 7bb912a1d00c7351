"""The `SecretStore` contract as a reusable test suite: every store type must pass it unchanged.

The engine talks to every store through the same few calls and relies on their promises (idempotent by token,
conflicts instead of silent overwrites, a lock that excludes). Each promise in `backends/base.py` is a test method
here, so a new store proves it keeps them by subclassing::

    class TestMyStoreContract(StoreContract):
        @pytest.fixture
        def store(self, seed_key: StoredKey) -> SecretStore:
            ...  # a fresh store whose CURRENT holds `seed_key`, nothing else

        @pytest.fixture
        def twin(self, store: SecretStore) -> SecretStore:
            ...  # optional: a second, independent handle on the same secret (default: `store` itself)

        @pytest.fixture
        def take_over(self) -> Callable[[SecretStore, Lease], None]:
            ...  # make `lease` of `store` lose its hold as a real one can (expiry, a lost lock), without releasing it

The tests only use the Protocols' calls (`SecretStore` and `Ledger`), except `take_over`, which each store provides
to make a lease lose its hold the way it really can in that store. Secrets in the keys below
contain quote, hash, equals, dollar and space characters, so every store also proves it round-trips them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backends.base import SecretStore
from backends.ledger import Lease, Ledger, VersionedRecord, held_lease
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict
from rotator.core.model import DEFAULT_BASE_URLS, Environment, Stage, StoredKey
from rotator.core.secret import Secret

LEASE_TTL = 30.0


def tok(name: int | str) -> str:
    """A rotation token of 32 characters: what the rotator makes, and the shortest Secrets Manager version id."""
    return f"tok-{name}-".ljust(32, "0")


def make_key(n: int, *, token: str | None = None, environment: Environment = Environment.SANDBOX) -> StoredKey:
    """A distinct test key; `n` picks the pair. The secret mixes characters that quoting tends to break."""
    return StoredKey(
        api_key=f"pk_contract_{n:04d}",
        api_secret=Secret(f"sk-{n:04d} #'\"= $x contract"),
        key_id=f"apk_contract{n:04d}",
        environment=environment,
        base_url=DEFAULT_BASE_URLS[environment],
        token=token,
    )


def assert_holds(actual: StoredKey | None, expected: StoredKey, *, token: str | None = None) -> None:
    """`actual` is the same pair (and key id) as `expected`; with `token`, also carries that token."""
    assert actual is not None, f"expected {expected.label}, found an empty stage"
    assert actual.same_key(expected), f"expected {expected.label}, found {actual.label}"
    assert actual.key_id == expected.key_id
    if token is not None:
        assert actual.token == token


def snapshot(store: SecretStore) -> tuple[Any, ...]:
    """Everything the Protocols can see, to prove that a refused call changed nothing (the record only in a store
    that is a ledger: a deploy-target-only store such as Doppler keeps none)."""
    stages = []
    for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
        key = store.read(stage)
        stages.append(None if key is None else (key.api_key, key.api_secret, key.key_id, key.token))
    return (*stages, store.read_record() if isinstance(store, Ledger) else None)


def ledger(store: SecretStore) -> Ledger:
    """The store as the credential's ledger (every built-in store is one)."""
    assert isinstance(store, Ledger), f"{store!r} does not implement backends.ledger.Ledger"
    return store


class StageContract:
    """Promises of `backends.base.SecretStore`, tested against the `store` fixture a subclass provides.

    A store that can only be a deploy target (`also_deploy_to`), never a credential's ledger (Doppler: no
    compare-and-set), subclasses this; every other store subclasses `StoreContract`, which adds the ledger's promises.
    """

    @pytest.fixture
    def seed_key(self) -> StoredKey:
        """The key the `store` fixture must hold as CURRENT (like a credential before its first rotation)."""
        return make_key(0)

    @pytest.fixture
    def store(self, seed_key: StoredKey) -> SecretStore:
        """Subclasses override: a fresh store holding `seed_key` as CURRENT, with no PENDING, PREVIOUS or record."""
        raise NotImplementedError("a StoreContract subclass must provide the `store` fixture")

    @pytest.fixture
    def twin(self, store: SecretStore) -> SecretStore:
        """A second handle on the same secret, as another process would have; override to make it independent."""
        return store

    @pytest.fixture
    def take_over(self) -> Callable[[SecretStore, Lease], None]:
        """Subclasses override: make `lease` lose its hold (it expires, or its lock is lost) without releasing it."""
        raise NotImplementedError("a StoreContract subclass must provide the `take_over` fixture")

    # ------------------------------------------------------------------------------------------- basics

    def test_implements_the_protocol(self, store: SecretStore, seed_key: StoredKey) -> None:
        assert isinstance(store, SecretStore)
        description = store.describe()
        assert description
        assert seed_key.api_secret.reveal() not in description

    def test_fresh_store_holds_only_current(self, store: SecretStore, seed_key: StoredKey) -> None:
        assert_holds(store.read(Stage.CURRENT), seed_key)
        assert store.read(Stage.PENDING) is None
        assert store.read(Stage.PREVIOUS) is None
        if isinstance(store, Ledger):
            assert store.read_record() == VersionedRecord(None, 0)

    # ------------------------------------------------------------------------------------------- put_pending

    def test_put_pending_is_read_back_with_its_token(self, store: SecretStore, seed_key: StoredKey) -> None:
        new = make_key(1, token=tok(1))
        store.put_pending(new)
        assert_holds(store.read(Stage.PENDING), new, token=tok(1))
        assert_holds(store.read(Stage.CURRENT), seed_key)
        assert store.read(Stage.PREVIOUS) is None

    def test_put_pending_again_with_same_token_and_key_does_nothing(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        before = snapshot(store)
        store.put_pending(make_key(1, token=tok(1)))
        assert snapshot(store) == before

    def test_put_pending_same_token_other_key_conflicts(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        before = snapshot(store)
        intruder = make_key(2, token=tok(1))
        with pytest.raises(StoreConflict) as caught:
            store.put_pending(intruder)
        assert intruder.api_secret.reveal() not in str(caught.value)
        assert snapshot(store) == before

    def test_put_pending_other_token_replaces_abandoned_pending(self, store: SecretStore, seed_key: StoredKey) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        replacement = make_key(2, token=tok(2))
        store.put_pending(replacement)
        assert_holds(store.read(Stage.PENDING), replacement, token=tok(2))
        assert_holds(store.read(Stage.CURRENT), seed_key)

    def test_put_pending_after_promote_with_same_token_does_nothing(self, store: SecretStore) -> None:
        """A resumed deploy stages and promotes every target again; a target already promoted must stay so."""
        new = make_key(1, token=tok(1))
        store.put_pending(new)
        store.promote(tok(1))
        before = snapshot(store)
        store.put_pending(new)
        store.promote(tok(1))
        assert snapshot(store) == before
        assert store.read(Stage.PENDING) is None

    # ------------------------------------------------------------------------------------------- promote

    def test_promote_moves_pending_to_current_and_current_to_previous(
        self, store: SecretStore, seed_key: StoredKey
    ) -> None:
        new = make_key(1, token=tok(1))
        store.put_pending(new)
        store.promote(tok(1))
        assert_holds(store.read(Stage.CURRENT), new, token=tok(1))
        assert_holds(store.read(Stage.PREVIOUS), seed_key)
        assert store.read(Stage.PENDING) is None

    def test_promote_twice_is_a_no_op(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        before = snapshot(store)
        store.promote(tok(1))
        assert snapshot(store) == before

    def test_promote_unknown_token_conflicts_and_changes_nothing(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        before = snapshot(store)
        with pytest.raises(StoreConflict):
            store.promote(tok("unknown"))
        assert snapshot(store) == before

    def test_promote_of_a_replaced_pending_conflicts(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.put_pending(make_key(2, token=tok(2)))
        before = snapshot(store)
        with pytest.raises(StoreConflict):
            store.promote(tok(1))
        assert snapshot(store) == before

    def test_second_rotation_after_clear(self, store: SecretStore) -> None:
        first, second = make_key(1, token=tok(1)), make_key(2, token=tok(2))
        store.put_pending(first)
        store.promote(tok(1))
        store.clear_previous(tok(1))
        store.put_pending(second)
        store.promote(tok(2))
        assert_holds(store.read(Stage.CURRENT), second, token=tok(2))
        assert_holds(store.read(Stage.PREVIOUS), first)
        assert store.read(Stage.PENDING) is None

    # ------------------------------------------------------------------------------------------- restore_previous

    def test_restore_previous_after_promote(self, store: SecretStore, seed_key: StoredKey) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        store.restore_previous(tok(1))
        assert_holds(store.read(Stage.CURRENT), seed_key)
        assert store.read(Stage.PREVIOUS) is None
        assert store.read(Stage.PENDING) is None

    def test_restore_previous_twice_is_a_no_op(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        store.restore_previous(tok(1))
        before = snapshot(store)
        store.restore_previous(tok(1))
        assert snapshot(store) == before

    def test_restore_previous_when_current_lacks_token_does_nothing(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        before = snapshot(store)
        store.restore_previous(tok("other"))
        assert snapshot(store) == before

    def test_restore_previous_before_promote_leaves_current_and_previous(
        self, store: SecretStore, seed_key: StoredKey
    ) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.restore_previous(tok(1))
        assert_holds(store.read(Stage.CURRENT), seed_key)
        assert store.read(Stage.PREVIOUS) is None
        assert store.read(Stage.PENDING) is None, "a staged, never promoted key of the rolled-back token is dropped"

    def test_restore_previous_keeps_a_pending_of_another_token(self, store: SecretStore) -> None:
        other = make_key(2, token=tok(2))
        store.put_pending(other)
        store.restore_previous(tok(1))
        assert_holds(store.read(Stage.PENDING), other, token=tok(2))

    # ------------------------------------------------------------------------------------------- clear_previous

    def test_clear_previous_forgets_previous_only(self, store: SecretStore) -> None:
        new = make_key(1, token=tok(1))
        store.put_pending(new)
        store.promote(tok(1))
        store.clear_previous(tok(1))
        assert store.read(Stage.PREVIOUS) is None
        assert_holds(store.read(Stage.CURRENT), new, token=tok(1))

    def test_clear_previous_when_empty_does_nothing(self, store: SecretStore) -> None:
        before = snapshot(store)
        store.clear_previous(tok(1))
        store.clear_previous(tok(1))
        assert snapshot(store) == before

    def test_clear_previous_of_another_rotation_does_nothing(self, store: SecretStore) -> None:
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        before = snapshot(store)
        cleared = store.clear_previous(tok("older"))
        assert cleared.cleared is None
        assert snapshot(store) == before

    def test_mutating_calls_say_what_they_changed(self, store: SecretStore, seed_key: StoredKey) -> None:
        new = make_key(1, token=tok(1))
        assert store.put_pending(new).changed
        assert not store.put_pending(new).changed
        promotion = store.promote(tok(1))
        assert promotion.changed
        assert promotion.previous is not None
        assert promotion.previous.same_key(seed_key)
        assert not store.promote(tok(1)).changed
        rollback = store.restore_previous(tok(1))
        assert rollback.restored is not None
        assert rollback.restored.same_key(seed_key)
        assert not store.restore_previous(tok(1)).changed


class StoreContract(StageContract):
    """`StageContract`, plus the promises of `backends.ledger.Ledger`: every store that can be a primary."""

    # ------------------------------------------------------------------------------------------- ledger: record

    def test_record_round_trip_with_versions(self, store: SecretStore) -> None:
        book = ledger(store)
        record: dict[str, Any] = {"token": tok(1), "phase": "started", "steps": [1, 2.5, None, True], "nested": {}}
        with held_lease(book, "contract", LEASE_TTL) as lease:
            assert book.write_record(record, lease=lease, version=0) == 1
            assert book.read_record() == VersionedRecord(record, 1)
            assert book.write_record({"token": tok(1), "phase": "completed"}, lease=lease, version=1) == 2
        assert book.read_record() == VersionedRecord({"token": tok(1), "phase": "completed"}, 2)

    def test_record_survives_stage_moves(self, store: SecretStore) -> None:
        book = ledger(store)
        record = {"token": tok(1), "phase": "pending_stored"}
        with held_lease(book, "contract", LEASE_TTL) as lease:
            book.write_record(record, lease=lease, version=0)
        store.put_pending(make_key(1, token=tok(1)))
        store.promote(tok(1))
        store.restore_previous(tok(1))
        store.clear_previous(tok(1))
        assert book.read_record() == VersionedRecord(record, 1)

    def test_a_write_naming_an_old_version_conflicts_and_changes_nothing(self, store: SecretStore) -> None:
        book = ledger(store)
        with held_lease(book, "contract", LEASE_TTL) as lease:
            book.write_record({"phase": "started"}, lease=lease, version=0)
            before = snapshot(store)
            with pytest.raises(StoreConflict):
                book.write_record({"phase": "stale"}, lease=lease, version=0)
            assert snapshot(store) == before

    # ------------------------------------------------------------------------------------------- ledger: lease

    def test_a_lease_excludes_a_second_holder(self, store: SecretStore, twin: SecretStore) -> None:
        with held_lease(ledger(store), "first", LEASE_TTL) as lease:
            ledger(store).write_record({"owner": "first"}, lease=lease, version=0)
            with pytest.raises(RotationInProgress):
                ledger(twin).acquire("second", LEASE_TTL)
            assert ledger(store).read_record().record == {"owner": "first"}

    def test_release_lets_the_next_holder_in_with_a_higher_fence(self, store: SecretStore, twin: SecretStore) -> None:
        first = ledger(store).acquire("first", LEASE_TTL)
        ledger(store).release(first)
        second = ledger(twin).acquire("second", LEASE_TTL)
        try:
            assert second.fence > first.fence
        finally:
            ledger(twin).release(second)

    def test_a_lease_is_released_when_the_block_raises(self, store: SecretStore, twin: SecretStore) -> None:
        with pytest.raises(KeyError), held_lease(ledger(store), "first", LEASE_TTL):
            raise KeyError("boom")
        with held_lease(ledger(twin), "second", LEASE_TTL):
            pass

    def test_a_released_lease_can_neither_write_nor_renew(self, store: SecretStore) -> None:
        book = ledger(store)
        lease = book.acquire("gone", LEASE_TTL)
        book.release(lease)
        before = snapshot(store)
        with pytest.raises(LeaseLost):
            book.write_record({"phase": "stale"}, lease=lease, version=0)
        with pytest.raises(LeaseLost):
            book.renew(lease, LEASE_TTL)
        assert snapshot(store) == before

    def test_renew_keeps_the_lease_and_its_fence(self, store: SecretStore) -> None:
        book = ledger(store)
        with held_lease(book, "long run", LEASE_TTL) as lease:
            renewed = book.renew(lease, LEASE_TTL * 2)
            assert renewed.fence == lease.fence
            assert renewed.expires_at >= lease.expires_at
            assert book.write_record({"phase": "started"}, lease=renewed, version=0) == 1

    def test_a_lease_taken_over_can_no_longer_write(self, store: SecretStore, twin: SecretStore, take_over) -> None:
        """The stale holder's write is refused, and the record, the stages and the new holder's lease are untouched."""
        stale = ledger(store).acquire("stale runner", LEASE_TTL)
        ledger(store).write_record({"owner": "stale", "phase": "started"}, lease=stale, version=0)
        take_over(store, stale)
        fresh = ledger(twin).acquire("new holder", LEASE_TTL)
        try:
            assert fresh.fence > stale.fence
            before = snapshot(store)
            with pytest.raises(LeaseLost):
                ledger(store).write_record({"owner": "stale", "phase": "deployed"}, lease=stale, version=1)
            with pytest.raises(LeaseLost):
                ledger(store).renew(stale, LEASE_TTL)
            assert snapshot(store) == before
            assert ledger(twin).write_record({"owner": "new", "phase": "started"}, lease=fresh, version=1) == 2
        finally:
            ledger(store).release(stale)  # a late release by the stale runner must not free the new holder's lease
            with pytest.raises(RotationInProgress):
                ledger(store).acquire("third", LEASE_TTL)
            ledger(twin).release(fresh)
