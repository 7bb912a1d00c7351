"""Many runners, against the simulator over HTTP: a lease that expires in the middle of a rotation, and two
rotations running at once in threads of one process.

The lease case uses memory stores on a clock the test moves, so "runner A sleeps past its lease while runner B
takes over" happens exactly where the test puts it: inside A's wait for Bluum to accept the new key.
"""

from __future__ import annotations

import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backends.memory import MemoryStore
from rotator.bluum.client import BluumClient, CheckOutcome
from rotator.cli.demo import open_account
from rotator.config.loader import parse_config
from rotator.core.errors import LeaseLost
from rotator.core.model import Environment, KeyPair, Stage, StoredKey
from rotator.rotation.driver import TAKEOVER_SECONDS
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.conftest import LeakGuard


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stored(pair: KeyPair) -> StoredKey:
    return StoredKey(pair.api_key, pair.api_secret, key_id=pair.key_id, environment=Environment.SANDBOX)


def memory_config(sim: Simulator, investor: str) -> str:
    return f"""
[stores.tenant]
type = "memory"
note = "the tenant key"  # injected by the test: options only tell the two apart for validation

[stores.app]
type = "memory"
note = "the trading app"

[credentials.tenant]
environment = "sandbox"
base_url = "{sim.base_url}"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
base_url = "{sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "app"
grace = "0s"
verify_timeout = "10s"
"""


def works(sim: Simulator, key: StoredKey | None) -> bool:
    assert key is not None
    with BluumClient(sim.base_url) as client:
        pair = KeyPair(key.api_key, key.api_secret, Environment.SANDBOX, key.key_id)
        return client.check(pair).outcome is CheckOutcome.WORKS


def test_a_runner_whose_lease_expired_mid_rotation_changes_nothing_more(sim: Simulator, tmp_path: Path):
    account = open_account(sim, "first")
    clock = FakeClock()
    app = MemoryStore("app", current=stored(account.first.pair), clock=clock)
    tenant = MemoryStore("tenant", current=stored(account.tenant_pair), clock=clock)
    config = parse_config(memory_config(sim, account.investor), base_dir=tmp_path, store_types=("env", "memory"))
    sim.advance_clock(60)
    sim.configure(propagation_delay=1.0)  # A's new key answers 401 for a while: A waits, polling

    after_takeover: dict[str, object] = {}

    def sleep_past_the_lease(seconds: float) -> None:
        """Runner A's first wait: its lease runs out, runner B takes over and finishes the rotation."""
        if after_takeover:
            return
        clock.now += TAKEOVER_SECONDS + 1
        sim.advance_clock(2.0)  # the new key has propagated by now
        with RotationService(config, stores={"app": app.twin("app-b"), "tenant": tenant.twin()}, owner="B") as b:
            after_takeover["outcome"] = b.resume("trading")
        after_takeover["record"] = app.read_record()
        after_takeover["stages"] = [app.read(stage) for stage in Stage]
        after_takeover["keys"] = sim.keys()

    a = RotationService(config, stores={"app": app, "tenant": tenant}, owner="A", sleep=sleep_past_the_lease)
    with a, pytest.raises(LeaseLost) as lost:
        a.rotate("trading")
    assert "taken over" in str(lost.value)

    outcome = after_takeover["outcome"]
    assert getattr(outcome, "exit_code", None) == 0, outcome
    # A changed nothing after B took over: the record, the stages and Bluum's keys are as B left them.
    assert app.read_record() == after_takeover["record"]
    assert [app.read(stage) for stage in Stage] == after_takeover["stages"]
    assert sim.keys() == after_takeover["keys"]
    final = app.read_record().record
    assert final is not None
    assert final["phase"] == "completed"
    current = app.read(Stage.CURRENT)
    assert works(sim, current)
    assert not works(sim, stored(account.first.pair))
    active = [k for k in sim.keys() if k.get("owner") == account.investor and k["status"] == "active"]
    assert [k["id"] for k in active] == [current.key_id if current else None]


def add_credential(root: Path, sim: Simulator, tenant: KeyPair, investor: str, name: str) -> str:
    with BluumClient(sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        key = client.create_investor_key(
            tenant, investor, name=name, environment=Environment.SANDBOX, idempotency_key=uuid.uuid4().hex
        )
    secret = key.pair.api_secret.reveal()
    (root / f"{name}.env").write_text(f"BLUUM_API_KEY='{key.pair.api_key}'\nBLUUM_API_SECRET='{secret}'\n")
    return f"""
[stores.{name}]
type = "env"
path = "{name}.env"

[credentials.{name}]
environment = "sandbox"
base_url = "{sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "{name}"
grace = "0s"
"""


def test_two_rotations_in_threads_share_one_client_and_both_finish(
    sim: Simulator, tmp_path: Path, leak_guard: LeakGuard
):
    account = open_account(sim, "tenant's first")
    secret = account.tenant_pair.api_secret.reveal()
    (tmp_path / "tenant.env").write_text(
        f"BLUUM_API_KEY='{account.tenant_pair.api_key}'\nBLUUM_API_SECRET='{secret}'\n"
    )
    text = f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[credentials.tenant]
environment = "sandbox"
base_url = "{sim.base_url}"
issuer = "manual"
store = "tenant"
"""
    for name in ("trading", "reports"):
        text += add_credential(tmp_path, sim, account.tenant_pair, account.investor, name)
    (tmp_path / "rotator.toml").write_text(text)
    config = parse_config(text, base_dir=tmp_path)
    start = threading.Barrier(2, timeout=10)

    with RotationService(config) as service:
        before = {name: service.runtime.store(name).read(Stage.CURRENT) for name in ("trading", "reports")}

        def rotate(name: str) -> int:
            start.wait()
            return int(service.rotate(name).exit_code)

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = list(pool.map(rotate, ["trading", "reports"], timeout=60))
        assert codes == [0, 0]
        assert service.runtime.client_urls() == [sim.base_url]
        for name in ("trading", "reports"):
            current = service.runtime.store(name).read(Stage.CURRENT)
            old = before[name]
            assert current is not None
            assert old is not None
            assert not current.same_key(old)
            assert works(sim, current)
            assert not works(sim, old)
