"""A runner frozen with one of its requests on the wire changes nothing once thawed (issue 17): a few request
boundaries per primary, the walk over every boundary being benchmarks/bench_fencing.py (same harness,
tests/freeze_boundaries.py).

Runner A (`rotator rotate`, a subprocess) reaches Vault (OpenBao) or Secrets Manager (moto, its DynamoDB holding the
lease) and Bluum only through fault proxies. The proxy holds the request picked out below, unforwarded, and A is
frozen (SIGSTOP) right then; once A's 3 s lease plus the longest request in flight has passed, runner B takes over from
another host (`unshare --uts`); then the held request goes out (late, after the take-over) and A is thawed. The picks
are the writes the store itself must refuse once another runner wrote (the record written right before the create at
Bluum, the write of the key applications read, AWS's AWSCURRENT move), and the preflight's list of Bluum's keys,
whose late answer A must not judge (it stops first, its lease having run out): a late write that was let through, or any
request A sends once thawed that changes something, fails the test. A must exit 3, no target may show a revoked key at
any 100 ms sample (I1), and after `resume`/`sweep` no active key is one no store shows (I3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.conftest import LeakGuard
from tests.fault_proxy import LEDGER_WRITES, FaultProxy, Request
from tests.freeze_boundaries import Boundary, Primary, aws_digest, fence, needs_another_host, trial, vault_digest
from tests.openbao import OpenBao
from tests.store_workspaces import StoreWorkspace, aws_workspace, vault_workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def boundary() -> Boundary:
    return Boundary()


@pytest.fixture
def bluum_proxy(sim: Simulator, boundary: Boundary) -> Iterator[FaultProxy]:
    with FaultProxy(sim.base_url, boundary.plan("bluum")) as proxy:
        yield proxy


@pytest.fixture
def vault_primary(
    sim: Simulator,
    openbao: OpenBao,
    vault_path: str,
    bluum_proxy: FaultProxy,
    boundary: Boundary,
    leak_guard: LeakGuard,
) -> Iterator[Primary]:
    with FaultProxy(openbao.url, boundary.plan("vault")) as proxy:

        def make(folder: Path) -> StoreWorkspace:
            ws = vault_workspace(sim, openbao, proxy.url, folder)
            leak_guard.watch(*ws.secrets)
            return fence(ws, sim.base_url, bluum_proxy.url, 'type = "vault"\n')

        yield Primary("vault", make, vault_digest(openbao))


@pytest.fixture
def aws_primary(sim: Simulator, moto_server: Moto, bluum_proxy: FaultProxy, boundary: Boundary) -> Iterator[Primary]:
    with FaultProxy(moto_server.url, boundary.plan("aws")) as proxy:

        def make(folder: Path) -> StoreWorkspace:
            return fence(
                aws_workspace(sim, moto_server, proxy.url, folder), sim.base_url, bluum_proxy.url, 'type = "aws"\n'
            )

        yield Primary("aws", make, aws_digest(moto_server))


def _key_list(request: Request) -> bool:
    return request.method == "GET" and request.path.split("?")[0].endswith("/api-keys")


PREFLIGHT_LIST = "the preflight's list of Bluum keys"
"""Not a write: A, frozen under its lease while it asks Bluum for the credential's keys, judged the answer (read after
another runner's whole rotation) as a start blocker, exit 2 'Nothing was changed', instead of noticing first that it
had been frozen past its lease (exit 3), as issue 17 asks of every instant."""


def held(primary: str, write: str) -> Callable[[str, Request], bool]:
    if write == PREFLIGHT_LIST:
        return lambda where, request: where == "bluum" and _key_list(request)
    pick = LEDGER_WRITES[primary][write]
    return lambda where, request: where == primary and pick(request)


CASES = [
    ("vault", PREFLIGHT_LIST, "rotate"),
    ("vault", "the key applications read", "resume"),
    ("aws", "the STARTED record", "rollback"),
    ("aws", "moving AWSCURRENT", "resume"),
]


@pytest.mark.parametrize(("primary", "write", "takeover"), CASES, ids=[f"{p}-{w}-{t}" for p, w, t in CASES])
def test_a_runner_frozen_with_a_write_on_the_wire_changes_nothing_after_the_take_over(
    request: pytest.FixtureRequest,
    boundary: Boundary,
    sim: Simulator,
    tmp_path: Path,
    primary: str,
    write: str,
    takeover: str,
):
    needs_another_host()
    store: Primary = request.getfixturevalue(f"{primary}_primary")
    ws = store.make(tmp_path / "ws")
    t = trial(sim, store, boundary, ws, 0, takeover, hold_on=held(primary, write))
    assert t.reached, f"A never sent {write}"
    assert t.b_exit in (ExitCode.OK, ExitCode.ROLLED_BACK), f"B's {takeover} exited {t.b_exit}"
    assert t.changed_by_held == [], f"A's late {t.request} changed {t.changed_by_held} after the take-over"
    assert t.changed_after == [], f"A changed {t.changed_after} once thawed; it sent {t.late_requests}"
    assert t.a_exit == ExitCode.IN_PROGRESS, f"A exited {t.a_exit}: {t.said}"
    assert t.samples > 0
    assert t.i1 == [], t.i1
    assert t.i3 == [], f"active keys no store shows after settling: {t.i3}"
