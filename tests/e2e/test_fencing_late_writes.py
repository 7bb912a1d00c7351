"""A Secrets Manager write held on the wire past a take-over, landing after another runner rolled back (issue 17).

The harness is tests/freeze_boundaries.py, as in test_fencing_boundaries.py: runner A (`rotator rotate`) reaches the
Secrets Manager stand-in (moto, its DynamoDB holding the lease) and Bluum only through fault proxies; the picked
request is held unforwarded and A frozen; once A's 3 s lease plus the longest request in flight has passed, runner B
rolls back from another host (`unshare --uts`), revoking the new key at Bluum; then the held request lands and A is
thawed. Two writes are held:

- the promote's move of AWSCURRENT onto the new version (`RemoveFromVersionId` naming the old one): B's rollback put
  the old key into a new version and moved AWSCURRENT there, so the late move no longer matches and the store refuses
  it; before, it made the secret show the key B had just revoked (I1) and nothing undid it;
- the put of the AWSPENDING version: nothing can refuse it (a new version id), so it labels a revoked key AWSPENDING,
  which blocks Secrets Manager's own rotation until the label goes; the settling `sweep --revoke` (the Lambda's tick
  runs it too) now takes that label off, and the key never becomes CURRENT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.core.errors import ExitCode
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.fault_proxy import LEDGER_WRITES, FaultProxy, Request
from tests.freeze_boundaries import (
    Boundary,
    Primary,
    Trial,
    _config_value,
    aws_digest,
    bluum_keys,
    fence,
    needs_another_host,
    trial,
)
from tests.store_workspaces import StoreWorkspace, aws_workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def boundary() -> Boundary:
    return Boundary()


@pytest.fixture
def aws_primary(sim: Simulator, moto_server: Moto, boundary: Boundary) -> Iterator[Primary]:
    with (
        FaultProxy(sim.base_url, boundary.plan("bluum")) as bluum_proxy,
        FaultProxy(moto_server.url, boundary.plan("aws")) as proxy,
    ):

        def make(folder: Path) -> StoreWorkspace:
            return fence(
                aws_workspace(sim, moto_server, proxy.url, folder), sim.base_url, bluum_proxy.url, 'type = "aws"\n'
            )

        yield Primary("aws", make, aws_digest(moto_server))


def _versions(moto: Moto, ws: StoreWorkspace) -> dict[str, tuple[list[str], str | None]]:
    """Every version of the secret: its labels and the key id it holds (read past the proxy)."""
    sm, name = moto.client("secretsmanager"), _config_value(ws, "secret_id")
    found: dict[str, tuple[list[str], str | None]] = {}
    for version, labels in sm.describe_secret(SecretId=name)["VersionIdsToStages"].items():
        value: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=name, VersionId=version)["SecretString"])
        found[version] = (sorted(labels), value.get("key_id"))
    return found


def _holding(versions: dict[str, tuple[list[str], str | None]], label: str) -> list[str | None]:
    return [key for labels, key in versions.values() if label in labels]


def _rolled_back(
    sim: Simulator,
    moto: Moto,
    store: Primary,
    boundary: Boundary,
    ws: StoreWorkspace,
    held: Callable[[str, Request], bool],
) -> tuple[Trial, dict[str, tuple[list[str], str | None]]]:
    needs_another_host()
    t = trial(sim, store, boundary, ws, 0, "rollback", hold_on=held)
    assert t.reached, "A never sent the write to hold"
    assert t.b_exit == ExitCode.OK, f"B's rollback exited {t.b_exit}"
    assert t.a_exit == ExitCode.IN_PROGRESS, f"A exited {t.a_exit}: {t.said}"
    assert t.changed_after == [], f"A changed {t.changed_after} once thawed; it sent {t.late_requests}"
    assert t.samples > 0
    assert t.i1 == [], t.i1
    assert t.i3 == [], f"active keys no store shows after settling: {t.i3}"
    return t, _versions(moto, ws)


def test_a_late_awscurrent_move_after_a_rollback_is_refused_by_the_store(
    boundary: Boundary, sim: Simulator, moto_server: Moto, aws_primary: Primary, tmp_path: Path
):
    ws = aws_primary.make(tmp_path / "ws")
    moving_current = LEDGER_WRITES["aws"]["moving AWSCURRENT"]
    t, versions = _rolled_back(
        sim, moto_server, aws_primary, boundary, ws, lambda where, r: where == "aws" and moving_current(r)
    )
    assert t.changed_by_held == [], f"A's late {t.request} changed {t.changed_by_held} after the rollback"
    status = dict(bluum_keys(sim, ws))
    assert _holding(versions, "AWSCURRENT") == [str(ws.first.key_id)], versions
    assert status[str(ws.first.key_id)] == "active"
    assert _holding(versions, "AWSPENDING") == [], versions
    assert _holding(versions, "AWSPREVIOUS") == [], f"the rollback leaves PREVIOUS as it was (empty): {versions}"
    assert ws.record_phase() == "rolled_back"


def test_a_late_awspending_put_after_a_rollback_leaves_no_label_and_never_becomes_current(
    boundary: Boundary, sim: Simulator, moto_server: Moto, aws_primary: Primary, tmp_path: Path
):
    ws = aws_primary.make(tmp_path / "ws")
    _t, versions = _rolled_back(
        sim, moto_server, aws_primary, boundary, ws, lambda where, r: where == "aws" and r.operation == "PutSecretValue"
    )
    status = dict(bluum_keys(sim, ws))
    new = [key for key, state in status.items() if key != str(ws.first.key_id)]
    assert [status[key] for key in new] == ["revoked"], status
    assert any(key == new[0] for _labels, key in versions.values()), "the late put never landed: nothing was tested"
    assert _holding(versions, "AWSPENDING") == [], f"a revoked key left AWSPENDING after settling: {versions}"
    assert _holding(versions, "AWSCURRENT") == [str(ws.first.key_id)], versions
    again = ws.run("rotate", "trading")
    assert again.returncode == ExitCode.OK, again.stderr[-2000:]
    assert new[0] not in _holding(_versions(moto_server, ws), "AWSCURRENT")
