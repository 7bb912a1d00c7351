"""The longest request a runner may still have in flight (`rotator.core.in_flight`), and what uses it: the take-over
wait the ledger is told, the lease's minimum in rotator.toml, the bounds of every boto3 client, and a renewal dated from
when it was sent (issue 17: the take-over wait covers store requests too, not only a Bluum call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backends.memory import MemoryStore
from rotator.config.loader import parse_config
from rotator.config.settings import BluumSettings
from rotator.config.stores import StoreConfig
from rotator.core.errors import ConfigError, LeaseLost
from rotator.core.in_flight import (
    AWS_DEFAULT_TIMEOUT,
    AWS_MAX_ATTEMPTS,
    aws_client_bounds,
    bluum_call_seconds,
    longest_in_flight,
    store_request_seconds,
)
from rotator.rotation.driver import IN_FLIGHT_SECONDS, RecordKeeper


def store(kind: str, **options: object) -> StoreConfig:
    return StoreConfig(name=f"the-{kind}", type=kind, options=options)


def test_with_the_defaults_the_longest_request_is_a_whole_bluum_call_of_40_seconds() -> None:
    defaults = BluumSettings()
    assert bluum_call_seconds(defaults) == 40.0
    assert longest_in_flight(defaults, [store("env"), store("vault"), store("aws")]) == 40.0 == IN_FLIGHT_SECONDS


def test_one_store_request_is_its_connect_plus_its_read_timeout() -> None:
    assert store_request_seconds("vault", {}) == 20.0
    assert store_request_seconds("vault", {"timeout": 30}) == 60.0
    assert store_request_seconds("vault", {"timeout": "2.5"}) == 5.0  # the store reads it with float()
    assert store_request_seconds("aws", {}) == 2 * AWS_DEFAULT_TIMEOUT == 20.0
    assert store_request_seconds("aws", {"timeout": 0.75}) == 1.5
    assert store_request_seconds("env", {"path": "/x"}) == 0.0
    assert store_request_seconds("memory", {}) == 0.0


@pytest.mark.parametrize("bad", ["soon", -1, 0, True, None, [3]])
def test_a_timeout_the_store_refuses_counts_as_its_default(bad: object) -> None:
    assert store_request_seconds("vault", {"timeout": bad}) == 20.0


def test_a_slow_store_makes_the_longest_request_longer_than_the_bluum_call() -> None:
    assert longest_in_flight(BluumSettings(), [store("env"), store("vault", timeout=30)]) == 60.0
    short = BluumSettings(timeout=1.0, retry_budget=0.5)
    assert longest_in_flight(short) == 1.5
    assert longest_in_flight(short, [store("aws", timeout=0.75)]) == 1.5
    assert longest_in_flight(short, [store("aws", timeout=1)]) == 2.0


def test_every_boto3_client_is_bounded_per_attempt_and_in_attempts() -> None:
    assert aws_client_bounds() == {
        "connect_timeout": 10.0,
        "read_timeout": 10.0,
        "retries": {"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
    }
    assert aws_client_bounds(2.0)["read_timeout"] == 2.0


CONFIG = """
[stores.app]
type = "env"
path = "app.env"
prefix = "BLUUM_"

[stores.vault]
type = "vault"
url = "https://vault.example.com:8200"
path = "bluum/trading"
timeout = {timeout}

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "vault"
also_deploy_to = ["app"]

[ledger]
lease_ttl = "{lease}"
"""


def test_a_lease_shorter_than_two_requests_to_a_slow_store_is_refused_naming_that_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(CONFIG.format(timeout=60, lease="200s"), base_dir=tmp_path, store_types=("env", "vault"))
    said = str(refused.value)
    assert "ledger.lease_ttl" in said, said
    assert "3m20s is shorter than 2 requests to store 'vault' (4m:" in said, said  # durations: rotator.core.durations
    assert 'lease_ttl = "4m1s"' in said, said
    assert "[stores.vault] timeout" in said, said


def test_a_lease_of_two_requests_to_the_slowest_store_is_enough(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(timeout=60, lease="240s"), base_dir=tmp_path, store_types=("env", "vault"))
    assert config.ledger.lease_ttl == 240.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class SlowRenewals(MemoryStore):
    """A ledger whose renewal is applied at once and answered `delay` seconds later (a slow network)."""

    delay = 0.0

    def renew(self, lease: Any, ttl_seconds: float) -> Any:
        renewed = super().renew(lease, ttl_seconds)
        self.clock.now += self.delay  # type: ignore[attr-defined]
        return renewed


def test_a_slow_renewal_answer_does_not_lengthen_the_runners_view_of_its_lease() -> None:
    """The ledger dates the lease from the request; the runner must too. Dated from the answer, a renewal answered
    after 8 s of a 10 s lease (+ 2 s in flight) left the runner 10 s of lease it believed in, though another runner
    could take over 4 s later."""
    clock = Clock()
    ledger = SlowRenewals("app", clock=clock)
    ledger.clock = clock  # type: ignore[attr-defined]
    keeper = RecordKeeper(ledger, "runner 1", clock, ttl=10.0, in_flight=2.0, clock=clock)
    with keeper:
        ledger.delay = 8.0
        keeper.hold(confirm=True)  # asked of the ledger: sent at t, applied at t, answered at t + 8
        clock.now += 2.5  # t + 10.5: past the lease as the ledger dates it
        with pytest.raises(LeaseLost, match="frozen or stalled"):
            keeper.check()


class KeptLeases(MemoryStore):
    """A ledger that answers a renewal with the lease it already has, as Vault's does while two thirds are left."""

    def renew(self, lease: Any, ttl_seconds: float) -> Any:
        return lease


def test_a_renewal_answered_with_the_lease_as_it_was_leaves_the_runner_no_more_than_the_ledger_gives() -> None:
    """The ledger's lease (10 s + 2 s in flight) was taken at t and a renewal at t + 3 is answered with it unchanged:
    it still ends at t + 12, so this runner's own view must end at t + 10, not t + 13 (another runner could take
    over at t + 12, while this one still wrote)."""
    clock = Clock()
    ledger = KeptLeases("app", clock=clock)
    keeper = RecordKeeper(ledger, "runner 1", clock, ttl=10.0, in_flight=2.0, clock=clock)
    with keeper:
        clock.now += 3.0
        keeper.hold(confirm=True)
        clock.now += 6.5  # t + 9.5: the lease holds
        keeper.check()
        clock.now += 1.0  # t + 10.5: past it, as the ledger counts
        with pytest.raises(LeaseLost, match="frozen or stalled"):
            keeper.check()


def test_a_ledger_on_another_clock_than_the_wall_leaves_the_runners_view_to_the_request() -> None:
    """A memory store on the monotonic clock: its expiries are no wall-clock times, and are not read as such."""
    clock = Clock()
    ledger = KeptLeases("app")  # time.monotonic
    keeper = RecordKeeper(ledger, "runner 1", clock, ttl=10.0, in_flight=2.0, clock=clock)
    with keeper:
        clock.now += 9.5
        keeper.check()
