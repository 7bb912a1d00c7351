"""The path applications read in Vault is fenced by Vault itself, not only by the runner's clock (issue 17).

A runner (A) checks, right before it writes the path, that the stage document still names its key CURRENT under its
lease; then its request leaves. Frozen in between (the check passed, the request not yet sent), it is past every check
the runner can make. Meanwhile another runner (B) takes the lease over and rolls back: the stage document's CURRENT is
the old key again, and the path, which still showed the old key, needs no change. B still writes it (a new version with
the same fields), so that A's late check-and-set names a version that is gone, and Vault refuses it: the path never
shows the key B's rollback revoked (I1). Real OpenBao; the freeze is played in-process at the very write.
"""

from __future__ import annotations

from typing import Any

import pytest

from rotator.core.errors import LeaseLost, StoreConflict
from tests.integration.test_vault_store import (
    Clock,
    MakeStore,
    app_path,
    before_writes,
    clock,
    latest,
    make_store,
    narrow_token,
    seed,
)
from tests.openbao import OpenBao
from tests.store_contract import LEASE_TTL, make_key

__all__ = ["app_path", "clock", "make_store", "narrow_token"]  # fixtures shared with test_vault_store.py


def test_a_path_write_frozen_after_its_checks_is_refused_by_vault_once_another_runner_rolled_back(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    seed(openbao, app_path, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("A", LEASE_TTL)
    stale.put_pending(make_key(1, token="t1"))
    took_over: list[int] = []

    def frozen_before_the_path_write(path: str, data: dict[str, Any]) -> None:
        if path == app_path and not took_over:
            clock.now = lease.expires_at + 1  # A sleeps past its lease here; B takes over and rolls back
            taken = fresh.acquire("B", LEASE_TTL)
            fresh.restore_previous("t1")
            fresh.release(taken)
            took_over.append(taken.fence)
            assert latest(openbao, app_path)["api_key"] == make_key(0).api_key

    before_writes(stale, frozen_before_the_path_write)
    with pytest.raises((LeaseLost, StoreConflict)):
        stale.promote("t1")
    assert took_over, "A never reached its write of the path"
    assert latest(openbao, app_path)["api_key"] == make_key(0).api_key, "A's late write showed the rolled-back key"
