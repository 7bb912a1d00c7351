"""The Bluum API client: create, list and revoke investor-scoped keys, and smoke-test a key pair.

The client holds the operations: which path, which body, what the answer must hold. Every request goes through
one path, `rotator.bluum.transport.Transport.request`, that

1. waits for the pair's slot in the process-wide throttle (`rotator.bluum.throttle`: smooth spacing just under
   Bluum's documented 10/s sandbox and 25/s production limits, and never more than that many in any 1.05 s of
   real sends, so a burst never draws a 429);
2. sends it with HTTP Basic auth (API key as user name, the revealed secret as password);
3. logs one structured record per attempt on the `rotator.bluum` logger (never headers, never bodies);
4. turns any failure into the typed tree of `rotator.core.errors` with status, BLUM code, request id and trace id
   (`rotator.bluum.answers`);
5. retries what is safe to retry (see `RetryPolicy`) and gives up with the last attempt's error.

Which operations are replay-safe (bluum-api.md §4, §7): GETs; the create, because it always carries an
`Idempotency-Key` (a retry re-sends the same one, so the server returns the stored first answer); and the revoke,
because revoking is idempotent by nature (the end state "revoked" is the same however often it is asked for).
Bluum documents no `Idempotency-Key` for revoke, so none is sent. If a retried revoke meets a 409/400/422 (a server
that refuses to revoke twice), the client lists the investor's keys and returns the key when it is already revoked:
the first attempt did the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx

from rotator.bluum.answers import (
    AUTH_REASONS,
    REJECTING_CODES,
    created_key,
    json_object,
    key_info,
    meta_of,
    parse_retry_after,
)
from rotator.bluum.traffic import ResponseObserver
from rotator.bluum.transport import Call, RetryPolicy, Transport
from rotator.core.errors import (
    BluumAuthError,
    BluumConflict,
    BluumError,
    BluumInvalidRequest,
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

__all__ = [
    "AUTH_REASONS",
    "DEFAULT_CHECK_PATH",
    "BluumClient",
    "BluumUnexpectedResponse",
    "CheckOutcome",
    "CheckResult",
    "RetryPolicy",
    "parse_retry_after",
]

logger = logging.getLogger("rotator.bluum")


PAGE_SIZE: Final = 100
"""Keys per list page: within Bluum's 1..200, large enough that one page is the common case."""

MAX_PAGES: Final = 1000
"""A server that keeps saying `has_more` is broken; stop rather than loop forever."""


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
        self._api_keys_path = api_keys_path
        self._check_path = check_path
        self._transport = Transport(
            base_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            rate_limits=rate_limits,
            sleep=sleep,
            clock=clock,
            observers=observers,
            shared_budget_dir=shared_budget_dir,
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
        return self._transport.base_url

    def _keys_path(self, investor_id: str, template: str | None) -> str:
        """Where an investor's keys live; configurable (per call, or per client) so a future endpoint needs no new
        code, and one client per base URL can serve credentials that differ in it."""
        return (template or self._api_keys_path).format(investor_id=_segment(investor_id))

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

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
        return created_key(response, op, investor_id=investor_id, environment=environment, attempts=len(tries))

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
            meta = meta_of(response)
            body = json_object(response, op)
            data = body.get("data")
            if not isinstance(data, list):
                raise BluumUnexpectedResponse(f"{op}: the answer has no `data` list", **meta)
            for item in data:
                if not isinstance(item, dict):
                    raise BluumUnexpectedResponse(f"{op}: a `data` item is not an object", **meta)
                info = key_info(item, op, default_status="unknown", meta=meta)
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
        meta = meta_of(response)
        info = key_info(json_object(response, op), op, default_status="revoked", meta=meta)
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
            if error.code in REJECTING_CODES:
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
        """Send through the transport (throttle, auth, logging, retries); a 2xx response or a BluumError."""
        call = Call(method, path, pair, op, json_body, idempotency_key, replay_safe, tries)
        return self._transport.request(call)


def _segment(value: str) -> str:
    """Quote an id for use as one path segment, so a stray '/' or '..' cannot reach another route."""
    if not value:
        raise ValueError("an id in a Bluum path must not be empty")
    return quote(value, safe="")
