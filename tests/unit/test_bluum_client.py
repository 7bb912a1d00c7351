"""Unit tests of the Bluum client: no network (httpx.MockTransport), no real sleeping (fake clock + sleep)."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest

from rotator.bluum import throttle as throttle_module
from rotator.bluum.client import (
    BluumClient,
    BluumUnexpectedResponse,
    CheckOutcome,
    RetryPolicy,
    parse_retry_after,
)
from rotator.bluum.throttle import SAFETY_MARGIN, Slot, Throttle, key_hash, throttle_for
from rotator.core.errors import (
    BluumAuthError,
    BluumConflict,
    BluumError,
    BluumForbidden,
    BluumInvalidRequest,
    BluumNotFound,
    BluumRateLimited,
    BluumServerError,
    BluumUnavailable,
)
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret

BASE = "https://bluum.test/v1"
NO_THROTTLE = {Environment.SANDBOX: math.inf, Environment.PRODUCTION: math.inf}
Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def make_pair(environment: Environment = Environment.SANDBOX, key_id: str | None = "apk_manager") -> KeyPair:
    """A fresh pair per call: the throttle registry is process-wide, so tests never share a key."""
    suffix = uuid.uuid4().hex
    return KeyPair(
        api_key=f"pk_{suffix[:16]}",
        api_secret=Secret(f"sk_secret_{suffix}"),
        environment=environment,
        key_id=key_id,
    )


def make_client(
    handler: Handler,
    clock: FakeClock | None = None,
    *,
    retry: RetryPolicy | None = None,
    rate_limits: dict[Environment, float] | None = None,
) -> tuple[BluumClient, FakeClock]:
    clock = clock or FakeClock()
    client = BluumClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=retry,
        rate_limits=NO_THROTTLE if rate_limits is None else rate_limits,
        sleep=clock.sleep,
        clock=clock,
    )
    return client, clock


def error_response(
    status: int,
    code: str,
    message: str = "nope",
    *,
    style: str = "wrapped",
    headers: dict[str, str] | None = None,
    trace_id: str | None = "trc_1",
) -> httpx.Response:
    if style == "wrapped":
        inner: dict[str, Any] = {"type": "x_error", "code": code, "message": message}
        if trace_id:
            inner["trace_id"] = trace_id
        body: dict[str, Any] = {"error": inner}
    elif style == "flat":
        body = {"code": code, "message": message}
        if trace_id:
            body["trace_id"] = trace_id
    else:
        body = {"status": "error", "code": code, "message": message}
        if trace_id:
            body["trace_id"] = trace_id
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req_abc", **(headers or {})})


class Script:
    """A handler that answers from a list (the last answer repeats) and records every request."""

    def __init__(self, *answers: httpx.Response | type[httpx.TransportError] | Callable[[httpx.Request], Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, type) and issubclass(answer, httpx.TransportError):
            raise answer("simulated", request=request)
        result = cast("Callable[[httpx.Request], Any]", answer)(request)
        assert isinstance(result, httpx.Response)
        return result


def ok(body: Any = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=[] if body is None else body, headers={"X-Request-Id": "req_ok"})


def key_object(
    key_id: str = "apk_new",
    *,
    environment: str | None = "TEST",
    status: str | None = "active",
    account_id: str = "inv_1",
    **extra: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": key_id,
        "object": "api_key",
        "created": 1700000000,
        "livemode": environment == "PRODUCTION",
        "account_id": account_id,
        "name": "rotated",
        "public_key": f"pk_{key_id}",
        "expires_at": None,
        "metadata": {},
    }
    if environment is not None:
        obj["environment"] = environment
    if status is not None:
        obj["status"] = status
    obj.update(extra)
    return obj


# ---------------------------------------------------------------------------------------------- request basics


def test_basic_auth_uses_api_key_and_revealed_secret_and_joins_base_url() -> None:
    script = Script(ok())
    client, _ = make_client(script)
    pair = make_pair()
    with client:
        assert client.check(pair).outcome is CheckOutcome.WORKS
    request = script.requests[0]
    expected = base64.b64encode(f"{pair.api_key}:{pair.api_secret.reveal()}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert str(request.url) == "https://bluum.test/v1/assets?asset_class=us_equity&tradable=true"
    assert request.method == "GET"


def test_for_environment_defaults_to_documented_base_urls_and_is_overridable() -> None:
    with BluumClient.for_environment(Environment.PRODUCTION) as prod:
        assert prod.base_url == "https://api.bluumfinance.com/v1"
    with BluumClient.for_environment(Environment.SANDBOX) as sandbox:
        assert sandbox.base_url == "https://sandbox.api.bluumfinance.com/v1"
    with BluumClient.for_environment(Environment.SANDBOX, base_url="http://127.0.0.1:9/v1/") as local:
        assert local.base_url == "http://127.0.0.1:9/v1"


def test_ids_are_quoted_as_single_path_segments() -> None:
    script = Script(ok({"object": "list", "data": [], "has_more": False}))
    client, _ = make_client(script)
    client.list_investor_keys(make_pair(), "../admin")
    assert script.requests[0].url.raw_path.startswith(b"/v1/investors/..%2Fadmin/api-keys")


def test_redirects_are_not_followed() -> None:
    script = Script(httpx.Response(302, headers={"Location": "https://elsewhere.test/"}))
    client, _ = make_client(script)
    result = client.check(make_pair())
    assert result.outcome is CheckOutcome.INCONCLUSIVE
    assert result.status == 302
    assert len(script.requests) == 1


# ---------------------------------------------------------------------------------------------- retry rules


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    script = Script(error_response(status, f"BLUM-{status}-001"), ok())
    client, clock = make_client(script)
    assert client.check(make_pair()).outcome is CheckOutcome.WORKS
    assert len(script.requests) == 2
    assert len(clock.sleeps) == 1


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
def test_final_statuses_are_never_retried(status: int, error_class: type[BluumError]) -> None:
    script = Script(error_response(status, f"BLUM-{status}-001"), ok())
    client, clock = make_client(script)
    with pytest.raises(error_class) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert len(script.requests) == 1
    assert clock.sleeps == []
    assert caught.value.status == status
    assert caught.value.code == f"BLUM-{status}-001"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
    ],
)
def test_network_errors_are_retried_for_gets(failure: type[httpx.TransportError]) -> None:
    script = Script(failure, ok())
    client, _ = make_client(script)
    assert client.check(make_pair()).outcome is CheckOutcome.WORKS
    assert len(script.requests) == 2


@pytest.mark.parametrize("failure", [httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError])
def test_configuration_transport_errors_are_not_retried(failure: type[httpx.TransportError]) -> None:
    script = Script(failure, ok())
    client, _ = make_client(script)
    with pytest.raises(BluumUnavailable) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert len(script.requests) == 1
    assert isinstance(caught.value.__cause__, failure)


@pytest.mark.parametrize(
    ("answer", "retried"),
    [
        (httpx.ConnectError, True),  # never reached the server
        (httpx.ConnectTimeout, True),
        (httpx.PoolTimeout, True),
        (error_response(429, "BLUM-429-001"), True),  # refused before processing
        (httpx.ReadTimeout, False),  # may have been processed: a replay could repeat it
        (httpx.RemoteProtocolError, False),
        (error_response(503, "BLUM-503-001"), False),
    ],
)
def test_a_post_without_idempotency_is_retried_only_when_it_cannot_have_been_processed(
    answer: httpx.Response | type[httpx.TransportError], retried: bool
) -> None:
    script = Script(answer, ok({}))
    client, _ = make_client(script)
    pair = make_pair()
    if retried:
        client._request("POST", "/some/action", pair, op="act", replay_safe=False)
    else:
        with pytest.raises(BluumError):
            client._request("POST", "/some/action", pair, op="act", replay_safe=False)
    assert len(script.requests) == (2 if retried else 1)


def test_backoff_is_exponential_with_full_jitter_capped_by_max_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, float]] = []

    def upper_bound(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", upper_bound)  # the client draws jitter from the module
    script = Script(error_response(503, "BLUM-503-001"))
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=3.0, total_budget=1000)
    client, clock = make_client(script, retry=policy)
    with pytest.raises(BluumServerError):
        client.list_investor_keys(make_pair(), "inv_1")
    # tenacity computes a wait after every failure, the last one included, but never sleeps it.
    assert bounds[:5] == [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 3.0)]
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_is_random_between_zero_and_the_cap() -> None:
    script = Script(error_response(500, "BLUM-500-001"))
    policy = RetryPolicy(max_attempts=40, base_delay=1.0, max_delay=1.0, total_budget=1000)
    client, clock = make_client(script, retry=policy)
    with pytest.raises(BluumServerError):
        client.list_investor_keys(make_pair(), "inv_1")
    assert len(clock.sleeps) == 39
    assert all(0.0 <= s <= 1.0 for s in clock.sleeps)
    assert len(set(clock.sleeps)) > 30  # jittered, not a fixed delay


def test_attempts_are_bounded_and_the_last_error_says_so() -> None:
    script = Script(error_response(502, "BLUM-502-001"))
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=3, total_budget=1000))
    with pytest.raises(BluumServerError) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert len(script.requests) == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert caught.value.status == 502
    assert caught.value.request_id == "req_abc"


def test_no_sleep_starts_that_would_overrun_the_budget() -> None:
    script = Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "10"}), ok())
    client, clock = make_client(script, retry=RetryPolicy(max_attempts=5, total_budget=5.0))
    with pytest.raises(BluumRateLimited) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert clock.sleeps == []  # gave up at once rather than sleep past the budget
    assert len(script.requests) == 1
    assert caught.value.retry_after == 10
    assert "budget" in str(caught.value)


def test_budget_counts_time_spent_in_requests() -> None:
    clock = FakeClock()

    def slow_failure(request: httpx.Request) -> httpx.Response:
        clock.now += 4.0  # each attempt takes 4 s before failing
        return error_response(503, "BLUM-503-001")

    script = Script(slow_failure)
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=0.1, total_budget=10.0)
    client, _ = make_client(script, clock, retry=policy)
    with pytest.raises(BluumServerError) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    # 4 s, sleep, 8 s, sleep would end past 8.1 < 10 -> third attempt at ~8.2 ends ~12.2; no fourth.
    assert len(script.requests) == 3
    assert "budget" in str(caught.value)


def test_transport_failure_after_retries_is_unavailable_and_chained() -> None:
    script = Script(httpx.ConnectError)
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(BluumUnavailable) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status is None
    assert "gave up after 2 attempts" in str(caught.value)
    assert "bluum.test" in str(caught.value)


# ---------------------------------------------------------------------------------------------- Retry-After


def test_retry_after_seconds_is_a_floor_under_the_jitter() -> None:
    script = Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "3"}), ok())
    client, clock = make_client(script)
    assert client.check(make_pair()).outcome is CheckOutcome.WORKS
    assert len(clock.sleeps) == 1
    assert 3.0 <= clock.sleeps[0] <= 3.0 + 0.25


def test_retry_after_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 6, usegmt=True)
    script = Script(error_response(503, "BLUM-503-001", headers={"Retry-After": when}), ok())
    client, clock = make_client(script)
    assert client.check(make_pair()).outcome is CheckOutcome.WORKS
    assert len(clock.sleeps) == 1
    assert 4.5 <= clock.sleeps[0] <= 6.5  # the date has 1-second resolution


def test_retry_after_holds_back_every_user_of_the_pair() -> None:
    script = Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "2"}), ok())
    clock = FakeClock()
    first, _ = make_client(script, clock, retry=RetryPolicy(max_attempts=1), rate_limits={Environment.SANDBOX: 10.0})
    second, _ = make_client(script, clock, rate_limits={Environment.SANDBOX: 10.0})
    pair = make_pair()
    assert first.check(pair).outcome is CheckOutcome.INCONCLUSIVE
    t429 = clock.now
    # Another client (another thread) of the same pair waits out the Retry-After before it sends anything.
    assert second.check(pair).outcome is CheckOutcome.WORKS
    assert clock.sleeps == pytest.approx([2.0])
    assert clock.now >= t429 + 2.0
    assert len(script.requests) == 2


def test_a_hold_longer_than_the_budget_gives_up_without_sending_or_sleeping() -> None:
    script = Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "60"}), ok())
    clock = FakeClock()
    first, _ = make_client(script, clock, retry=RetryPolicy(max_attempts=1), rate_limits={Environment.SANDBOX: 10.0})
    second, _ = make_client(
        script, clock, retry=RetryPolicy(total_budget=30.0), rate_limits={Environment.SANDBOX: 10.0}
    )
    pair = make_pair()
    first.check(pair)
    with pytest.raises(BluumRateLimited, match="longer than the time budget") as caught:
        second.list_investor_keys(pair, "inv_1")
    assert caught.value.retry_after == pytest.approx(60.0)
    assert len(script.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("5", 5.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("1.5", 1.5),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_date_against_a_given_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == pytest.approx(30.0)


# ---------------------------------------------------------------------------------------------- error shapes


@pytest.mark.parametrize("style", ["wrapped", "flat", "legacy"])
def test_all_three_error_shapes_are_parsed(style: str) -> None:
    script = Script(error_response(404, "BLUM-404-001", "Investor not found", style=style, trace_id="trc_42"))
    client, _ = make_client(script)
    with pytest.raises(BluumNotFound) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    error = caught.value
    assert (error.status, error.code, error.request_id, error.trace_id) == (404, "BLUM-404-001", "req_abc", "trc_42")
    assert "Investor not found" in str(error)
    assert "list keys of inv_1" in str(error)


def test_legacy_product_not_enabled_body_is_forbidden() -> None:
    body = {"status": "error", "code": "PRODUCT_NOT_ENABLED", "message": "Market data is not enabled"}
    script = Script(httpx.Response(403, json=body))
    client, _ = make_client(script)
    with pytest.raises(BluumForbidden) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert caught.value.code == "PRODUCT_NOT_ENABLED"
    assert caught.value.request_id is None


def test_non_json_error_body_still_maps_by_status_and_uses_headers() -> None:
    script = Script(
        httpx.Response(
            502, text="<html>Bad gateway</html>", headers={"X-Request-Id": "req_gw", "X-Trace-Id": "trc_hdr"}
        )
    )
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(BluumServerError) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    error = caught.value
    assert (error.status, error.code, error.request_id, error.trace_id) == (502, None, "req_gw", "trc_hdr")
    assert "<html>" not in str(error)


def test_trace_id_in_body_wins_over_header_and_top_level_is_accepted() -> None:
    body = {"error": {"type": "api_error", "code": "BLUM-500-001", "message": "boom"}, "trace_id": "trc_top"}
    script = Script(httpx.Response(500, json=body, headers={"X-Trace-Id": "trc_hdr"}))
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(BluumServerError) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert caught.value.trace_id == "trc_top"


def test_rate_limited_error_carries_retry_after() -> None:
    script = Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "1"}))
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(BluumRateLimited) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert caught.value.retry_after == 1.0
    assert caught.value.code == "BLUM-429-001"


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("BLUM-401-005", "key expired: create a new key pair (rotate)"),
        ("BLUM-401-004", "key inactive: reactivate the key in the Bluum dashboard"),
        ("BLUM-401-003", "wrong key or secret, or revoked"),
        ("BLUM-401-002", "malformed Authorization header"),
        ("BLUM-401-999", "authentication failed"),
    ],
)
def test_auth_errors_are_actionable(code: str, advice: str) -> None:
    script = Script(error_response(401, code))
    client, _ = make_client(script)
    with pytest.raises(BluumAuthError) as caught:
        client.list_investor_keys(make_pair(), "inv_1")
    assert advice in str(caught.value)
    assert caught.value.code == code


def test_error_messages_never_carry_the_secret_even_if_the_server_echoes_it() -> None:
    pair = make_pair()
    echoed = f"bad credentials {pair.api_key}:{pair.api_secret.reveal()}"
    script = Script(error_response(400, "BLUM-400-001", echoed))
    client, _ = make_client(script)
    with pytest.raises(BluumInvalidRequest) as caught:
        client.list_investor_keys(pair, "inv_1")
    assert pair.api_secret.reveal() not in str(caught.value)
    assert pair.api_secret.reveal() not in repr(caught.value.args)
    assert "********" in str(caught.value)


# ---------------------------------------------------------------------------------------------- check()


@pytest.mark.parametrize(
    "body",
    [
        [],
        [{"symbol": "AAPL"}],
        {"status": "success", "data": [], "count": 0},
        {"object": "list", "data": [], "has_more": False},
    ],
)
def test_check_works_on_200_with_any_json(body: Any) -> None:
    client, _ = make_client(Script(ok(body)))
    result = client.check(make_pair())
    assert result.outcome is CheckOutcome.WORKS
    assert (result.status, result.code, result.request_id) == (200, None, "req_ok")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("BLUM-401-003", "wrong key or secret, or revoked"),
        ("BLUM-401-004", "key inactive"),
        ("BLUM-401-005", "key expired"),
    ],
)
@pytest.mark.parametrize("style", ["wrapped", "flat", "legacy"])
def test_check_rejects_on_the_three_key_codes(code: str, reason: str, style: str) -> None:
    script = Script(error_response(401, code, style=style), ok())
    client, _ = make_client(script)
    result = client.check(make_pair())
    assert result.outcome is CheckOutcome.REJECTED
    assert (result.status, result.code, result.reason, result.request_id) == (401, code, reason, "req_abc")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        error_response(401, "BLUM-401-001"),
        error_response(401, "BLUM-401-002"),
        error_response(401, "BLUM-401-042"),
        httpx.Response(401, text="Unauthorized"),
        error_response(403, "BLUM-403-001"),
        error_response(404, "BLUM-404-002"),
        error_response(429, "BLUM-429-001"),
        error_response(503, "BLUM-503-001"),
        httpx.ReadTimeout,
        httpx.ConnectError,
        httpx.Response(200, text="<html>captive portal</html>"),
        httpx.Response(204),
    ],
    ids=[
        "401-001",
        "401-002",
        "401-other",
        "401-nojson",
        "403",
        "404",
        "429",
        "503",
        "read-timeout",
        "connect-error",
        "200-html",
        "204",
    ],
)
def test_check_is_inconclusive_for_everything_else(answer: httpx.Response | type[httpx.TransportError]) -> None:
    client, _ = make_client(Script(answer), retry=RetryPolicy(max_attempts=3))
    result = client.check(make_pair())
    assert result.outcome is CheckOutcome.INCONCLUSIVE
    assert result.reason


def test_check_is_inconclusive_after_retries_and_says_why() -> None:
    script = Script(error_response(503, "BLUM-503-001"))
    client, _ = make_client(script, retry=RetryPolicy(max_attempts=3))
    result = client.check(make_pair())
    assert result.outcome is CheckOutcome.INCONCLUSIVE
    assert (result.status, result.code) == (503, "BLUM-503-001")
    assert "gave up after 3 attempts" in result.reason
    assert len(script.requests) == 3


def test_check_uses_a_configurable_path() -> None:
    script = Script(ok())
    client = BluumClient(BASE, transport=httpx.MockTransport(script), rate_limits=NO_THROTTLE, check_path="/accounts")
    client.check(make_pair())
    assert script.requests[0].url.path == "/v1/accounts"


# ---------------------------------------------------------------------------------------------- list


def test_list_follows_every_page() -> None:
    all_keys = [key_object(f"apk_{i:03d}") for i in range(230)]

    def page(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params["offset"])
        chunk = all_keys[offset : offset + limit]
        return ok(
            {
                "object": "list",
                "url": "/v1/investors/inv_1/api-keys",
                "data": chunk,
                "has_more": offset + limit < len(all_keys),
            }
        )

    script = Script(page)
    client, _ = make_client(script)
    keys = client.list_investor_keys(make_pair(), "inv_1")
    assert [k.id for k in keys] == [f"apk_{i:03d}" for i in range(230)]
    assert [(r.url.params["offset"], r.url.params["limit"]) for r in script.requests] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "100"),
    ]
    assert keys[0].environment is Environment.SANDBOX
    assert keys[0].active
    assert keys[0].account_id == "inv_1"


def test_list_deduplicates_keys_shifted_by_a_concurrent_create() -> None:
    pages = [
        ok({"data": [key_object("apk_a"), key_object("apk_b")], "has_more": True}),
        ok({"data": [key_object("apk_b"), key_object("apk_c")], "has_more": False}),
    ]
    client, _ = make_client(Script(*pages))
    assert [k.id for k in client.list_investor_keys(make_pair(), "inv_1")] == ["apk_a", "apk_b", "apk_c"]


def test_list_parses_items_without_status_or_environment() -> None:
    item = key_object("apk_x", environment=None, status=None)
    del item["livemode"]
    client, _ = make_client(Script(ok({"data": [item], "has_more": False})))
    [info] = client.list_investor_keys(make_pair(), "inv_1")
    assert info.status == "unknown"
    assert info.environment is None
    assert not info.active


@pytest.mark.parametrize(
    "body",
    [
        {"has_more": False},
        {"data": "nope"},
        {"data": [], "has_more": True},
        {"data": [{"name": "no id"}]},
        {"data": [key_object(environment="STAGING")]},
        [1, 2],
    ],
    ids=["no-data", "data-not-list", "has-more-empty", "item-no-id", "bad-env", "not-object"],
)
def test_list_rejects_malformed_pages(body: Any) -> None:
    client, _ = make_client(Script(ok(body)))
    with pytest.raises(BluumUnexpectedResponse):
        client.list_investor_keys(make_pair(), "inv_1")


# ---------------------------------------------------------------------------------------------- create


def test_create_sends_body_and_idempotency_key_and_returns_the_pair() -> None:
    secret = "sk_live_" + uuid.uuid4().hex
    script = Script(ok({**key_object("apk_new"), "secret_key": secret}, status=201))
    client, _ = make_client(script)
    created = client.create_investor_key(
        make_pair(), "inv_1", name="rotated", environment=Environment.SANDBOX, idempotency_key="rot-123"
    )
    request = script.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/v1/investors/inv_1/api-keys"
    assert request.headers["idempotency-key"] == "rot-123"
    assert json.loads(request.content) == {"name": "rotated", "environment": "TEST"}
    assert created.pair == KeyPair(
        api_key="pk_apk_new", api_secret=Secret(secret), environment=Environment.SANDBOX, key_id="apk_new"
    )
    assert created.info.id == "apk_new"
    assert created.info.status == "active"
    assert secret not in repr(created)


def test_create_retry_resends_the_same_idempotency_key() -> None:
    body = {**key_object("apk_new"), "secret_key": "sk_test_" + uuid.uuid4().hex}
    script = Script(
        httpx.RemoteProtocolError, httpx.ReadTimeout, error_response(503, "BLUM-503-001"), ok(body, status=201)
    )
    client, _ = make_client(script)
    created = client.create_investor_key(
        make_pair(), "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="rot-abc"
    )
    assert created.pair.key_id == "apk_new"
    assert [r.headers["idempotency-key"] for r in script.requests] == ["rot-abc"] * 4
    assert len({r.content for r in script.requests}) == 1


def test_create_requires_an_idempotency_key() -> None:
    client, _ = make_client(Script(ok()))
    with pytest.raises(ValueError, match="idempotency_key"):
        client.create_investor_key(make_pair(), "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="")


def test_create_infers_environment_from_livemode_when_missing() -> None:
    body = {**key_object("apk_p", environment=None), "livemode": True, "secret_key": "sk_" + uuid.uuid4().hex}
    client, _ = make_client(Script(ok(body, status=201)))
    created = client.create_investor_key(
        make_pair(Environment.PRODUCTION), "inv_1", name="n", environment=Environment.PRODUCTION, idempotency_key="k"
    )
    assert created.pair.environment is Environment.PRODUCTION
    assert created.info.environment is Environment.PRODUCTION


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**key_object("apk_bad")}, "no secret_key"),
        ({**key_object("apk_bad"), "secret_key": ""}, "no secret_key"),
        ({**key_object("apk_bad"), "secret_key": 123}, "no secret_key"),
        (
            {**key_object("apk_bad", environment="PRODUCTION"), "secret_key": "SECRET-VALUE-1"},
            "asked for a TEST key but Bluum made apk_bad as PRODUCTION",
        ),
        ({**key_object("apk_bad", environment="TEST", livemode=True), "secret_key": "SECRET-VALUE-2"}, "livemode"),
        (
            {k: v for k, v in key_object("apk_bad", environment=None).items() if k != "livemode"}
            | {"secret_key": "SECRET-VALUE-3"},
            "neither environment nor livemode",
        ),
        ({**key_object("apk_bad", public_key=None), "secret_key": "SECRET-VALUE-4"}, "no public_key"),
        ({**key_object("apk_bad", account_id="inv_other"), "secret_key": "SECRET-VALUE-5"}, "inv_other"),
        ({"id": "apk_bad", "secret_key": "SECRET-VALUE-6"}, "no public_key"),
    ],
    ids=[
        "missing-secret",
        "empty-secret",
        "secret-not-str",
        "wrong-env",
        "env-livemode-disagree",
        "no-env",
        "no-public-key",
        "other-investor",
        "bare",
    ],
)
def test_create_validates_the_answer(body: dict[str, Any], fragment: str) -> None:
    client, _ = make_client(Script(ok(body, status=201)))
    with pytest.raises(BluumUnexpectedResponse) as caught:
        client.create_investor_key(make_pair(), "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="k")
    message = str(caught.value)
    assert fragment in message
    assert "SECRET-VALUE" not in message
    assert "apk_bad" in message
    assert caught.value.key_id == "apk_bad"
    assert isinstance(caught.value, BluumServerError)


def test_create_with_a_non_json_answer_is_unexpected() -> None:
    client, _ = make_client(Script(httpx.Response(201, text="created!")))
    with pytest.raises(BluumUnexpectedResponse, match="not a JSON object"):
        client.create_investor_key(make_pair(), "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="k")


# ---------------------------------------------------------------------------------------------- revoke


def test_revoke_posts_without_body_and_returns_the_key() -> None:
    script = Script(ok(key_object("apk_old", status="revoked")))
    client, _ = make_client(script)
    info = client.revoke_investor_key(make_pair(), "inv_1", "apk_old")
    assert info.status == "revoked"
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/investors/inv_1/api-keys/apk_old/revoke")
    assert request.content == b""
    assert "idempotency-key" not in request.headers


def test_revoke_is_retried_after_an_ambiguous_network_error() -> None:
    script = Script(httpx.ReadTimeout, ok(key_object("apk_old", status="revoked")))
    client, _ = make_client(script)
    assert client.revoke_investor_key(make_pair(), "inv_1", "apk_old").status == "revoked"
    assert len(script.requests) == 2


@pytest.mark.parametrize("status", [409, 400])
def test_revoke_refused_because_already_revoked_is_success(status: int) -> None:
    listing = ok({"data": [key_object("apk_old", status="revoked")], "has_more": False})
    script = Script(httpx.ReadTimeout, error_response(status, f"BLUM-{status}-001", "already revoked"), listing)
    client, _ = make_client(script)
    info = client.revoke_investor_key(make_pair(), "inv_1", "apk_old")
    assert info.id == "apk_old"
    assert info.status == "revoked"
    assert [r.method for r in script.requests] == ["POST", "POST", "GET"]


def test_revoke_refused_for_a_key_that_is_still_active_raises() -> None:
    listing = ok({"data": [key_object("apk_old", status="active")], "has_more": False})
    script = Script(error_response(409, "BLUM-409-001", "locked"), listing)
    client, _ = make_client(script)
    with pytest.raises(BluumConflict):
        client.revoke_investor_key(make_pair(), "inv_1", "apk_old")


def test_revoke_answer_that_still_says_active_is_unexpected() -> None:
    client, _ = make_client(Script(ok(key_object("apk_old", status="active"))))
    with pytest.raises(BluumUnexpectedResponse, match="still lists apk_old as active"):
        client.revoke_investor_key(make_pair(), "inv_1", "apk_old")


def test_revoke_of_an_unknown_key_is_not_found() -> None:
    client, _ = make_client(Script(error_response(404, "BLUM-404-001")))
    with pytest.raises(BluumNotFound):
        client.revoke_investor_key(make_pair(), "inv_1", "apk_nope")


# ---------------------------------------------------------------------------------------------- throttle


def test_throttle_spaces_requests_by_one_over_rate_plus_margin() -> None:
    throttle = Throttle(10.0)
    interval = 1.0 / (10.0 * (1.0 - SAFETY_MARGIN))
    assert throttle.interval == pytest.approx(interval)
    waits = [throttle.reserve(100.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, interval, 2 * interval, 3 * interval, 4 * interval])
    # Capacity 1: after a long idle there is no saved-up burst, just one free slot.
    assert throttle.reserve(200.0) == 0.0
    assert throttle.reserve(200.0) == pytest.approx(interval)


def test_throttle_never_lets_rate_plus_one_requests_into_one_second() -> None:
    for rate in (10.0, 25.0):
        throttle = Throttle(rate)
        sends = [100.0 + (throttle.reserve(100.0) or 0.0) for _ in range(int(rate) * 3)]
        n = int(rate)
        assert min(sends[i + n] - sends[i] for i in range(len(sends) - n)) > 1.0


def test_throttle_window_check_holds_a_late_sender_back() -> None:
    """A sender that woke late must not put rate + 1 real sends into one second: the window check makes it wait."""
    throttle = Throttle(10.0)
    clock = FakeClock()
    for _ in range(10):  # ten sends bunched up at t=0 (as if nine senders had woken late together), answered at once
        assert throttle.admit(clock()) == 0.0
        throttle.answered(Slot(0.0, clock()), clock())
    wait = throttle.admit(clock())
    assert wait == pytest.approx(1.0 + throttle._guard)
    clock.sleep(wait)
    assert throttle.admit(clock()) == 0.0


def test_throttle_acquire_waits_out_the_window_after_its_slot() -> None:
    throttle = Throttle(10.0)
    clock = FakeClock()
    start = clock()
    for _ in range(10):
        throttle.admit(start)  # ten real sends at `start`, outside the smooth schedule, answered at once
        throttle.answered(Slot(0.0, start), start)
    slot = throttle.acquire(clock, clock.sleep)
    assert slot is not None
    assert slot.waited == pytest.approx(1.0 + throttle._guard)
    assert clock() - start == pytest.approx(1.0 + throttle._guard)


def test_throttle_hold_until_delays_later_slots() -> None:
    throttle = Throttle(10.0)
    throttle.hold_until(105.0)
    assert throttle.wait_time(100.0) == pytest.approx(5.0)
    assert throttle.reserve(100.0) == pytest.approx(5.0)


def test_throttle_refuses_a_slot_beyond_max_wait_without_taking_it() -> None:
    throttle = Throttle(10.0)
    throttle.hold_until(105.0)
    assert throttle.reserve(100.0, max_wait=4.0) is None
    assert throttle.wait_time(100.0) == pytest.approx(5.0)  # nothing was reserved
    assert throttle.reserve(100.0, max_wait=5.0) == pytest.approx(5.0)


def test_throttle_does_not_hold_its_lock_while_sleeping() -> None:
    throttle = Throttle(10.0)
    clock = FakeClock()
    seen: list[bool] = []

    def sleep(seconds: float) -> None:
        got = throttle._lock.acquire(blocking=False)
        seen.append(got)
        if got:
            throttle._lock.release()
        clock.sleep(seconds)

    throttle.acquire(clock, sleep)
    throttle.acquire(clock, sleep)
    assert seen == [True]


def test_throttle_is_thread_safe_every_thread_gets_its_own_slot() -> None:
    throttle = Throttle(25.0)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            wait = throttle.reserve(0.0)
            assert wait is not None
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots = sorted(round(w / throttle.interval) for w in waits)
    assert slots == list(range(400))


def test_throttle_rejects_bad_rates() -> None:
    with pytest.raises(ValueError):
        Throttle(0)
    with pytest.raises(ValueError):
        Throttle(10, margin=1.0)
    assert Throttle(math.inf).interval == 0.0


def test_registry_shares_one_throttle_per_api_key_across_clients_and_keys_by_hash() -> None:
    pair = make_pair()
    a = throttle_for(pair.api_key, 10.0)
    b = throttle_for(pair.api_key, 25.0)
    assert a is b
    assert a.rate == 10.0  # the stricter configuration wins
    assert throttle_for(make_pair().api_key, 10.0) is not a
    assert key_hash(pair.api_key) in throttle_module._registry
    assert pair.api_key not in throttle_module._registry
    assert all(pair.api_secret.reveal() not in k for k in throttle_module._registry)


@pytest.mark.parametrize(("environment", "rate"), [(Environment.SANDBOX, 10.0), (Environment.PRODUCTION, 25.0)])
def test_client_paces_each_pair_at_its_environment_rate(environment: Environment, rate: float) -> None:
    clock = FakeClock()
    client = BluumClient(BASE, transport=httpx.MockTransport(Script(ok())), sleep=clock.sleep, clock=clock)
    pair = make_pair(environment)
    for _ in range(6):
        client.check(pair)
    interval = 1.0 / (rate * (1.0 - SAFETY_MARGIN))
    assert clock.sleeps == pytest.approx([interval] * 5)


def test_two_clients_share_the_pacing_of_one_pair() -> None:
    clock = FakeClock()
    one = BluumClient(BASE, transport=httpx.MockTransport(Script(ok())), sleep=clock.sleep, clock=clock)
    two = BluumClient(BASE, transport=httpx.MockTransport(Script(ok())), sleep=clock.sleep, clock=clock)
    pair = make_pair()
    other = make_pair()
    one.check(pair)
    two.check(pair)
    two.check(other)  # another pair has its own slots
    assert clock.sleeps == pytest.approx([1.0 / (10.0 * (1.0 - SAFETY_MARGIN))])


def test_rate_limits_are_configurable() -> None:
    clock = FakeClock()
    client = BluumClient(
        BASE,
        transport=httpx.MockTransport(Script(ok())),
        sleep=clock.sleep,
        clock=clock,
        rate_limits={Environment.SANDBOX: 2.0},
    )
    pair = make_pair()
    client.check(pair)
    client.check(pair)
    assert clock.sleeps == pytest.approx([1.0 / (2.0 * (1.0 - SAFETY_MARGIN))])


# ---------------------------------------------------------------------------------------------- logging


def _bluum_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "rotator.bluum"]


def test_one_structured_record_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rotator")
    script = Script(error_response(503, "BLUM-503-001", trace_id="trc_9"), httpx.ConnectError, ok())
    client, _ = make_client(script)
    pair = make_pair(key_id="apk_mgr")
    client.check(pair)
    attempts = [r for r in _bluum_records(caplog) if "retry" not in r.getMessage()]
    assert len(attempts) == 3
    fields = [r.__dict__["fields"] for r in attempts]
    assert [f["attempt"] for f in fields] == [1, 2, 3]
    assert all(f["method"] == "GET" and f["path"] == "/assets" and f["key"] == "apk_mgr" for f in fields)
    assert fields[0]["status"] == 503
    assert fields[0]["request_id"] == "req_abc"
    assert fields[0]["trace_id"] == "trc_9"
    assert fields[0]["code"] == "BLUM-503-001"
    assert fields[1]["status"] is None
    assert fields[1]["error"] == "ConnectError"
    assert fields[2]["status"] == 200
    assert fields[2]["request_id"] == "req_ok"
    assert all(isinstance(f["latency_ms"], float) for f in fields)
    assert attempts[0].levelno == logging.WARNING
    assert attempts[2].levelno == logging.INFO


def test_key_label_falls_back_to_a_fingerprint(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rotator")
    client, _ = make_client(Script(ok()))
    pair = make_pair(key_id=None)
    client.check(pair)
    [record] = _bluum_records(caplog)
    assert record.__dict__["fields"]["key"] == f"key#{pair.fingerprint}"


def test_logs_never_carry_the_authorization_header_the_secret_or_a_create_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # root too: httpx/httpcore debug records must not leak either
    new_secret = "sk_test_" + uuid.uuid4().hex
    script = Script(
        httpx.ReadTimeout,
        ok({**key_object("apk_new"), "secret_key": new_secret}, status=201),
        error_response(401, "BLUM-401-003"),
        ok({"data": [key_object("apk_new")], "has_more": False}),
    )
    client, _ = make_client(script)
    manager = make_pair()
    created = client.create_investor_key(
        manager, "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="k1"
    )
    client.check(created.pair)
    client.list_investor_keys(manager, "inv_1")
    header = script.requests[0].headers["authorization"]
    token = header.split(" ", 1)[1]
    text = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    assert caplog.records
    for forbidden in (
        header,
        token,
        manager.api_secret.reveal(),
        new_secret,
        "secret_key",
        "authorization",
        "Authorization",
    ):
        assert forbidden not in text


def test_retry_is_logged_with_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rotator")
    client, _ = make_client(Script(error_response(429, "BLUM-429-001", headers={"Retry-After": "2"}), ok()))
    client.check(make_pair())
    retries = [r for r in _bluum_records(caplog) if "retry" in r.getMessage()]
    assert len(retries) == 1
    assert retries[0].__dict__["fields"]["retry_after"] == 2.0
    assert retries[0].__dict__["fields"]["sleep_s"] >= 2.0


# ---------------------------------------------------------------------------------------------- policy


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(total_budget=-1)
    assert RetryPolicy().backoff_cap(1) == 0.25
    assert RetryPolicy().backoff_cap(10) == 8.0


def test_max_attempts_one_means_no_retry() -> None:
    script = Script(error_response(503, "BLUM-503-001"), ok())
    client, clock = make_client(script, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(BluumServerError):
        client.list_investor_keys(make_pair(), "inv_1")
    assert len(script.requests) == 1
    assert clock.sleeps == []


def test_api_keys_path_is_configuration_for_create_list_and_revoke() -> None:
    """A future endpoint (say, tenant keys) needs only `api_keys_path` in rotator.toml, no new code."""
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path.endswith("/revoke"):
            return ok(key_object("apk_old", status="revoked"))
        if request.method == "POST":
            return ok(key_object("apk_new", secret_key="sk_new_secret_value"), status=201)
        return ok({"object": "list", "url": "/x", "has_more": False, "data": [key_object("apk_new")]})

    client = BluumClient(
        BASE,
        transport=httpx.MockTransport(handler),
        rate_limits=NO_THROTTLE,
        api_keys_path="/partners/{investor_id}/credentials",
    )
    manager = make_pair()
    client.create_investor_key(manager, "inv_1", name="n", environment=Environment.SANDBOX, idempotency_key="k" * 32)
    client.list_investor_keys(manager, "inv_1")
    client.revoke_investor_key(manager, "inv_1", "apk_old")
    assert [path for _, path in seen] == [
        "/v1/partners/inv_1/credentials",
        "/v1/partners/inv_1/credentials",
        "/v1/partners/inv_1/credentials/apk_old/revoke",
    ]
