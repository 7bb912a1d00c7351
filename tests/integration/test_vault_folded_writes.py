"""The Vault store's writes that carry two things at once, and its reads that serve one check (issue 18).

Why these cases: a Vault rotation's requests were mostly its ledger's, and three of them were a second request for
what the first already did. The PENDING key and the record that says it is stored now go in one check-and-set write
of the stage document; the last record of a rotation releases the lease in its own write; a holdings check reads the
path applications read once per store, not once per stage. Each is safe only if it checks what the two requests
checked: a record that `write_record` would refuse is never carried (the key is stored and the record's own write is
refused, as before), a released lease is free at once for the next runner, and the stages read at once are those
`read` gives one at a time, a crashed promote's hidden CURRENT included. Real OpenBao; the other writer is the root
token, as an operator would be.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends.base import ReadAtOnce
from backends.ledger import DocumentLedger
from backends.vault.store import STATE_PREFIX
from rotator.core.errors import LeaseLost, StoreNotFound
from rotator.core.model import Stage
from tests.integration.test_vault_store import Clock, MakeStore, app_path, clock, make_store, narrow_token, seed
from tests.openbao import OpenBao
from tests.store_contract import LEASE_TTL, make_key

__all__ = ["app_path", "clock", "make_store", "narrow_token"]  # fixtures shared with test_vault_store.py


def document(openbao: OpenBao, path: str) -> tuple[dict[str, Any], int]:
    answer = openbao.client().secrets.kv.v2.read_secret_version(
        path=STATE_PREFIX + path, mount_point="secret", raise_on_deleted_version=True
    )
    return answer["data"]["data"], int(answer["data"]["metadata"]["version"])


def test_the_pending_key_and_the_record_that_says_so_are_one_write(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store = make_store()
    assert isinstance(store, DocumentLedger)
    lease = store.acquire("runner-a", LEASE_TTL)
    read = store.read_record()
    _, before = document(openbao, app_path)
    store.carry_record({"phase": "pending_stored"}, lease=lease, version=read.version)
    store.put_pending(make_key(1, token="t1"))
    assert store.carried() == read.version + 1
    data, after = document(openbao, app_path)
    assert after == before + 1, "the key and the record took more than one write"
    assert data["pending"]["key_id"] == make_key(1).key_id
    assert data["record"] == {"phase": "pending_stored"}
    assert data["record_version"] == read.version + 1
    assert store.carried() is None, "a carry outlived the change it was for"
    store.release(lease)


def test_a_record_the_lease_no_longer_allows_is_not_carried_and_its_own_write_is_refused(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    """The lease ran out (nobody took it over yet): the key is stored, as before, and the record is not."""
    seed(openbao, app_path, make_key(0))
    store = make_store()
    lease = store.acquire("runner-a", LEASE_TTL)
    read = store.read_record()
    store.carry_record({"phase": "pending_stored"}, lease=lease, version=read.version)
    clock.now = lease.expires_at + 1
    store.put_pending(make_key(1, token="t1"))
    assert store.carried() is None
    data, _ = document(openbao, app_path)
    assert data["pending"]["key_id"] == make_key(1).key_id, "the key a runner minted must still be stored (I3)"
    assert data["record"] is None, "a record the lease no longer allows was written"
    with pytest.raises(LeaseLost):
        store.write_record({"phase": "pending_stored"}, lease=lease, version=read.version)


def test_a_record_built_on_an_older_record_is_not_carried(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store = make_store()
    lease = store.acquire("runner-a", LEASE_TTL)
    read = store.read_record()
    store.write_record({"phase": "started"}, lease=lease, version=read.version)
    store.carry_record({"phase": "pending_stored"}, lease=lease, version=read.version)  # the version before that
    store.put_pending(make_key(1, token="t1"))
    assert store.carried() is None
    data, _ = document(openbao, app_path)
    assert data["record"] == {"phase": "started"}
    store.release(lease)


def test_the_last_record_releases_the_lease_in_the_same_write(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store, other = make_store(), make_store()
    lease = store.acquire("runner-a", LEASE_TTL)
    read = store.read_record()
    _, before = document(openbao, app_path)
    version = store.write_last_record({"phase": "completed"}, lease=lease, version=read.version)
    data, after = document(openbao, app_path)
    assert after == before + 1
    assert data["record"] == {"phase": "completed"}
    assert data["record_version"] == version
    assert data["lease"]["owner"] is None
    assert data["lease"]["fence"] == lease.fence, "the fencing number must stay for the next lease"
    store.release(lease)  # nothing left to release: no write
    assert document(openbao, app_path)[1] == after
    assert other.acquire("runner-b", LEASE_TTL).fence == lease.fence + 1


def test_a_last_record_under_a_lease_taken_over_is_refused_and_releases_nothing(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    seed(openbao, app_path, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("runner-a", LEASE_TTL)
    read = stale.read_record()
    clock.now = lease.expires_at + 1
    taken = fresh.acquire("runner-b", LEASE_TTL)
    with pytest.raises(LeaseLost):
        stale.write_last_record({"phase": "completed"}, lease=lease, version=read.version)
    data, _ = document(openbao, app_path)
    assert data["lease"]["owner"] == "runner-b"
    assert data["lease"]["fence"] == taken.fence
    assert data["record"] is None


def stages_one_by_one(store: Any) -> dict[Stage, Any]:
    found = {}
    for stage in Stage:
        try:
            key = store.read(stage)
        except StoreNotFound:
            continue
        if key is not None:
            found[stage] = key
    return found


def test_the_stages_read_at_once_are_those_read_one_by_one_in_every_state(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    store = make_store()
    assert isinstance(store, ReadAtOnce)
    assert store.read_stages() == stages_one_by_one(store) == {}  # nothing anywhere yet
    seed(openbao, app_path, make_key(0))
    states = [store.read_stages()]
    assert states[0] == stages_one_by_one(store)
    store.put_pending(make_key(1, token="t1"))
    states.append(store.read_stages())
    assert states[-1] == stages_one_by_one(store)
    store.promote("t1")
    states.append(store.read_stages())
    assert states[-1] == stages_one_by_one(store)
    # A promote that crashed between its two writes: the document says CURRENT, applications still read PREVIOUS;
    # the hidden CURRENT is reported as PENDING (so a resume finds it by token), from the same one reading.
    seed(openbao, app_path, make_key(0))
    states.append(store.read_stages())
    assert states[-1] == stages_one_by_one(store)
    assert states[-1][Stage.PENDING].token == "t1"
    assert states[-1][Stage.CURRENT].same_key(make_key(0))
    assert [sorted(state) for state in states] == [
        [Stage.CURRENT],
        [Stage.CURRENT, Stage.PENDING],
        [Stage.CURRENT, Stage.PREVIOUS],
        [Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS],
    ]
