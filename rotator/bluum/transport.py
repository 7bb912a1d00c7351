"""How a Bluum request is sent: the pair's throttle slot, HTTP Basic auth, one log record per attempt, observers,
and the retries (`Transport.request`, the one path every operation of `rotator.bluum.client` goes through).

Retry rules (bluum-api.md §4, §7):

* 429, 500, 502, 503, 504 and network errors/timeouts are retried with exponential backoff and full jitter;
  `Retry-After` (seconds or an HTTP date) is a floor on the wait. 400/401/403/404/409/422 never are.
* A request is *replay-safe* when a second copy cannot do anything the first did not: GETs; a request that
  carries an `Idempotency-Key` (a retry re-sends the same one, so the server returns the stored first answer);
  and one the caller marks so (the revoke: revoking is idempotent by nature).
* A request that is not replay-safe is retried only when it cannot have reached the server: a 429, or a
  connect error/timeout, or a pool timeout.

Why tenacity: its `wait` and `stop` hooks see the failed attempt and the upcoming sleep (`upcoming_sleep`),
which is all we need to put `Retry-After` under the jittered backoff and to refuse a sleep that would
overrun the total budget. The clock for the budget and the `sleep` are injected, so unit tests never sleep.
What an answer means (the error tree, the advice) is `rotator.bluum.answers`; this module only sends.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import tenacity

from rotator.bluum.answers import error_from, gave_up
from rotator.bluum.throttle import Slot, Throttle, key_hash, throttle_for
from rotator.bluum.traffic import ResponseInfo, ResponseObserver, endpoint_kind
from rotator.core import lease_clock
from rotator.core.durations import format_duration
from rotator.core.errors import BluumError, BluumRateLimited, BluumUnavailable
from rotator.core.model import Environment, KeyPair

__all__ = ["RETRY_STATUSES", "Call", "RetryPolicy", "Transport"]

logger = logging.getLogger("rotator.bluum")

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
"""Statuses Bluum tells clients to retry (bluum-api.md §4). Everything else is final."""

_USER_AGENT: Final = "bluum-rotator"

# Network failures worth another try. UnsupportedProtocol, LocalProtocolError and ProxyError are
# configuration mistakes on our side: retrying cannot help, so they are not here.
_RETRYABLE_TRANSPORT: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Failures that prove the request never reached the server: safe to retry even without idempotency.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `total_budget` bounds the time from the first attempt: no sleep starts that would end
    after it. `max_attempts` counts the first attempt (5 means at most 4 retries)."""

    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    total_budget: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.total_budget < 0:
            raise ValueError("delays and budget must not be negative")

    def backoff_cap(self, retry_number: int) -> float:
        """Upper bound of the jittered wait before retry `retry_number` (1 for the first retry)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (retry_number - 1))


@dataclass(frozen=True)
class Call:
    """One logical request: what each of its attempts sends, and whether a second copy may be sent.

    `tries`: each attempt's number is appended to it (for a caller that must know whether the request was resent).
    """

    method: str
    path: str
    pair: KeyPair
    op: str
    json_body: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    replay_safe: bool | None = None
    tries: list[int] | None = field(default=None, compare=False)

    @property
    def safe_to_replay(self) -> bool:
        """Explicitly so, or a GET/HEAD, or a request that carries an Idempotency-Key."""
        if self.replay_safe is not None:
            return self.replay_safe
        return self.method in ("GET", "HEAD") or self.idempotency_key is not None

    @property
    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}

    @property
    def log_path(self) -> str:
        """The path without its query: what logs and observers see."""
        return self.path.split("?", 1)[0]


class _Failure(Exception):
    """One failed attempt, carried through tenacity; the caller sees `error` (or its give-up variant)."""

    def __init__(
        self, error: BluumError, *, retryable: bool, safe_without_idempotency: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.safe_without_idempotency = safe_without_idempotency
        self.retry_after = retry_after


def _failure_of(state: tenacity.RetryCallState) -> _Failure | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    return exc if isinstance(exc, _Failure) else None


class _RetryRules:
    """The tenacity hooks for one call: whether to retry, how long to wait, when to stop (and why, for the
    give-up message), and the log line before each sleep."""

    def __init__(self, call: Call, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.call, self.policy, self.clock = call, policy, clock
        self.start = clock()
        self.stopped_by: list[str] = []

    def budget_left(self) -> float:
        return self.policy.total_budget - (self.clock() - self.start)

    def should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, _Failure) or not exc.retryable:
            return False
        return self.call.safe_to_replay or exc.safe_without_idempotency

    def wait(self, state: tenacity.RetryCallState) -> float:
        failure = _failure_of(state)
        delay = random.uniform(0.0, self.policy.backoff_cap(state.attempt_number))
        if failure is not None and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return delay

    def stop(self, state: tenacity.RetryCallState) -> bool:
        policy = self.policy
        if state.attempt_number >= policy.max_attempts:
            count = state.attempt_number
            self.stopped_by.append(f"{count} attempt{'' if count == 1 else 's'}")
            return True
        if (self.clock() - self.start) + state.upcoming_sleep > policy.total_budget:
            self.stopped_by.append(
                f"{state.attempt_number} attempt(s); waiting {format_duration(state.upcoming_sleep, places=2)} more "
                f"would overrun the {format_duration(policy.total_budget)} budget"
            )
            return True
        return False

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        failure = _failure_of(state)
        call = self.call
        fields = {
            "method": call.method,
            "path": call.log_path,
            "key": call.pair.label,
            "attempt": state.attempt_number,
            "sleep_s": round(state.upcoming_sleep, 3),
            "retry_after": failure.retry_after if failure else None,
        }
        logger.info(
            "bluum retry %s %s in %.2fs", call.method, call.log_path, state.upcoming_sleep, extra={"fields": fields}
        )


class Transport:
    """Sends requests to one base URL with throttle, auth, logging, observers and retries; thread-safe.

    `observers` is read at each attempt, so the caller may add to the list later (the Runtime shares one list
    with every client it builds). `shared_budget_dir`: pace each key pair with every rotator process on this host
    (`rotator.bluum.shared_window`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[Environment, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        observers: list[ResponseObserver] | None = None,
        shared_budget_dir: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        overrides = rate_limits or {}
        self._rate_limits = {env: float(overrides.get(env, env.default_rate_limit)) for env in Environment}
        self._sleep = sleep
        self._clock = clock
        self._observers = observers if observers is not None else []
        self._shared_budget_dir = shared_budget_dir
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # a redirect would re-send the Authorization header elsewhere
            headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def request(self, call: Call) -> httpx.Response:
        """Send with throttle, auth, logging and retries; return a 2xx response or raise a BluumError."""
        rules = _RetryRules(call, self._retry, self._clock)
        counter = iter(range(1, self._retry.max_attempts + 1))

        def attempt() -> httpx.Response:
            number = next(counter)
            if call.tries is not None:
                call.tries.append(number)
            return self._attempt(call, number, budget_left=rules.budget_left())

        retrying = tenacity.Retrying(
            sleep=self._sleep,
            retry=tenacity.retry_if_exception(rules.should_retry),
            wait=rules.wait,
            stop=rules.stop,
            before_sleep=rules.before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Failure as failure:
            error = failure.error
            if rules.stopped_by:
                error = gave_up(error, f"gave up after {rules.stopped_by[-1]}")
            raise error from failure.error.__cause__

    def _attempt(self, call: Call, number: int, *, budget_left: float) -> httpx.Response:
        """One HTTP exchange: wait for the pair's slot, send, log, and classify."""
        pair = call.pair
        throttle = throttle_for(pair.api_key, self._rate_limits[pair.environment], self._shared_budget_dir)
        fields: dict[str, Any] = {"method": call.method, "path": call.log_path, "attempt": number, "key": pair.label}
        slot = self._take_slot(call, throttle, fields, budget_left)
        began = time.perf_counter()
        try:
            # The throttle may have waited, a retry slept, the process been frozen: the lease of the command this
            # request serves must still hold for as long as the request may take (`rotator.core.lease_clock`), or it
            # is not sent.
            lease_clock.before_request(self._timeout)
            began = time.perf_counter()
            response = self._http.request(
                call.method,
                call.path,
                json=call.json_body,
                headers=call.headers,
                auth=httpx.BasicAuth(pair.api_key, pair.api_secret.reveal()),
            )
        except httpx.RequestError as exc:
            throttle.answered(slot, self._clock())
            self._observe(call, None, began)
            raise self._unanswered(call, exc, fields, began) from exc
        except BaseException:
            # Not sent (the lease guard stopped it) or given up on: a slot never answered would count as in flight
            # for IN_FLIGHT_LIMIT seconds (`rotator.bluum.throttle`); counted from now, it ages out a window later.
            throttle.answered(slot, self._clock())
            raise
        throttle.answered(slot, self._clock())  # it arrived by now: count it from here (`rotator.bluum.throttle`)
        self._observe(call, response.status_code, began)
        fields.update(
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
            latency_ms=round((time.perf_counter() - began) * 1000, 1),
        )
        if response.is_success:
            logger.info("bluum %s %s -> %d", call.method, call.log_path, response.status_code, extra={"fields": fields})
            return response
        raise self._refused(call, response, throttle, fields)

    def _take_slot(self, call: Call, throttle: Throttle, fields: dict[str, Any], budget_left: float) -> Slot:
        """Wait for the pair's slot. The slot can be far away when another thread of this pair drew a 429 with a
        long Retry-After; if it is beyond the budget, give up now, as the retry loop would, instead of sleeping past
        the budget."""
        slot = throttle.acquire(self._clock, self._sleep, max_wait=max(0.0, budget_left))
        if slot is not None:
            return slot
        held = throttle.wait_time(self._clock())
        fields.update(status=None, error="HeldBack")
        logger.warning("bluum %s %s held back by the throttle", call.method, call.log_path, extra={"fields": fields})
        raise _Failure(
            BluumRateLimited(
                f"{call.op} ({call.pair.label}): not sent: this key pair must wait (Bluum answered 429 with "
                "Retry-After to another request of this process) longer than the time budget allows; try again later",
                status=None,
                code=None,
                retry_after=held,
            ),
            retryable=False,
            safe_without_idempotency=True,
        )

    def _unanswered(self, call: Call, exc: httpx.RequestError, fields: dict[str, Any], began: float) -> _Failure:
        """The failure of an attempt that got no answer (network error, timeout), logged."""
        fields.update(status=None, error=type(exc).__name__, latency_ms=round((time.perf_counter() - began) * 1000, 1))
        logger.warning(
            "bluum %s %s failed: %s", call.method, call.log_path, type(exc).__name__, extra={"fields": fields}
        )
        unavailable = BluumUnavailable(
            f"{call.op} ({call.pair.label}): no answer from Bluum at {self.base_url} ({type(exc).__name__}); "
            "check the network, proxy and base URL, or try again later"
        )
        unavailable.__cause__ = exc
        return _Failure(
            unavailable,
            retryable=isinstance(exc, _RETRYABLE_TRANSPORT),
            safe_without_idempotency=isinstance(exc, _NOT_SENT),
        )

    def _refused(self, call: Call, response: httpx.Response, throttle: Throttle, fields: dict[str, Any]) -> _Failure:
        """The failure of an attempt Bluum answered with an error, logged; a 429's Retry-After holds the pair."""
        status = response.status_code
        error, retry_after = error_from(response, call.op, call.pair)
        fields.update(code=error.code, trace_id=error.trace_id)
        # A 4xx is an answer the caller judges (a 401 during verification is expected); 429 and 5xx are faults.
        level = logging.WARNING if status == 429 or status >= 500 else logging.INFO
        logger.log(level, "bluum %s %s -> %d", call.method, call.log_path, status, extra={"fields": fields})
        if status == 429 and retry_after is not None:
            throttle.hold_until(self._clock() + retry_after)
        return _Failure(
            error,
            retryable=status in RETRY_STATUSES,
            safe_without_idempotency=status == 429,
            retry_after=retry_after,
        )

    def _observe(self, call: Call, status: int | None, began: float) -> None:
        """Tell each observer about one attempt; an observer that raises is logged, never the request's failure."""
        if not self._observers:
            return
        pair = call.pair
        info = ResponseInfo(
            method=call.method,
            endpoint=endpoint_kind(call.method, call.op),
            status=status,
            key_hash=key_hash(pair.api_key),
            rate_limit=self._rate_limits[pair.environment],
            seconds=time.perf_counter() - began,
            at=self._clock(),
        )
        for observer in list(self._observers):
            try:
                observer(info)
            except Exception:
                logger.exception("a Bluum response observer failed; the request goes on")
