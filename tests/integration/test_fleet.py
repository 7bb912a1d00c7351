"""Fleet rotation against the simulator over HTTP: many credentials of one tenant key at once, within its rate
limit; the tenant calls one rotation makes; a stop request in the middle of a fleet, finished by `resume`.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from rotator.bluum.client import BluumClient
from rotator.config.loader import load_config
from rotator.core.errors import ExitCode
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.ops.fleet import run_each
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator


def _dotenv(pair: KeyPair, sim: Simulator) -> str:
    return (
        f"BLUUM_API_KEY='{pair.api_key}'\nBLUUM_API_SECRET='{pair.api_secret.reveal()}'\nBLUUM_KEY_ID='{pair.key_id}'\n"
        f"BLUUM_ENVIRONMENT=sandbox\nBLUUM_BASE_URL='{sim.base_url}'\n"
    )


StoreTable = Callable[[str], str]
"""The body of `[stores.NAME]` for a store name (its `type` and where it keeps the key)."""
PutKey = Callable[[str, KeyPair], None]
"""Seeds the store called NAME with a key pair, as an operator would by hand."""


def fleet_workspace(
    sim: Simulator,
    root: Path,
    count: int,
    *,
    fleet: str = "",
    store_table: StoreTable | None = None,
    put: PutKey | None = None,
) -> tuple[Path, str, list[str]]:
    """A tenant key (manual) managing `count` investor credentials (app0, app1...), each in a store of its own: a
    dotenv file in `root`, or what `store_table` and `put` describe (a Vault path, a secret in Secrets Manager).
    Returns the config path, the tenant key's id and the investors."""

    def dotenv_table(name: str) -> str:
        return f'type = "env"\npath = "{name}.env"\n'

    def dotenv_put(name: str, pair: KeyPair) -> None:
        (root / f"{name}.env").write_text(_dotenv(pair, sim))

    table: StoreTable = store_table or dotenv_table
    seed: PutKey = put or dotenv_put
    tenant = sim.create_tenant_key(environment="TEST")
    tenant_pair = KeyPair(tenant["public_key"], Secret(tenant["secret_key"]), Environment.SANDBOX, tenant["id"])
    seed("tenant", tenant_pair)
    parts = [
        f'[stores.tenant]\n{table("tenant")}\n[credentials.tenant]\nenvironment = "sandbox"\n'
        f'base_url = "{sim.base_url}"\nissuer = "manual"\nstore = "tenant"\n{fleet}\n'
    ]
    investors = []
    with BluumClient(sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        for n in range(count):
            investor = sim.create_investor()
            investors.append(investor)
            first = client.create_investor_key(
                tenant_pair,
                investor,
                name=f"first {n}",
                environment=Environment.SANDBOX,
                idempotency_key=uuid.uuid4().hex,
            )
            seed(f"app{n}", first.pair)
            parts.append(
                f'[stores.app{n}]\n{table(f"app{n}")}\n[credentials.app{n}]\nenvironment = "sandbox"\n'
                f'base_url = "{sim.base_url}"\nissuer = "bluum"\ninvestor_id = "{investor}"\nmanager = "tenant"\n'
                f'store = "app{n}"\ngrace = "0s"\nverify_timeout = "30s"\n'
            )
    for path in root.glob("*.env"):
        path.chmod(0o600)
    config = root / "rotator.toml"
    config.write_text("\n".join(parts))
    sim.advance_clock(60)  # the first keys are long propagated
    return config, str(tenant["id"]), investors


def rotate_every_one_once(sim: Simulator, config: Path, count: int) -> None:
    """Rotate app0..app{count-1} at once (their stores' clients shared by the threads), under 0.3 s propagation: each
    ends rotated, with no 429 from Bluum."""
    sim.configure(propagation_delay=0.3)
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        outcomes = run_each(service, [f"app{n}" for n in range(count)], service.rotate)
    assert all(o.exit_code is ExitCode.OK for o in outcomes), [o.message for o in outcomes]
    assert [e for e in sim.request_log()[before:] if e["status"] == 429] == []


def tenant_log(sim: Simulator, tenant_id: str, since: int = 0) -> list[dict[str, object]]:
    return [entry for entry in sim.request_log()[since:] if entry.get("key_id") == tenant_id]


def active_keys(sim: Simulator, investor: str) -> list[str]:
    return [k["id"] for k in sim.keys() if k.get("owner") == investor and k["status"] == "active"]


class InFlight:
    """Counts rotations between their start and their end, from the bus: how many ran at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, event: RotationEvent) -> None:
        with self._lock:
            if event.kind is EventKind.STARTED:
                self.now += 1
                self.most = max(self.most, self.now)
            elif event.kind in (EventKind.COMPLETED, EventKind.ROLLED_BACK, EventKind.STOPPED):
                self.now -= 1


def test_a_fresh_rotation_makes_three_tenant_calls(sim: Simulator, tmp_path: Path) -> None:
    config, tenant_id, _ = fleet_workspace(sim, tmp_path, 1)
    sim.configure(propagation_delay=0.2)
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        outcome = service.rotate("app0")
    assert outcome.exit_code is ExitCode.OK, outcome.message
    calls = [(entry["method"], "api-keys" in str(entry["path"])) for entry in tenant_log(sim, tenant_id, before)]
    # list (which key is current), create, revoke: no duplicate check, since the create went out once under a token
    # nobody had used, and the revoke finds the old key in the list preflight read seconds ago (no grace window).
    assert calls == [("GET", True), ("POST", True), ("POST", True)]


def test_a_create_sent_twice_is_followed_by_a_duplicate_check(sim: Simulator, tmp_path: Path) -> None:
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, 1)
    sim.configure(propagation_delay=0.2)
    # The first create is processed and its answer lost: the client sends it again (same Idempotency-Key).
    sim.inject_fault(method="POST", path=f"/v1/investors/{investors[0]}/api-keys", drop=True)
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        outcome = service.rotate("app0")
    assert outcome.exit_code is ExitCode.OK, outcome.message
    methods = [entry["method"] for entry in tenant_log(sim, tenant_id, before)]
    assert methods == ["GET", "POST", "POST", "GET", "POST"]  # the list after the creates looks for a twin
    assert len(active_keys(sim, investors[0])) == 1


def test_a_fleet_runs_at_once_within_the_tenant_keys_rate_limit(sim: Simulator, tmp_path: Path) -> None:
    count = 12
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, count, fleet="[fleet]\nconcurrency = 6\n")
    sim.configure(propagation_delay=0.3)
    before = len(sim.request_log())
    in_flight = InFlight()
    with RotationService(load_config(config), bus=EventBus(in_flight)) as service:
        names = [f"app{n}" for n in range(count)]
        outcomes = run_each(service, names, service.rotate)
    assert [o.credential for o in outcomes] == names  # in the order asked, whatever order they finished in
    assert all(o.exit_code is ExitCode.OK for o in outcomes), [o.message for o in outcomes]
    assert 1 < in_flight.most <= 6
    log = sim.request_log()[before:]
    assert [entry for entry in log if entry["status"] == 429] == []
    times = sorted(float(str(entry["time"])) for entry in tenant_log(sim, tenant_id, before))
    most_in_a_second = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert most_in_a_second <= 10  # sandbox: 10 requests/s per key pair
    for investor in investors:
        assert len(active_keys(sim, investor)) == 1


def test_a_stop_request_ends_each_rotation_after_its_step_and_resume_finishes_them(
    sim: Simulator, tmp_path: Path
) -> None:
    count = 6
    config, _, investors = fleet_workspace(sim, tmp_path, count, fleet="[fleet]\nconcurrency = 3\n")
    sim.configure(propagation_delay=0.3)
    holder: dict[str, RotationService] = {}

    def stop_after_the_first_create(event: RotationEvent) -> None:
        if event.kind is EventKind.STEP and event.step == "generate":
            holder["service"].runtime.stopping.set()

    with RotationService(load_config(config), bus=EventBus(stop_after_the_first_create)) as service:
        holder["service"] = service
        outcomes = run_each(service, [f"app{n}" for n in range(count)], service.rotate)
    codes = [o.exit_code for o in outcomes]
    assert ExitCode.INCOMPLETE in codes
    stopped = [o for o in outcomes if "stopped on request" in o.message]
    not_started = [o for o in outcomes if "not started" in o.message]
    assert stopped, [o.message for o in outcomes]
    assert not_started  # three at a time: the later ones were never begun
    for outcome in stopped:
        assert outcome.record is not None
        assert not outcome.record.phase.terminal
    # Nothing is lost: every stopped rotation keeps its old key working until resume finishes it.
    with RotationService(load_config(config)) as service:
        resumed = run_each(service, [f"app{n}" for n in range(count)], service.resume)
        assert all(o.exit_code is ExitCode.OK for o in resumed), [o.message for o in resumed]
        left = service.sweep()
    assert left == []
    for investor in investors:
        assert len(active_keys(sim, investor)) == 1


def test_a_scheduled_rotation_decides_again_under_the_lease_whether_it_is_due(sim: Simulator, tmp_path: Path) -> None:
    """Two schedulers (two daemons, a daemon and cron): B saw the credential due, A rotated it before B got the
    lease. B must not rotate it a second time."""
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, 1)
    text = config.read_text().replace('grace = "0s"', 'grace = "0s"\nrotate_every = "30d"\nseeded_key_age = "due"')
    config.write_text(text)
    sim.configure(propagation_delay=0.2)
    with RotationService(load_config(config), owner="B") as b:
        with RotationService(load_config(config), owner="A") as a:
            assert a.run_due("app0").exit_code is ExitCode.OK  # A rotates it first
        key_after_a = active_keys(sim, investors[0])
        before = len(sim.request_log())
        outcome = b.rotate("app0", only_if_due=True)  # B, now holding the lease
    assert outcome.exit_code is ExitCode.OK
    assert "another runner rotated it" in outcome.message
    assert [e for e in tenant_log(sim, tenant_id, before) if e["method"] == "POST"] == []
    assert active_keys(sim, investors[0]) == key_after_a
