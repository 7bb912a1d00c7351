"""Many runners, one tenant key (issue 20): with `[fleet] lanes = true` a scheduler tick runs a paying key's
credentials only under that key's lane, a lease kept in the ledger the credentials already use.

The premise (benchmarks/bench_lanes.py measures it): two runners that each pace themselves at the tenant key's whole
rate send twice it together, and Bluum answers 429. Here, on a real OpenBao and the simulator over HTTP, two `rotator
run-due` processes started together (on two "hosts", `unshare --uts`, where that can be made) rotate a fleet of one
tenant key's credentials: no 429, each rotated exactly once, and the runner that did not hold the lane says so.
Then the lane on moto's DynamoDB: refused while held, taken over after its expiry, the old holder's renewal refused.
And the cap per paying key across hosts: a runner that takes the lane counts what the previous holder started."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from rotator.config.loader import load_config
from rotator.core.errors import LeaseLost, RotationInProgress
from rotator.ops.tick import run_due_each
from rotator.rotation import start_gate
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.lane_fleet import (
    can_make_hosts,
    created_per_investor,
    rotated_once,
    run_due_twice_at_once,
    statuses,
    vault_fleet,
)
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow

COUNT = 12
"""Two runners at sandbox's 10/s each, both creating keys at once, overrun the tenant key's limit (20/s)."""


def test_two_runners_of_one_tenant_key_draw_no_429_under_lanes(
    sim: Simulator, openbao: OpenBao, vault_path: str, tmp_path: Path
) -> None:
    config, _, investors = vault_fleet(
        sim, openbao, vault_path, tmp_path, COUNT, fleet=f"[fleet]\nconcurrency = {COUNT}\nlanes = true\n"
    )
    sim.configure(propagation_delay=0.3)
    before = len(sim.request_log())
    hosts = ("lanes-a", "lanes-b") if can_make_hosts() else (None, None)
    runs = run_due_twice_at_once(config, {"VAULT_TOKEN": openbao.root_token}, hosts)

    answers = statuses(sim, before)
    assert 429 not in answers, f"{answers.count(429)} x 429"
    said = "".join(run.stdout + run.stderr for run in runs)
    assert rotated_once(sim, investors, before) == [1] * COUNT, said[-4000:]
    assert "waiting: the lane of paying key tenant is held by" in said, said[-3000:]
    assert "Traceback" not in said


def test_the_lane_in_dynamodb_is_refused_while_held_and_taken_over_after_its_expiry(moto_server: Moto) -> None:
    from backends.aws.store import AwsStore

    name = f"lanes/{uuid.uuid4().hex[:12]}"
    sm, dynamodb = moto_server.client("secretsmanager"), moto_server.client("dynamodb")
    sm.create_secret(Name=name, SecretString='{"api_key": "k", "api_secret": "s"}')
    store = AwsStore("tenant", secret_id=name, secretsmanager=sm, dynamodb=dynamodb)
    first, second = store.lane_ledger(), store.lane_ledger()
    held = first.acquire("host-a pid 1", 1.0)
    with pytest.raises(RotationInProgress) as refused:
        second.acquire("host-b pid 2", 1.0)
    assert refused.value.held_by == "host-a pid 1"
    assert refused.value.held_until == pytest.approx(held.expires_at)
    assert store.read_record().record is None  # the credential's own item is another one
    time.sleep(1.1)
    taken = second.acquire("host-b pid 2", 5.0)
    assert taken.fence == held.fence + 1
    with pytest.raises(LeaseLost):
        first.renew(held, 1.0)  # the frozen holder, woken, learns it lost the lane
    second.release(taken)


def test_a_runner_that_takes_the_lane_counts_the_starts_of_the_previous_holder(
    sim: Simulator, openbao: OpenBao, vault_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The windows' cap per paying key across hosts: host B read the count (0) before host A started the cap's worth;
    once B holds the lane it must not start more on that stale count (it would within 30 s without the lane)."""
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    cap = 3
    config_path, _, investors = vault_fleet(
        sim, openbao, vault_path, tmp_path, 2 * cap, fleet="[fleet]\nconcurrency = 4\nlanes = true\n"
    )
    config_path.write_text(config_path.read_text() + f'\n[windows]\nstarts_per_window = {cap}\ncap_window = "1h"\n')
    sim.configure(propagation_delay=0.1)
    config = load_config(config_path)
    before = len(sim.request_log())
    with (
        RotationService(config, owner="ops@host-a pid 1") as host_a,
        RotationService(config, owner="ops@host-b pid 2") as host_b,
    ):
        assert start_gate.verdict(host_b.runtime, config.credential("app0")) is not None  # B has counted: 0
        run_due_each(host_a)
        run_due_each(host_b)
    assert sum(created_per_investor(sim, investors, before)) == cap
