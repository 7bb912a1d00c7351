"""The Bluum client against the simulator over real HTTP on loopback: retries, throttle, errors, idempotency."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rotator.bluum.client import BluumClient, CheckOutcome, RetryPolicy
from rotator.core.errors import (
    BluumAuthError,
    BluumConflict,
    BluumError,
    BluumForbidden,
    BluumInvalidRequest,
    BluumNotFound,
    BluumRateLimited,
    BluumServerError,
)
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, total_budget=10.0)


@pytest.fixture(scope="module")
def client(simulator: Simulator) -> Iterator[BluumClient]:
    """One client for the module, as the engine keeps one: building an httpx.Client costs ~70 ms (TLS context)."""
    with BluumClient(simulator.base_url, retry=FAST_RETRY, timeout=5.0) as bluum:
        yield bluum


def tenant_pair(sim: Simulator, environment: str = "TEST") -> KeyPair:
    raw = sim.create_tenant_key(environment)
    return KeyPair(
        api_key=raw["public_key"],
        api_secret=Secret(raw["secret_key"]),
        environment=Environment.from_bluum(raw["environment"]),
        key_id=raw["id"],
    )


def api_log(sim: Simulator, path_prefix: str = "/v1/") -> list[dict[str, Any]]:
    return [entry for entry in sim.request_log() if entry["path"].startswith(path_prefix)]


def keys_of(sim: Simulator, investor: str) -> list[dict[str, Any]]:
    """The simulator's own record of an investor's keys (not through the client under test)."""
    return [key for key in sim.keys() if key["owner"] == investor]


def new_key(client: BluumClient, manager: KeyPair, investor: str, token: str = "tok-1") -> KeyPair:
    created = client.create_investor_key(
        manager, investor, name="rotated", environment=Environment.SANDBOX, idempotency_key=token
    )
    return created.pair


# ---------------------------------------------------------------------------------------------- the round trip


def test_create_check_list_revoke_round_trip(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    created = client.create_investor_key(
        manager, investor, name="first", environment=Environment.SANDBOX, idempotency_key="rot-1"
    )
    assert created.info.status == "active"
    assert created.info.account_id == investor
    assert created.pair.key_id == created.info.id
    assert created.pair.key_id is not None
    assert created.pair.key_id.startswith("apk_")
    assert client.check(created.pair).outcome is CheckOutcome.WORKS

    [listed] = client.list_investor_keys(manager, investor)
    assert listed == created.info

    revoked = client.revoke_investor_key(manager, investor, created.info.id)
    assert revoked.status == "revoked"
    result = client.check(created.pair)
    assert (result.outcome, result.code) == (CheckOutcome.REJECTED, "BLUM-401-003")
    assert client.check(manager).outcome is CheckOutcome.WORKS


def test_list_pages_through_the_simulator(sim: Simulator, client: BluumClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rotator.bluum.client.PAGE_SIZE", 2)
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    made = [new_key(client, manager, investor, token=f"tok-{i}").key_id for i in range(5)]
    listed = client.list_investor_keys(manager, investor)
    assert [k.id for k in listed] == made
    pages = [e for e in api_log(sim) if e["method"] == "GET" and e["path"].endswith("/api-keys")]
    assert len(pages) == 3


# ---------------------------------------------------------------------------------------------- retry rules


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(sim: Simulator, client: BluumClient, status: int) -> None:
    pair = tenant_pair(sim)
    # Retry-After 0 for the 429 keeps this test fast; test_retry_after_is_honoured covers the wait.
    sim.inject_fault(method="GET", path="/v1/assets", count=2, status=status, retry_after=0 if status == 429 else None)
    result = client.check(pair)
    assert result.outcome is CheckOutcome.WORKS
    assert [e["status"] for e in api_log(sim, "/v1/assets")] == [status, status, 200]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BluumInvalidRequest),
        (401, BluumAuthError),
        (403, BluumForbidden),
        (404, BluumNotFound),
        (409, BluumConflict),
        (422, BluumInvalidRequest),
    ],
)
def test_final_statuses_are_not_retried(
    sim: Simulator, client: BluumClient, status: int, error_class: type[BluumError]
) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    sim.inject_fault(method="GET", path="/v1/investors", count=1, status=status)
    with pytest.raises(error_class) as caught:
        client.list_investor_keys(manager, investor)
    assert caught.value.status == status
    assert caught.value.code == f"BLUM-{status}-001"
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_")
    assert len(api_log(sim)) == 1


def test_server_errors_give_up_after_max_attempts(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    sim.inject_fault(method="GET", path="/v1/investors", count=10, status=503)
    with pytest.raises(BluumServerError, match="gave up after 4 attempts"):
        client.list_investor_keys(manager, investor)
    assert [e["status"] for e in api_log(sim)] == [503] * 4


def test_rate_limit_that_outlasts_the_budget_gives_up_without_sleeping(sim: Simulator) -> None:
    pair = tenant_pair(sim)
    sim.inject_fault(method="GET", path="/v1/assets", count=1, status=429, retry_after=30)
    sleeps: list[float] = []
    with BluumClient(sim.base_url, retry=RetryPolicy(total_budget=5.0), sleep=sleeps.append) as bluum:
        result = bluum.check(pair)
    assert result.outcome is CheckOutcome.INCONCLUSIVE
    assert result.status == 429
    assert "budget" in result.reason
    assert all(pause < 1.0 for pause in sleeps), f"slept toward a Retry-After it could not honour: {sleeps}"


def test_rate_limited_error_from_a_manager_call_carries_retry_after(sim: Simulator) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    sim.inject_fault(method="GET", path="/v1/investors", count=1, status=429, retry_after=20)
    with (
        BluumClient(sim.base_url, retry=RetryPolicy(total_budget=5.0)) as bluum,
        pytest.raises(BluumRateLimited) as caught,
    ):
        bluum.list_investor_keys(manager, investor)
    assert caught.value.retry_after == 20
    assert caught.value.code == "BLUM-429-001"


def test_read_timeout_is_retried(sim: Simulator) -> None:
    pair = tenant_pair(sim)
    sim.inject_fault(method="GET", path="/v1/assets", count=1, latency_ms=800)
    with BluumClient(sim.base_url, retry=FAST_RETRY, timeout=0.3) as bluum:
        result = bluum.check(pair)
    assert result.outcome is CheckOutcome.WORKS
    # The server still answers the abandoned request 0.8 s later; wait for it so it is not logged in the next test.
    deadline = time.monotonic() + 5.0
    while len(api_log(sim, "/v1/assets")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(e["status"], e["fault"]) for e in api_log(sim, "/v1/assets")] == [(200, None), (200, "latency")]


def test_dropped_connection_is_retried(sim: Simulator, client: BluumClient) -> None:
    pair = tenant_pair(sim)
    sim.inject_fault(method="GET", path="/v1/assets", count=2, drop=True)
    assert client.check(pair).outcome is CheckOutcome.WORKS
    assert [e["fault"] for e in api_log(sim, "/v1/assets")] == ["drop", "drop", None]


def test_unreachable_server_is_inconclusive_not_an_exception() -> None:
    with BluumClient(refused_url(), retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as bluum:
        pair = KeyPair("pk_x", Secret("sk_unreachable_secret"), Environment.SANDBOX, key_id="apk_x")
        result = bluum.check(pair)
    assert result.outcome is CheckOutcome.INCONCLUSIVE
    assert result.status is None
    assert "ConnectError" in result.reason


def refused_url() -> str:
    """A loopback port nobody listens on: bind, note the port, close."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# ---------------------------------------------------------------------------------------------- Retry-After


def test_retry_after_is_honoured(sim: Simulator, client: BluumClient) -> None:
    pair = tenant_pair(sim)
    sim.inject_fault(method="GET", path="/v1/assets", count=1, status=429, retry_after=1)
    started = time.monotonic()
    result = client.check(pair)
    elapsed = time.monotonic() - started
    assert result.outcome is CheckOutcome.WORKS
    assert elapsed >= 0.98
    log = api_log(sim, "/v1/assets")
    assert [e["status"] for e in log] == [429, 200]
    assert log[1]["time"] - log[0]["time"] >= 0.98


# ---------------------------------------------------------------------------------------------- idempotency


def test_create_retried_after_a_dropped_response_leaves_exactly_one_key(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    sim.inject_fault(method="POST", path=f"/v1/investors/{investor}/api-keys", count=1, drop=True)
    created = client.create_investor_key(
        manager, investor, name="once", environment=Environment.SANDBOX, idempotency_key="rot-drop-1"
    )
    investor_keys = keys_of(sim, investor)
    assert len(investor_keys) == 1
    assert investor_keys[0]["id"] == created.info.id
    posts = [e for e in api_log(sim) if e["method"] == "POST"]
    assert [(e["status"], e["fault"]) for e in posts] == [(201, "drop"), (201, None)]
    # The replayed answer carries the same secret, so the pair we return is the one Bluum made.
    assert client.check(created.pair).outcome is CheckOutcome.WORKS


def test_a_new_idempotency_key_makes_a_new_key(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    first = new_key(client, manager, investor, token="a")
    again = new_key(client, manager, investor, token="a")
    other = new_key(client, manager, investor, token="b")
    assert first.key_id == again.key_id
    assert first.api_secret == again.api_secret
    assert other.key_id != first.key_id
    assert len(keys_of(sim, investor)) == 2


def test_idempotency_key_reused_with_another_body_is_a_conflict(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    client.create_investor_key(manager, investor, name="one", environment=Environment.SANDBOX, idempotency_key="same")
    with pytest.raises(BluumConflict, match="Idempotency-Key"):
        client.create_investor_key(
            manager, investor, name="two", environment=Environment.SANDBOX, idempotency_key="same"
        )


@pytest.mark.parametrize("repeat", ["ok", "conflict"])
def test_revoke_retried_after_a_dropped_response_succeeds(sim: Simulator, client: BluumClient, repeat: str) -> None:
    sim.configure(revoke_repeat=repeat)
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    pair = new_key(client, manager, investor)
    assert pair.key_id is not None
    sim.inject_fault(method="POST", path=f"/v1/investors/{investor}/api-keys/{pair.key_id}/revoke", drop=True)
    info = client.revoke_investor_key(manager, investor, pair.key_id)
    assert info.status == "revoked"
    assert [k["status"] for k in keys_of(sim, investor) if k["id"] == pair.key_id] == ["revoked"]
    revokes = [e["status"] for e in api_log(sim) if e["path"].endswith("/revoke")]
    assert revokes == ([200, 200] if repeat == "ok" else [200, 409])


def test_revoke_of_an_unknown_key_is_not_found(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    with pytest.raises(BluumNotFound) as caught:
        client.revoke_investor_key(manager, investor, "apk_" + "0" * 26)
    assert caught.value.code == "BLUM-404-001"


# ---------------------------------------------------------------------------------------------- throttle


def test_burst_through_the_throttle_draws_no_429(sim: Simulator) -> None:
    manager = tenant_pair(sim)
    errors: list[BaseException] = []
    outcomes: list[CheckOutcome] = []
    lock = threading.Lock()
    # Two clients, as two components of one process would have: the throttle is shared through the pair.
    clients = [BluumClient(sim.base_url, retry=RetryPolicy(max_attempts=1)) for _ in range(2)]

    def worker(bluum: BluumClient) -> None:
        try:
            for _ in range(10):
                result = bluum.check(manager)
                with lock:
                    outcomes.append(result.outcome)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(clients[i % 2],)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for bluum in clients:
        bluum.close()
    assert errors == []
    assert outcomes == [CheckOutcome.WORKS] * 40
    statuses = [e["status"] for e in api_log(sim, "/v1/assets")]
    assert statuses == [200] * 40
    # 40 requests at 9/s take about 39/9 s; a throttle that let bursts through would finish far sooner.
    assert elapsed >= 39 / 10
    times = sorted(e["time"] for e in api_log(sim, "/v1/assets"))
    assert min(times[i + 10] - times[i] for i in range(len(times) - 10)) > 1.0


def test_without_the_throttle_the_same_burst_is_rate_limited(sim: Simulator) -> None:
    """The premise of the test above: the simulator really enforces 10/s per pair."""
    manager = tenant_pair(sim)
    auth = (manager.api_key, manager.api_secret.reveal())
    with httpx.Client(base_url=sim.base_url, auth=auth) as raw:
        statuses = [raw.get("/assets").status_code for _ in range(15)]
    assert 429 in statuses


# ---------------------------------------------------------------------------------------------- errors and check()


@pytest.mark.parametrize("style", ["wrapped", "flat", "legacy"])
def test_every_error_style_maps_to_the_typed_tree(sim: Simulator, client: BluumClient, style: str) -> None:
    sim.configure(error_style=style)
    manager = tenant_pair(sim)
    unknown = "inv_" + "0" * 26
    with pytest.raises(BluumNotFound) as caught:
        client.list_investor_keys(manager, unknown)
    error = caught.value
    assert error.status == 404
    assert error.code == "BLUM-404-001"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.trace_id
    assert error.request_id == api_log(sim)[-1]["request_id"]

    wrong = KeyPair(manager.api_key, Secret("sk_wrong_secret_value"), Environment.SANDBOX, key_id=manager.key_id)
    result = client.check(wrong)
    assert (result.outcome, result.status, result.code) == (CheckOutcome.REJECTED, 401, "BLUM-401-003")


@pytest.mark.parametrize(
    ("action", "code", "reason"),
    [
        ("revoke_key", "BLUM-401-003", "wrong key or secret, or revoked"),
        ("deactivate_key", "BLUM-401-004", "key inactive"),
        ("expire_key", "BLUM-401-005", "key expired"),
    ],
)
def test_check_tells_the_three_rejections_apart(
    sim: Simulator, client: BluumClient, action: str, code: str, reason: str
) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    pair = new_key(client, manager, investor)
    assert client.check(pair).outcome is CheckOutcome.WORKS
    getattr(sim, action)(pair.key_id)
    result = client.check(pair)
    assert result.outcome is CheckOutcome.REJECTED
    assert (result.status, result.code, result.reason) == (401, code, reason)
    assert result.request_id is not None


def test_a_new_key_is_rejected_until_it_has_propagated(sim: Simulator, client: BluumClient) -> None:
    sim.configure(propagation_delay=30)
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    pair = new_key(client, manager, investor)
    result = client.check(pair)
    assert (result.outcome, result.code) == (CheckOutcome.REJECTED, "BLUM-401-003")
    sim.advance_clock(31)
    assert client.check(pair).outcome is CheckOutcome.WORKS


def test_check_is_inconclusive_on_403(sim: Simulator, client: BluumClient) -> None:
    sim.inject_fault(method="GET", path="/v1/assets", status=403)
    result = client.check(tenant_pair(sim))
    assert (result.outcome, result.status) == (CheckOutcome.INCONCLUSIVE, 403)


def test_production_key_cannot_mint_a_sandbox_key(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim, "PRODUCTION")
    investor = sim.create_investor()
    with pytest.raises(BluumForbidden) as caught:
        client.create_investor_key(manager, investor, name="x", environment=Environment.SANDBOX, idempotency_key="env")
    assert caught.value.code == "BLUM-403-003"
    assert keys_of(sim, investor) == []


def test_an_investor_scoped_key_cannot_manage_keys(sim: Simulator, client: BluumClient) -> None:
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    investor_pair = new_key(client, manager, investor)
    with pytest.raises(BluumForbidden):
        client.create_investor_key(
            investor_pair, investor, name="x", environment=Environment.SANDBOX, idempotency_key="scoped"
        )


# ---------------------------------------------------------------------------------------------- logs


def test_logs_name_each_attempt_with_the_servers_request_id(
    sim: Simulator, client: BluumClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    manager = tenant_pair(sim)
    investor = sim.create_investor()
    sim.inject_fault(method="POST", path=f"/v1/investors/{investor}/api-keys", count=1, status=503)
    created = client.create_investor_key(
        manager, investor, name="logged", environment=Environment.SANDBOX, idempotency_key="log-1"
    )
    records = [
        r.__dict__["fields"] for r in caplog.records if r.name == "rotator.bluum" and "retry" not in r.getMessage()
    ]
    assert [(f["method"], f["status"], f["attempt"], f["key"]) for f in records] == [
        ("POST", 503, 1, manager.key_id),
        ("POST", 201, 2, manager.key_id),
    ]
    assert [f["request_id"] for f in records] == [e["request_id"] for e in api_log(sim)]
    text = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    assert created.pair.api_secret.reveal() not in text
    assert manager.api_secret.reveal() not in text
    assert "Basic " not in text
