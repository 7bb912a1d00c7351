"""How many requests one rotation with a Vault primary sends to Vault, counted at the server's door.

Issue 18 asks for at most 30 (it counted about 94, 54 of them re-reads of the stage document). Measured here: 81
before (54 reads of the stage document, 14 writes of it, 11 reads and 1 write of the path applications read, 1 token
lookup), 68 to 71 once a record write, a lease taken and a release built on the document as the ledger last saw it,
36 once the lease was renewed at the start of each step (that read is what tells a runner its lease was taken over
before it changes anything no check-and-set fences: a dotenv file, Bluum) and otherwise only when its clock says so
(`RecordKeeper.hold`), and under a held lease the Vault store served the stage document as its handle last read or
wrote it (`VaultLedger.held_document`). 30 now, with no read served from an earlier view: the PENDING key and its
record go in one check-and-set write of the stage document (`RecordKeeper.write_along`), and so do the clear of the
primary (now the last target cleared), the completed record and the lease's release; a holdings check reads the path
applications read once per store, not once per stage (`ReadAtOnce`); the write of the new key there after a promote
is a check-and-set on the version the promote read (refused, and read afresh, when anyone wrote since); and the first
target's check before its promote is the one just made for all targets. The path is still read afresh by every check
that decides (I8: the key-identity checks before a promote and a revoke see what is there now).

Every request of the real CLI, in a subprocess, passes a counting proxy (`tests/fault_proxy.py`, forwarding all) in
front of the session's OpenBao; the test sorts them by what they touched: the stage document at `state_path`, the
path applications read, the token's own endpoints. The rotation is a whole one (create to clear, grace 0 s) with
the Vault store first and a dotenv file beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said
from tests.e2e.test_vault_e2e import assert_rotated, assert_settled
from tests.e2e.vault_primary import VaultPrimary
from tests.fault_proxy import FaultProxy
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow

MOST_REQUESTS = 30
"""Requests one Vault rotation makes: 30 measured, the issue's ceiling (36 before the folded writes and the one
reading per holdings check; 68 to 71 before the lease was renewed only at each step's start and when its clock says
so, and reads of the stage document under a held lease were served from what the handle last read or wrote; 81 before
the ledger built its writes on the document it last saw)."""
MOST_DOCUMENT_READS = 9
"""Reads of the stage document among them: 9 measured (the record before the lease, one renewal per step, the check
before `path` is written; 41 to 44 before, 54 before that)."""
MOST_DOCUMENT_WRITES = 11
"""Writes of the stage document: 11 measured (the lease, the record at the start and after each step, the promote's
move; 14 before, when the PENDING key, the clear and the release each took a write of their own)."""


@pytest.fixture
def counted(
    openbao: OpenBao, vault_path: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[VaultPrimary, FaultProxy]]:
    """`trading` kept first in Vault, reached by the rotator only through a forwarding proxy that logs requests."""
    primary = VaultPrimary.install(ws, openbao, vault_path)
    monkeypatch.setenv("VAULT_TOKEN", primary.token)
    with FaultProxy(openbao.url) as proxy:
        ws.edit_config(f'url = "{openbao.url}"', f'url = "{proxy.url}"')
        try:
            yield primary, proxy
        finally:
            primary.close()


def sorted_requests(log: list[str], vault: VaultPrimary) -> Counter[str]:
    """Each request as `METHOD what` (`GET state`, `POST path`, `GET token`, ...)."""
    names = {f"/v1/{vault.mount}/data/{vault.state_path}": "state", f"/v1/{vault.mount}/data/{vault.path}": "path"}
    seen: Counter[str] = Counter()
    for operation in log:
        method, _, url = operation.partition(" ")
        what = names.get(url) or ("token" if url.startswith("/v1/auth/token/") else url)
        seen[f"{method} {what}"] += 1
    return seen


def test_one_vault_rotation_reads_the_stage_document_no_more_than_it_needs(
    counted: tuple[VaultPrimary, FaultProxy], ws: Workspace
) -> None:
    vault, proxy = counted
    done = ws.run("rotate", "trading")
    assert done.returncode == ExitCode.OK, said(done)
    assert_rotated(ws, vault)
    assert_settled(vault, "completed")
    operations = [operation for operation, _ in proxy.log]
    seen = sorted_requests(operations, vault)
    print(f"{len(operations)} requests to Vault: {dict(sorted(seen.items()))}")
    said_counts = f"{len(operations)} requests to Vault: {dict(sorted(seen.items()))}"
    assert seen["GET state"] <= MOST_DOCUMENT_READS, said_counts
    assert seen["POST state"] <= MOST_DOCUMENT_WRITES, said_counts
    assert len(operations) <= MOST_REQUESTS, said_counts
