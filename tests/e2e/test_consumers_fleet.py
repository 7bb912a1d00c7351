"""The consumer processes of issue 19's tests (tests/consumer_app.py, tests/consumer_fixtures.py), tested themselves.

The rotation tests (test_consumers_*.py) trust these processes to behave as their flags say: to attest the key they
hold in memory, move to the store's key at a reload (late, never, or by crashing), hang or lie when told, log every
call with its status and key fingerprint and never a secret, and to be gone after the fleet closes. Each is checked
here against the simulator over HTTP, with keys swapped in the store by hand, no rotator involved.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from rotator.attest import fingerprint
from rotator.cli.demo import open_account
from rotator.config.consumers import Consumer as ConfigConsumer
from rotator.consumers.poll import poll_once
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.rules.consumers import describe
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.conftest import LeakGuard
from tests.consumer_fixtures import Consumer, ConsumerFleet, Source, consumer_fleet, eventually
from tests.e2e.conftest import dotenv_text
from tests.openbao import OpenBao


class Keys:
    """Two keys Bluum accepts, and a dotenv file holding one of them."""

    def __init__(self, sim: Simulator, root: Path) -> None:
        self.sim = sim
        self.first = open_account(sim, "initial").first.pair
        made = sim.create_tenant_key("TEST")
        self.second = KeyPair(made["public_key"], Secret(made["secret_key"]), Environment.SANDBOX, made["id"])
        self.env_file = root / "app.env"
        self.put(self.first)

    def put(self, pair: KeyPair) -> None:
        self.env_file.write_text(dotenv_text(pair, "sandbox", self.sim.base_url))


@pytest.fixture
def keys(sim: Simulator, tmp_path: Path) -> Keys:
    return Keys(sim, tmp_path)


@pytest.fixture
def fleet(sim: Simulator, tmp_path: Path, leak_guard: LeakGuard) -> Iterator[ConsumerFleet]:
    with consumer_fleet(tmp_path / "fleet", sim.base_url, rate=5.0) as running:
        yield running
    for path in sorted((tmp_path / "fleet").iterdir()):
        leak_guard.check(path.read_text(), f"consumer file {path.name}")


def attested(consumer: Consumer) -> str:
    answer = httpx.get(consumer.url, timeout=3)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["fingerprint"])


def reload(consumer: Consumer) -> None:
    assert httpx.post(consumer.reload_url, timeout=3).status_code == 204


FIRST, SECOND = "first", "second"


def test_a_consumer_attests_the_key_in_memory_and_moves_to_the_store_key_at_a_reload(keys: Keys, fleet: ConsumerFleet):
    app = fleet.start("app", Source.dotenv(keys.env_file))
    old, new = fingerprint(keys.first.api_key), fingerprint(keys.second.api_key)
    assert attested(app) == old
    keys.put(keys.second)
    assert eventually(lambda: app.count(200, old) >= 2)
    assert attested(app) == old, "the store changed, the key in memory did not: it must still attest the old key"
    reload(app)
    assert attested(app) == new
    assert eventually(lambda: app.count(200, new) >= 2)
    assert app.count(401) == 0
    assert [e["fp"] for e in app.events("reload")] == [new]
    assert app.statuses().keys() <= {(200, old), (200, new)}


def test_a_late_reload_answers_at_once_and_takes_effect_after_its_lag(keys: Keys, fleet: ConsumerFleet):
    app = fleet.start("late", Source.dotenv(keys.env_file), "--reload-lag", "1.5")
    keys.put(keys.second)
    asked = time.monotonic()
    reload(app)
    assert time.monotonic() - asked < 1.0, "the reload must answer before its lag"
    assert attested(app) == fingerprint(keys.first.api_key)
    assert eventually(lambda: attested(app) == fingerprint(keys.second.api_key), timeout=5)
    assert time.monotonic() - asked >= 1.4


def test_a_consumer_that_never_reloads_answers_204_and_keeps_its_key(keys: Keys, fleet: ConsumerFleet):
    app = fleet.start("stuck", Source.dotenv(keys.env_file), "--never-reload")
    keys.put(keys.second)
    reload(app)
    time.sleep(0.3)
    assert attested(app) == fingerprint(keys.first.api_key)
    assert app.events("reload-ignored")


def test_a_consumer_that_crashes_on_reload_is_restarted_into_a_crash_loop(keys: Keys, fleet: ConsumerFleet):
    app = fleet.start("crashy", Source.dotenv(keys.env_file), "--crash-on-reload")
    reload(app)
    assert eventually(lambda: app.starts >= 3, timeout=10), "the supervisor restarts it, and it crashes again"
    assert all(p.wait(timeout=5) == 3 for p in app.processes[:-1])
    with pytest.raises(httpx.TransportError):
        httpx.get(app.url, timeout=1)


def test_a_hung_attestation_never_answers(keys: Keys, fleet: ConsumerFleet):
    app = fleet.start("hung", Source.dotenv(keys.env_file), "--hang-attest")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(app.url, timeout=1)
    assert eventually(lambda: app.count(200) >= 1), "it still calls Bluum"


def test_a_liar_attests_the_store_s_newest_key_while_calling_with_its_first(
    keys: Keys, fleet: ConsumerFleet, sim: Simulator
):
    app = fleet.start("liar", Source.dotenv(keys.env_file), "--lie")
    keys.put(keys.second)
    reload(app)
    assert attested(app) == fingerprint(keys.second.api_key)
    sim.revoke_key(str(keys.first.key_id))
    old = fingerprint(keys.first.api_key)
    assert eventually(lambda: app.count(401, old) >= 2)
    assert app.count(200, fingerprint(keys.second.api_key)) == 0, "it never calls with the key it attests"


def test_calls_are_logged_with_status_and_fingerprint_only(keys: Keys, fleet: ConsumerFleet, sim: Simulator):
    app = fleet.start("app", Source.dotenv(keys.env_file))
    assert eventually(lambda: app.count(200) >= 2)
    sim.revoke_key(str(keys.first.key_id))
    assert eventually(lambda: app.count(401) >= 2)
    text = app.log.read_text()
    assert keys.first.api_key not in text
    assert keys.first.api_secret.reveal() not in text
    assert {frozenset(e) for e in app.calls()} == {frozenset({"t", "status", "fp"})}
    accounts = [e for e in sim.request_log() if e["path"] == "/v1/accounts"]
    assert {e["status"] for e in accounts} == {200, 401}


def test_close_kills_every_process_group_and_leaves_nothing(keys: Keys, sim: Simulator, tmp_path: Path):
    with consumer_fleet(tmp_path / "f", sim.base_url) as fleet:
        started = fleet.start_many(
            [
                ("a", Source.dotenv(keys.env_file), ()),
                ("b", Source.dotenv(keys.env_file), ("--hang-attest",)),
                ("c", Source.dotenv(keys.env_file), ("--crash-on-reload",)),
            ]
        )
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(started[1].url, timeout=0.5)  # a request thread stuck inside b
        reload(started[2])
        assert eventually(lambda: started[2].starts >= 2)
        pids = [p.pid for c in started for p in c.processes]
        assert len(fleet.leftovers()) >= 2
    assert fleet.leftovers() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_vault_consumer_reads_the_latest_version_at_its_path(
    keys: Keys, fleet: ConsumerFleet, openbao: OpenBao, vault_path: str
):
    root = openbao.client()
    path = f"{vault_path}/trading"

    def put(pair: KeyPair) -> None:
        secret = {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": pair.key_id}
        root.secrets.kv.v2.create_or_update_secret(path=path, secret=secret, mount_point="secret")

    put(keys.first)
    app = fleet.start("vault-app", Source.vault(openbao.url, openbao.root_token, path))
    assert attested(app) == fingerprint(keys.first.api_key)
    put(keys.second)
    reload(app)
    assert attested(app) == fingerprint(keys.second.api_key)
    assert eventually(lambda: app.count(200, fingerprint(keys.second.api_key)) >= 1)


def test_a_secrets_manager_consumer_reads_awscurrent(keys: Keys, fleet: ConsumerFleet, moto_server: Moto):
    sm = moto_server.client("secretsmanager")
    name = f"bluum/consumer-{uuid.uuid4().hex[:10]}"

    def value(pair: KeyPair) -> str:
        return json.dumps({"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": pair.key_id})

    sm.create_secret(Name=name, SecretString=value(keys.first))
    app = fleet.start("aws-app", Source.aws(name, moto_server.environ()))
    assert attested(app) == fingerprint(keys.first.api_key)
    sm.put_secret_value(SecretId=name, SecretString=value(keys.second), VersionStages=["AWSCURRENT"])
    reload(app)
    assert attested(app) == fingerprint(keys.second.api_key)


def test_the_rotator_s_poll_reads_each_behaviour_as_its_outcome(keys: Keys, fleet: ConsumerFleet, tmp_path: Path):
    """rotator.consumers.poll_once over the real processes: what the gate will see of each behaviour."""
    app = Source.dotenv(keys.env_file)
    started = fleet.start_many(
        [
            ("moved", app, ()),
            ("late", app, ("--reload-lag", "30")),
            ("stuck", app, ("--never-reload",)),
            ("crashy", app, ("--crash-on-reload",)),
            ("hung", app, ("--hang-attest",)),
            ("liar", app, ("--lie",)),
        ]
    )
    keys.put(keys.second)
    for consumer in started:
        reload(consumer)
    time.sleep(0.3)  # crashy is down (it restarts, and crashes, every half second)
    declared = [ConfigConsumer(c.name, "app", "url", timedelta(seconds=1), tmp_path, url=c.url) for c in started]
    found = poll_once(
        declared, new_fingerprint=fingerprint(keys.second.api_key), old_fingerprint=fingerprint(keys.first.api_key)
    )
    outcomes = {a.consumer: a.outcome for a in found}
    assert outcomes == {
        "moved": "new",
        "late": "old",
        "stuck": "old",
        "crashy": "unreachable",
        "hung": "unreachable",
        "liar": "new",
    }, [describe(a) for a in found]
