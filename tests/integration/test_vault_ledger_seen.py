"""The Vault ledger builds a record write, a lease taken and a release on the stage document as it last saw it (one
request instead of a read and a write), and decides again on a fresh read when that version is gone (issue 18).

Why these cases: the shortcut is safe only because a check-and-set write naming the version seen fails once anyone
wrote since. So a write after someone else's change must neither be lost nor reported as a conflict it is not (an
operator's edit that leaves the lease and the record alone), and a runner whose lease was taken over must still be
refused. Real OpenBao; the other writer is the root token, as an operator would be.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends.vault.store import STATE_PREFIX
from rotator.core.errors import LeaseLost
from tests.integration.test_vault_store import Clock, MakeStore, app_path, clock, make_store, narrow_token, seed
from tests.openbao import OpenBao
from tests.store_contract import LEASE_TTL, make_key

__all__ = ["app_path", "clock", "make_store", "narrow_token"]  # fixtures shared with test_vault_store.py


def document(openbao: OpenBao, path: str) -> tuple[dict[str, Any], int]:
    answer = openbao.client().secrets.kv.v2.read_secret_version(
        path=STATE_PREFIX + path, mount_point="secret", raise_on_deleted_version=True
    )
    return answer["data"]["data"], int(answer["data"]["metadata"]["version"])


def operator_moves_the_holder(openbao: OpenBao, path: str) -> int:
    """A check-and-set edit of the stage document that leaves the lease's fence, owner and expiry and the record as
    they are; returns the new version."""
    data, version = document(openbao, path)
    data["lease"]["holder"] = {**(data["lease"]["holder"] or {}), "host": "elsewhere.example"}
    answer = openbao.client().secrets.kv.v2.create_or_update_secret(
        path=STATE_PREFIX + path, secret=data, cas=version, mount_point="secret"
    )
    return int(answer["data"]["version"])


def test_a_record_write_after_an_edit_by_someone_else_reads_again_and_is_written(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store = make_store()
    lease = store.acquire("runner-a", LEASE_TTL)
    read = store.read_record()
    edited = operator_moves_the_holder(openbao, app_path)
    version = store.write_record({"phase": "started"}, lease=lease, version=read.version)
    data, at = document(openbao, app_path)
    assert at == edited + 1, "the record write was not made on the operator's version"
    assert data["record"] == {"phase": "started"}
    assert data["record_version"] == version
    assert data["lease"]["holder"]["host"] == "elsewhere.example", "the operator's edit was lost"
    store.release(lease)


def test_a_release_after_an_edit_by_someone_else_still_releases(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store = make_store()
    lease = store.acquire("runner-a", LEASE_TTL)
    operator_moves_the_holder(openbao, app_path)
    store.release(lease)
    data, _ = document(openbao, app_path)
    assert data["lease"]["owner"] is None
    assert data["lease"]["fence"] == lease.fence
    assert store.acquire("runner-b", LEASE_TTL).fence == lease.fence + 1


def test_a_record_write_under_a_lease_taken_over_is_refused_though_the_runner_saw_it_held(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    seed(openbao, app_path, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("runner-a", LEASE_TTL)
    read = stale.read_record()  # what runner A saw last: its own lease, held
    clock.now = lease.expires_at + 1
    taken = fresh.acquire("runner-b", LEASE_TTL)
    with pytest.raises(LeaseLost):
        stale.write_record({"phase": "started"}, lease=lease, version=read.version)
    data, _ = document(openbao, app_path)
    assert data["lease"]["fence"] == taken.fence
    assert data["record"] is None, "the stale runner's record was written"
    fresh.release(taken)
