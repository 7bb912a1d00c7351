"""The Bluum API client: create, list and revoke investor-scoped keys, and smoke-test a key pair.

Every request goes through one path (`BluumClient._request`) that

1. waits for the pair's slot in the process-wide throttle (`rotator.bluum.throttle`: smooth spacing just under
   Bluum's documented 10/s sandbox and 25/s production limits, and never more than that many in any 1.05 s of
   real sends, so a burst never draws a 429);
2. sends it with HTTP Basic auth (API key as user name, the revealed secret as password);
3. logs one structured record per attempt on the `rotator.bluum` logger (never headers, never bodies);
4. turns any failure into the typed tree of `rotator.core.errors` with status, BLUM code, request id and trace id;
5. retries what is safe to retry (see `RetryPolicy`) and gives up with the last attempt's error.

Retry rules (bluum-api.md §4, §7):

* 429, 500, 502, 503, 504 and network errors/timeouts are retried with exponential backoff and full jitter;
  `Retry-After` (seconds or an HTTP date) is a floor on the wait. 400/401/403/404/409/422 never are.
* A request is *replay-safe* when a second copy cannot do anything the first did not: GETs; the create,
  because it always carries an `Idempotency-Key` (a retry re-sends the same one, so the server returns the
  stored first answer); and the revoke, because revoking is idempotent by nature (the end state "revoked"
  is the same however often it is asked for). Bluum documents no `Idempotency-Key` for revoke, so none is
  sent. If a retried revoke meets a 409/400/422 (a server that refuses to revoke twice), the client lists
  the investor's keys and returns the key when it is already revoked: the first attempt did the job.
* A request that is not replay-safe (no such call exists today; the rule guards future ones) is retried only
  when it cannot have reached the server: a 429, or a connect error/timeout, or a pool timeout.

Why tenacity: its `wait` and `stop` hooks see the failed attempt and the upcoming sleep (`upcoming_sleep`),
which is all we need to put `Retry-After` under the jittered backoff and to refuse a sleep that would
overrun the total budget. The clock for the budget and the `sleep` are injected, so unit tests never sleep.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx
import tenacity

from rotator.bluum.throttle import key_hash, throttle_for
from rotator.bluum.traffic import ResponseInfo, ResponseObserver, endpoint_kind
from rotator.core import lease_clock
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
    BluumUnexpectedResponse,
)
from rotator.core.model import (
    DEFAULT_API_KEYS_PATH,
    DEFAULT_BASE_URLS,
    DEFAULT_CHECK_PATH,
    ApiKeyInfo,
    CreatedKey,
    Environment,
    KeyPair,
)
from rotator.core.secret import MASK, Secret

__all__ = [
    "DEFAULT_CHECK_PATH",
    "BluumClient",
    "BluumUnexpectedResponse",
    "CheckOutcome",
    "CheckResult",
    "RetryPolicy",
]

logger = logging.getLogger("rotator.bluum")

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
"""Statuses Bluum tells clients to retry (bluum-api.md §4). Everything else is final."""

PAGE_SIZE: Final = 100
"""Keys per list page: within Bluum's 1..200, large enough that one page is the common case."""

MAX_PAGES: Final = 1000
"""A server that keeps saying `has_more` is broken; stop rather than loop forever."""

_USER_AGENT: Final = "bluum-rotator"

# Network failures worth another try. UnsupportedProtocol, LocalProtocolError and ProxyError are
# configuration mistakes on our side: retrying cannot help, so they are not here.
_RETRYABLE_TRANSPORT: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Failures that prove the request never reached the server: safe to retry even without idempotency.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

AUTH_REASONS: Final[Mapping[str, str]] = {
    "BLUM-401-001": "no Authorization header reached Bluum",
    "BLUM-401-002": "malformed Authorization header",
    "BLUM-401-003": "wrong key or secret, or revoked",
    "BLUM-401-004": "key inactive",
    "BLUM-401-005": "key expired",
}
"""What each 401 code means (bluum-api.md §5); `check()` uses these as its `reason`."""

_AUTH_ADVICE: Final[Mapping[str, str]] = {
    "BLUM-401-001": "a proxy between here and Bluum may strip the header; report it if there is none",
    "BLUM-401-002": "re-copy the key pair into the store (a colon, space or newline in the key breaks it)",
    "BLUM-401-003": (
        "check that the stored pair is a key that is active at Bluum in this environment; if the secret is lost "
        "or the key was revoked, create a new key pair (rotate)"
    ),
    "BLUM-401-004": "reactivate the key in the Bluum dashboard, or create a new key pair (rotate)",
    "BLUM-401-005": "key expired: create a new key pair (rotate) and deploy it; an expired key cannot be renewed",
}

# The check rejects a key only for these codes; the other 401s say our request was wrong, not the key.
_REJECTING_CODES: Final = frozenset({"BLUM-401-003", "BLUM-401-004", "BLUM-401-005"})


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


class CheckOutcome(StrEnum):
    """What a smoke test proved about a key pair."""

    WORKS = "works"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CheckResult:
    """The answer of `BluumClient.check`. REJECTED only for 401-003/004/005; `code` says which."""

    outcome: CheckOutcome
    status: int | None
    code: str | None
    reason: str
    request_id: str | None


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


class BluumClient:
    """A synchronous, thread-safe Bluum API client for one base URL (one environment).

    `clock` (monotonic seconds) and `sleep` are injectable so tests can drive retries and pacing without
    waiting. `rate_limits` overrides the documented per-pair rates; `math.inf` turns pacing off.
    """

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[Environment, float] | None = None,
        check_path: str = DEFAULT_CHECK_PATH,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        api_keys_path: str = DEFAULT_API_KEYS_PATH,
        observers: list[ResponseObserver] | None = None,
        shared_budget_dir: Path | None = None,
    ) -> None:
        """`observers`: called after each attempt with a `ResponseInfo` (`rotator.bluum.traffic`); the list is read at
        each call, so the caller may add to it later (the Runtime shares one list with every client it builds).
        `shared_budget_dir`: pace each key pair with every rotator process on this host
        (`rotator.bluum.shared_window`)."""
        self._base_url = base_url.rstrip("/")
        self._api_keys_path = api_keys_path
        self._retry = retry or RetryPolicy()
        overrides = rate_limits or {}
        self._rate_limits = {env: float(overrides.get(env, env.default_rate_limit)) for env in Environment}
        self._check_path = check_path
        self._sleep = sleep
        self._clock = clock
        self._observers = observers if observers is not None else []
        self._shared_budget_dir = shared_budget_dir
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self._base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # a redirect would re-send the Authorization header elsewhere
            headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        )

    @classmethod
    def for_environment(
        cls,
        environment: Environment,
        *,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[Environment, float] | None = None,
        check_path: str = DEFAULT_CHECK_PATH,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Self:
        """A client for `environment`, at `base_url` or Bluum's documented default for it (model.DEFAULT_BASE_URLS)."""
        return cls(
            base_url or DEFAULT_BASE_URLS[environment],
            transport=transport,
            timeout=timeout,
            retry=retry,
            rate_limits=rate_limits,
            check_path=check_path,
            sleep=sleep,
            clock=clock,
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def _keys_path(self, investor_id: str, template: str | None) -> str:
        """Where an investor's keys live; configurable (per call, or per client) so a future endpoint needs no new
        code, and one client per base URL can serve credentials that differ in it."""
        return (template or self._api_keys_path).format(investor_id=_segment(investor_id))

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ operations

    def create_investor_key(
        self,
        manager: KeyPair,
        investor_id: str,
        *,
        name: str,
        environment: Environment,
        idempotency_key: str,
        keys_path: str | None = None,
    ) -> CreatedKey:
        """POST /investors/{inv}/api-keys with a tenant key. The answer holds the secret exactly once.

        `idempotency_key` must be the same for every try of one logical create (derive it from the rotation
        token): retries inside this call re-send it, and so must a caller that resumes after a crash.
        The body is validated before anything is returned: id, public_key and secret_key present, the
        environment equal to the one asked for (I7). On a mismatch the key exists at Bluum; the error
        names its id (`key_id`) so the caller can revoke it.
        """
        if not idempotency_key:
            raise ValueError("idempotency_key is required: a retried create must not make a second key")
        op = f"create key for {investor_id}"
        tries: list[int] = []
        response = self._request(
            "POST",
            self._keys_path(investor_id, keys_path),
            manager,
            op=op,
            json_body={"name": name, "environment": environment.bluum_name},
            idempotency_key=idempotency_key,
            tries=tries,
        )
        body = _json_object(response, op)
        secret_value = body.pop("secret_key", None)
        meta = _meta(response)
        key_id = body.get("id") if isinstance(body.get("id"), str) else None
        if not isinstance(secret_value, str) or not secret_value:
            raise BluumUnexpectedResponse(
                f"{op}: Bluum's answer has no secret_key, so the new key {key_id or '(no id)'} cannot be used; "
                "revoke it and create another",
                key_id=key_id,
                **meta,
            )
        secret = Secret(secret_value)
        del secret_value
        info = _key_info(body, op, default_status="active", meta=meta)
        if not info.public_key:
            raise BluumUnexpectedResponse(
                f"{op}: Bluum's answer for {info.id} has no public_key; revoke it and create another",
                key_id=info.id,
                **meta,
            )
        if info.environment is None:
            raise BluumUnexpectedResponse(
                f"{op}: Bluum's answer for {info.id} says neither environment nor livemode, so it cannot be "
                f"confirmed as a {environment.bluum_name} key; revoke it and check the base URL",
                key_id=info.id,
                **meta,
            )
        if info.environment is not environment:
            raise BluumUnexpectedResponse(
                f"{op}: asked for a {environment.bluum_name} key but Bluum made {info.id} as "
                f"{info.environment.bluum_name}; revoke it and check the base URL and the managing key",
                key_id=info.id,
                **meta,
            )
        if info.account_id is not None and info.account_id != investor_id:
            raise BluumUnexpectedResponse(
                f"{op}: Bluum bound the new key {info.id} to {info.account_id}, not {investor_id}; revoke it",
                key_id=info.id,
                **meta,
            )
        pair = KeyPair(api_key=info.public_key, api_secret=secret, environment=environment, key_id=info.id)
        return CreatedKey(info=info, pair=pair, attempts=len(tries))

    def list_investor_keys(
        self, manager: KeyPair, investor_id: str, *, keys_path: str | None = None
    ) -> list[ApiKeyInfo]:
        """GET /investors/{inv}/api-keys, every page (limit/offset until `has_more` is false).

        Keys are de-duplicated by id, since a key made while we page can shift offsets by one.
        """
        op = f"list keys of {investor_id}"
        path = self._keys_path(investor_id, keys_path)
        keys: dict[str, ApiKeyInfo] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            response = self._request("GET", f"{path}?limit={PAGE_SIZE}&offset={offset}", manager, op=op)
            meta = _meta(response)
            body = _json_object(response, op)
            data = body.get("data")
            if not isinstance(data, list):
                raise BluumUnexpectedResponse(f"{op}: the answer has no `data` list", **meta)
            for item in data:
                if not isinstance(item, dict):
                    raise BluumUnexpectedResponse(f"{op}: a `data` item is not an object", **meta)
                info = _key_info(item, op, default_status="unknown", meta=meta)
                keys.setdefault(info.id, info)
            if body.get("has_more") is not True:
                return list(keys.values())
            if not data:
                raise BluumUnexpectedResponse(
                    f"{op}: has_more is true but the page at offset {offset} is empty", **meta
                )
            offset += len(data)
        raise BluumUnexpectedResponse(f"{op}: more than {MAX_PAGES} pages; the server keeps saying has_more")

    def revoke_investor_key(
        self, manager: KeyPair, investor_id: str, key_id: str, *, keys_path: str | None = None
    ) -> ApiKeyInfo:
        """POST /investors/{inv}/api-keys/{apk}/revoke: permanent. Returns the key as Bluum now shows it.

        Retried like a GET (revoking twice ends in the same state). Bluum does not document what a second
        revoke answers; if it is a 409/400/422 and the key is listed as revoked (or expired), that is success.
        """
        op = f"revoke {key_id} of {investor_id}"
        path = f"{self._keys_path(investor_id, keys_path)}/{_segment(key_id)}/revoke"
        try:
            response = self._request("POST", path, manager, op=op, replay_safe=True)
        except (BluumConflict, BluumInvalidRequest) as refused:
            listed = self.list_investor_keys(manager, investor_id, keys_path=keys_path)
            already = next((k for k in listed if k.id == key_id), None)
            if already is None or already.status not in ("revoked", "expired"):
                raise  # an expired key is as dead as a revoked one: refusing to revoke it is not a failure
            logger.info(
                "bluum revoke: key already revoked",
                extra={"fields": {"key_id": key_id, "status": refused.status, "code": refused.code}},
            )
            return already
        meta = _meta(response)
        info = _key_info(_json_object(response, op), op, default_status="revoked", meta=meta)
        if info.status == "active":
            raise BluumUnexpectedResponse(
                f"{op}: Bluum answered the revoke but still lists {info.id} as active", key_id=info.id, **meta
            )
        return info

    def check(self, pair: KeyPair, *, path: str | None = None) -> CheckResult:
        """Smoke-test `pair` with a read-only GET. Never raises for an HTTP or network outcome.

        WORKS: 200 with a JSON body (any shape: Bluum's pages disagree about it). REJECTED: 401 with
        BLUM-401-003 (wrong, revoked, or not yet propagated), -004 (inactive) or -005 (expired).
        INCONCLUSIVE: everything else, after retries: other 401 codes (they blame the request, not the
        key), 403, 404, other 4xx, 429/5xx/network errors once retries are spent, a 200 that is not JSON.
        """
        try:
            response = self._request("GET", path or self._check_path, pair, op="check")
        except BluumAuthError as error:
            if error.code in _REJECTING_CODES:
                return CheckResult(
                    CheckOutcome.REJECTED, error.status, error.code, AUTH_REASONS[error.code], error.request_id
                )
            return CheckResult(CheckOutcome.INCONCLUSIVE, error.status, error.code, str(error), error.request_id)
        except BluumError as error:
            return CheckResult(CheckOutcome.INCONCLUSIVE, error.status, error.code, str(error), error.request_id)
        request_id = response.headers.get("x-request-id")
        if response.status_code != 200:
            return CheckResult(
                CheckOutcome.INCONCLUSIVE,
                response.status_code,
                None,
                f"expected 200, got {response.status_code}",
                request_id,
            )
        try:
            response.json()
        except ValueError:
            return CheckResult(
                CheckOutcome.INCONCLUSIVE,
                200,
                None,
                "200 but the body is not JSON (a proxy or portal answered, not Bluum?)",
                request_id,
            )
        return CheckResult(CheckOutcome.WORKS, 200, None, "200 with a JSON body", request_id)

    # ------------------------------------------------------------------ the one request path

    def _request(
        self,
        method: str,
        path: str,
        pair: KeyPair,
        *,
        op: str,
        json_body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        replay_safe: bool | None = None,
        tries: list[int] | None = None,
    ) -> httpx.Response:
        """Send with throttle, auth, logging and retries; return a 2xx response or raise a BluumError.

        `tries`: each attempt's number is appended to it (a caller that must know whether the request was resent)."""
        if replay_safe is None:
            replay_safe = method in ("GET", "HEAD") or idempotency_key is not None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        policy = self._retry
        start = self._clock()
        stopped_by: list[str] = []

        def attempt(number: int) -> httpx.Response:
            if tries is not None:
                tries.append(number)
            budget_left = policy.total_budget - (self._clock() - start)
            return self._attempt(
                method, path, pair, op=op, number=number, headers=headers, json_body=json_body, budget_left=budget_left
            )

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, _Failure) or not exc.retryable:
                return False
            return replay_safe or exc.safe_without_idempotency

        def wait(state: tenacity.RetryCallState) -> float:
            failure = _failure_of(state)
            delay = random.uniform(0.0, policy.backoff_cap(state.attempt_number))
            if failure is not None and failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            return delay

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= policy.max_attempts:
                count = state.attempt_number
                stopped_by.append(f"{count} attempt{'' if count == 1 else 's'}")
                return True
            elapsed = self._clock() - start
            if elapsed + state.upcoming_sleep > policy.total_budget:
                stopped_by.append(
                    f"{state.attempt_number} attempt(s); waiting {state.upcoming_sleep:.2f}s more would overrun the "
                    f"{policy.total_budget:g}s budget"
                )
                return True
            return False

        def before_sleep(state: tenacity.RetryCallState) -> None:
            failure = _failure_of(state)
            logger.info(
                "bluum retry %s %s in %.2fs",
                method,
                _path_only(path),
                state.upcoming_sleep,
                extra={
                    "fields": {
                        "method": method,
                        "path": _path_only(path),
                        "key": pair.label,
                        "attempt": state.attempt_number,
                        "sleep_s": round(state.upcoming_sleep, 3),
                        "retry_after": failure.retry_after if failure else None,
                    }
                },
            )

        retrying = tenacity.Retrying(
            sleep=self._sleep,
            retry=tenacity.retry_if_exception(should_retry),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
        )
        counter = iter(range(1, policy.max_attempts + 1))
        try:
            return retrying(lambda: attempt(next(counter)))
        except _Failure as failure:
            error = failure.error
            if stopped_by:
                error = _gave_up(error, f"gave up after {stopped_by[-1]}")
            raise error from failure.error.__cause__

    def _attempt(
        self,
        method: str,
        path: str,
        pair: KeyPair,
        *,
        op: str,
        number: int,
        headers: Mapping[str, str],
        json_body: Mapping[str, Any] | None,
        budget_left: float,
    ) -> httpx.Response:
        """One HTTP exchange: wait for the pair's slot, send, log, and classify.

        The slot can be far away when another thread of this pair drew a 429 with a long Retry-After; if it is
        beyond the budget, give up now, as the retry loop would, instead of sleeping past the budget.
        """
        throttle = throttle_for(pair.api_key, self._rate_limits[pair.environment], self._shared_budget_dir)
        fields: dict[str, Any] = {"method": method, "path": _path_only(path), "attempt": number, "key": pair.label}
        if throttle.acquire(self._clock, self._sleep, max_wait=max(0.0, budget_left)) is None:
            held = throttle.wait_time(self._clock())
            fields.update(status=None, error="HeldBack")
            logger.warning("bluum %s %s held back by the throttle", method, fields["path"], extra={"fields": fields})
            raise _Failure(
                BluumRateLimited(
                    f"{op} ({pair.label}): not sent: this key pair must wait (Bluum answered 429 with Retry-After "
                    "to another request of this process) longer than the time budget allows; try again later",
                    status=None,
                    code=None,
                    retry_after=held,
                ),
                retryable=False,
                safe_without_idempotency=True,
            )
        # The throttle may have waited, a retry slept, the process been frozen: the lease of the command this request
        # serves must still hold for as long as the request may take (`rotator.core.lease_clock`), or it is not sent.
        lease_clock.before_request(self._timeout)
        began = time.perf_counter()
        try:
            response = self._http.request(
                method,
                path,
                json=json_body,
                headers=headers,
                auth=httpx.BasicAuth(pair.api_key, pair.api_secret.reveal()),
            )
        except httpx.RequestError as exc:
            self._observe(method, op, pair, None, began)
            fields.update(
                status=None, error=type(exc).__name__, latency_ms=round((time.perf_counter() - began) * 1000, 1)
            )
            logger.warning(
                "bluum %s %s failed: %s", method, fields["path"], type(exc).__name__, extra={"fields": fields}
            )
            unavailable = BluumUnavailable(
                f"{op} ({pair.label}): no answer from Bluum at {self._base_url} ({type(exc).__name__}); "
                "check the network, proxy and base URL, or try again later"
            )
            unavailable.__cause__ = exc
            raise _Failure(
                unavailable,
                retryable=isinstance(exc, _RETRYABLE_TRANSPORT),
                safe_without_idempotency=isinstance(exc, _NOT_SENT),
            ) from exc
        self._observe(method, op, pair, response.status_code, began)
        latency_ms = round((time.perf_counter() - began) * 1000, 1)
        request_id = response.headers.get("x-request-id")
        fields.update(status=response.status_code, request_id=request_id, latency_ms=latency_ms)
        if response.is_success:
            logger.info("bluum %s %s -> %d", method, fields["path"], response.status_code, extra={"fields": fields})
            return response
        error, retry_after = _error_from(response, op, pair)
        fields.update(code=error.code, trace_id=error.trace_id)
        # A 4xx is an answer the caller judges (a 401 during verification is expected); 429 and 5xx are faults.
        level = logging.WARNING if response.status_code == 429 or response.status_code >= 500 else logging.INFO
        logger.log(level, "bluum %s %s -> %d", method, fields["path"], response.status_code, extra={"fields": fields})
        if response.status_code == 429 and retry_after is not None:
            throttle.hold_until(self._clock() + retry_after)
        raise _Failure(
            error,
            retryable=response.status_code in RETRY_STATUSES,
            safe_without_idempotency=response.status_code == 429,
            retry_after=retry_after,
        )

    def _observe(self, method: str, op: str, pair: KeyPair, status: int | None, began: float) -> None:
        """Tell each observer about one attempt; an observer that raises is logged, never the request's failure."""
        if not self._observers:
            return
        info = ResponseInfo(
            method=method,
            endpoint=endpoint_kind(method, op),
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


# ---------------------------------------------------------------------- helpers


def _failure_of(state: tenacity.RetryCallState) -> _Failure | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    return exc if isinstance(exc, _Failure) else None


def _segment(value: str) -> str:
    """Quote an id for use as one path segment, so a stray '/' or '..' cannot reach another route."""
    if not value:
        raise ValueError("an id in a Bluum path must not be empty")
    return quote(value, safe="")


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _meta(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "trace_id": response.headers.get("x-trace-id"),
    }


def _json_object(response: httpx.Response, op: str) -> dict[str, Any]:
    """The body as a JSON object, or BluumUnexpectedResponse. The body itself never enters the message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BluumUnexpectedResponse(
            f"{op}: Bluum answered {response.status_code} but the body is not a JSON object "
            f"({response.headers.get('content-type', 'no content-type')}, {len(response.content)} bytes)",
            **_meta(response),
        )
    return body


def _key_info(obj: Mapping[str, Any], op: str, *, default_status: str, meta: Mapping[str, Any]) -> ApiKeyInfo:
    """Parse a key object. `status` is missing from Bluum's examples, hence `default_status`.

    The environment comes from `environment`, else from `livemode` (true = PRODUCTION), else is unknown.
    """
    key_id = obj.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise BluumUnexpectedResponse(f"{op}: a key object has no id", **meta)
    environment: Environment | None = None
    raw_env = obj.get("environment")
    if isinstance(raw_env, str) and raw_env:
        try:
            environment = Environment.from_bluum(raw_env)
        except ValueError:
            raise BluumUnexpectedResponse(
                f"{op}: key {key_id} has an unknown environment {raw_env!r}", key_id=key_id, **meta
            ) from None
        livemode = obj.get("livemode")
        if isinstance(livemode, bool) and livemode != (environment is Environment.PRODUCTION):
            raise BluumUnexpectedResponse(
                f"{op}: key {key_id} says environment {raw_env} but livemode {livemode}", key_id=key_id, **meta
            )
    elif isinstance(obj.get("livemode"), bool):
        environment = Environment.PRODUCTION if obj["livemode"] else Environment.SANDBOX
    status = obj.get("status")
    created = obj.get("created")
    account_id = obj.get("account_id")
    name = obj.get("name")
    public_key = obj.get("public_key")
    return ApiKeyInfo(
        id=key_id,
        status=status if isinstance(status, str) and status else default_status,
        environment=environment,
        name=name if isinstance(name, str) else "",
        public_key=public_key if isinstance(public_key, str) else "",
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        account_id=account_id if isinstance(account_id, str) else None,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date. None when absent or junk."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read the same way
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _error_from(response: httpx.Response, op: str, pair: KeyPair) -> tuple[BluumError, float | None]:
    """Map an error response (any of the three body shapes, or no JSON at all) to the typed tree."""
    status = response.status_code
    code, server_message, trace_id = _parse_error_body(response)
    trace_id = trace_id or response.headers.get("x-trace-id")
    request_id = response.headers.get("x-request-id")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    meta: dict[str, Any] = {"status": status, "code": code, "request_id": request_id, "trace_id": trace_id}
    cls: type[BluumError]
    if status == 401:
        cls = BluumAuthError
        reason = AUTH_REASONS.get(code or "", "authentication failed")
        advice = f"{reason}: {_AUTH_ADVICE.get(code or '', 'check the key pair and the environment (base URL)')}"
        if code == "BLUM-401-005":
            advice = _AUTH_ADVICE[code]
    elif status == 403:
        cls = BluumForbidden
        advice = (
            "forbidden: the key lacks permission (key management needs a tenant-wide key, not an "
            "investor-scoped one; production routes need production access)"
        )
    elif status == 404:
        cls = BluumNotFound
        advice = "not found: check the investor and key ids belong to this tenant and environment, and the base URL"
    elif status == 409:
        cls = BluumConflict
        advice = "conflict: e.g. an Idempotency-Key reused with a different body; a new rotation token makes a new key"
    elif status == 429:
        wait = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
        message = _message(
            op,
            pair,
            f"rate limited{wait}: another process may share this key pair; slow down or try again later",
            server_message,
        )
        return BluumRateLimited(message, retry_after=retry_after, **meta), retry_after
    elif 400 <= status < 500:  # 400 and 422 by the docs; 405, 413 and the like are just as final
        cls = BluumInvalidRequest
        advice = "Bluum rejected the request as invalid: fix the input; retrying will not help"
    elif status >= 500:
        cls = BluumServerError
        advice = "Bluum server error: try again later; if it persists, give Bluum support the request id and trace id"
    else:
        cls = BluumError
        advice = f"unexpected HTTP {status} (a redirect? check the base URL)"
    return cls(_message(op, pair, advice, server_message), **meta), retry_after


def _message(op: str, pair: KeyPair, advice: str, server_message: str | None) -> str:
    text = f"{op} ({pair.label}): {advice}"
    if server_message:
        said = server_message[:300]
        secret = pair.api_secret.reveal()
        if secret:
            said = said.replace(secret, MASK)  # a server that echoes credentials must not leak them through us
        text += f". Bluum said: {said!r}"
    return text


def _parse_error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, trace_id) from `{"error": {...}}`, flat `{"code", "message"}` or legacy
    `{"status": "error", ...}` bodies; all None for a body that is not a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    inner = body.get("error")
    source: Mapping[str, Any] = inner if isinstance(inner, dict) else body
    code = source.get("code")
    message = source.get("message")
    if message is None and isinstance(inner, str):
        message = inner
    trace_id = source.get("trace_id") or body.get("trace_id")
    return (
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
        str(trace_id) if isinstance(trace_id, str | int) and not isinstance(trace_id, bool) else None,
    )


def _gave_up(error: BluumError, note: str) -> BluumError:
    """The same error, its message saying that retries ran out and why."""
    kwargs: dict[str, Any] = {
        "status": error.status,
        "code": error.code,
        "request_id": error.request_id,
        "trace_id": error.trace_id,
    }
    if isinstance(error, BluumRateLimited):
        return BluumRateLimited(f"{error.detail}; {note}", retry_after=error.retry_after, **kwargs)
    return type(error)(f"{error.detail}; {note}", **kwargs)
