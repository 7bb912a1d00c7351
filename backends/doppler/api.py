"""Doppler's REST API (v3), the few calls the Doppler store makes, with retries and errors in the project's terms.

The calls, as Doppler's public API reference gives them (https://docs.doppler.com/reference/api, "Authentication",
"Rate Limits", "Errors"; https://docs.doppler.com/reference/config-secret-update for the update's `change_requests`):

- `GET  /v3/configs/config/secrets?project=P&config=C` lists a config's secrets:
  `{"secrets": {"NAME": {"raw": "...", "computed": "...", "note": "..."}}, "success": true}`. `raw` is what was
  written, `computed` what `doppler run` injects (references such as `${OTHER}` resolved).
- `POST /v3/configs/config/secrets` with `{"project", "config", "change_requests": [{"name", "originalName",
  "value", "shouldDelete"}]}` updates several secrets in one request (one new version of the config), and answers
  the list's shape.
- Authentication is `Authorization: Bearer <token>`: a personal token (`dp.pt.…`, the whole workplace) or a service
  token (`dp.st.…`, one config, read or read/write).
- Errors answer `{"messages": ["..."], "success": false}` with 400 (a bad request), 401 (no or an unknown token),
  403 (a token without access to that project or config, or a read-only service token writing), 404 (no such
  project, config or secret), 429 (rate-limited), 5xx.

Where the reference is silent, assumed (and the stand-in, tests/doppler_standin.py, does the same): a 429 carries
`Retry-After` in seconds (and `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`); the messages of
an error never repeat a secret value sent (they are scrubbed of every value this request carried all the same);
an update applies all of its change requests or none.

Retries (as the Bluum client and the Vault store: tenacity, full jitter, a total budget): 429 (waiting at least
`Retry-After`), 500, 502, 503, 504, a connection refused or reset, a timeout. An update is safe to send again: it
sets names to values, so a second copy of one that was applied changes nothing. Every attempt asks the lease guard
first (`rotator.core.lease_clock`): a runner whose lease ran out sends nothing more. The token is never in a
message, a log line or a repr.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
import tenacity

from rotator.core import lease_clock
from rotator.core.errors import StoreDenied, StoreError, StoreNotFound, StoreUnavailable

__all__ = ["DEFAULT_API_URL", "DopplerApi", "DopplerRetry", "DopplerSecret"]

log = logging.getLogger("rotator.store.doppler")

DEFAULT_API_URL: Final = "https://api.doppler.com"
SECRETS_PATH: Final = "/v3/configs/config/secrets"
_RETRIED: Final = frozenset({429, 500, 502, 503, 504})
_SHOWN_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class DopplerSecret:
    """One secret of a config: what was written (`raw`) and what `doppler run` injects (`computed`)."""

    raw: str | None
    computed: str | None


@dataclass(frozen=True, slots=True)
class DopplerRetry:
    """How hard one call is tried: `max_attempts` in all (the first included), full-jitter backoff from `base_delay`
    up to `max_delay`, a 429's `Retry-After` as the floor of its wait, no wait that would end past `total_budget`."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 4.0
    total_budget: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class _Failed(Exception):
    """One attempt's failure, with the wait its answer asked for (a 429's Retry-After)."""

    def __init__(self, error: StoreError, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.transient = transient
        self.retry_after = retry_after


class DopplerApi:
    """The calls on one project, through one HTTP client. `token_env` names where the token came from, for messages;
    `transport` replaces the network (tests)."""

    def __init__(
        self,
        *,
        store: str,
        url: str,
        token: str,
        token_env: str,
        project: str,
        timeout: float,
        retry: DopplerRetry,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._store = store
        self.url = url.rstrip("/")
        self._token_env = token_env
        self._project = project
        self._retry = retry
        self._timeout = timeout
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"DopplerApi(url={self.url!r}, project={self._project!r})"  # never the token

    def list_secrets(self, config: str) -> dict[str, DopplerSecret]:
        """Every secret of `config` (project/config missing: StoreNotFound)."""
        params = {"project": self._project, "config": config}
        answer = self._call("reading", config, lambda: self._client.get(SECRETS_PATH, params=params), ())
        return _secrets_of(answer, self._where(config), self._store)

    def update(self, config: str, values: Mapping[str, str | None], existing: Sequence[str]) -> None:
        """Set each name of `values` to its value in one request; a None value deletes that secret. `existing`: the
        names the config has now (a change request names its original name only for those)."""
        changes: list[dict[str, Any]] = []
        for name, value in values.items():
            known = name in existing
            if value is None:
                if known:
                    changes.append({"name": name, "originalName": name, "value": None, "shouldDelete": True})
                continue
            changes.append({"name": name, "originalName": name if known else None, "value": value})
        if not changes:
            return
        body = {"project": self._project, "config": config, "change_requests": changes}
        sent = tuple(value for value in values.values() if value)
        self._call("writing", config, lambda: self._client.post(SECRETS_PATH, json=body), sent)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------------------------------------ internals

    def _where(self, config: str) -> str:
        return f"Doppler project {self._project!r} config {config!r}"

    def _call(self, action: str, config: str, send: Callable[[], httpx.Response], sent: Sequence[str]) -> Any:  # noqa: ANN401 - JSON
        """`send()` until it answers 2xx, fails for good, or the attempts or the budget run out; the answer's JSON."""
        where = self._where(config)
        started = self._retry.clock()

        def attempt() -> Any:  # noqa: ANN401 - JSON
            lease_clock.before_request(2 * self._timeout)
            try:
                response = send()
            except httpx.TimeoutException as exc:
                raise _Failed(self._unavailable(action, where, "did not answer in time"), transient=True) from exc
            except httpx.TransportError as exc:
                what = f"could not be reached ({type(exc).__name__})"
                raise _Failed(self._unavailable(action, where, what), transient=True) from exc
            if response.is_success:
                return _json(response, where, self._store)
            raise self._failed(action, where, response, sent)

        def wait(state: tenacity.RetryCallState) -> float:
            jitter = random.uniform(0.0, min(self._retry.max_delay, self._retry.base_delay * 2.0**state.attempt_number))
            failure = state.outcome.exception() if state.outcome is not None else None
            floor = failure.retry_after if isinstance(failure, _Failed) and failure.retry_after is not None else 0.0
            return max(floor, jitter)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self._retry.max_attempts:
                return True
            return self._retry.clock() - started + state.upcoming_sleep > self._retry.total_budget

        def before_sleep(state: tenacity.RetryCallState) -> None:
            log.info(
                "doppler retry: %s %s failed; attempt %d in %.2fs",
                action,
                where,
                state.attempt_number + 1,
                state.upcoming_sleep,
                extra={
                    "fields": {"store": self._store, "attempt": state.attempt_number, "sleep_s": state.upcoming_sleep}
                },
            )

        retrying = tenacity.Retrying(
            sleep=self._retry.sleep,
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, _Failed) and exc.transient),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Failed as failed:
            raise failed.error from failed.__cause__

    def _unavailable(self, action: str, where: str, what: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{action} {where}: Doppler at {self.url} {what}. If this was a write it may have been applied; once "
            "Doppler answers, run the command again (or `rotator resume` if a rotation was under way)",
            store=self._store,
        )

    def _failed(self, action: str, where: str, response: httpx.Response, sent: Sequence[str]) -> _Failed:
        """An answer other than 2xx as the store error that says what to do about it."""
        status = response.status_code
        head = f"{action} {where}: Doppler answered {status}: {_said(response, sent)}"
        if status == 401:
            error: StoreError = StoreDenied(
                f"{head}. The token in ${self._token_env} is not valid (mistyped, expired or revoked): put a valid "
                "service token (dp.st.…) or personal token (dp.pt.…) there, then run the command again",
                store=self._store,
            )
        elif status == 403:
            error = StoreDenied(
                f"{head}. The token in ${self._token_env} may not do this: a service token must be for this very "
                "config with read/write access (Project > Config > Access), or use a personal token",
                store=self._store,
            )
        elif status == 404:
            error = StoreNotFound(
                f"{head}. Check `project` and `config` in this store's table (and `state_config`)", store=self._store
            )
        elif status == 429:
            error = StoreUnavailable(
                f"{head}. Doppler kept rate-limiting this token: wait a minute, then run the command again",
                store=self._store,
            )
        elif status >= 500:
            error = self._unavailable(action, where, f"failed to answer ({status})")
        else:
            error = StoreError(f"{head}. This request was refused as it was made; please report it", store=self._store)
        return _Failed(error, transient=status in _RETRIED, retry_after=_retry_after(response))


def _said(response: httpx.Response, sent: Sequence[str]) -> str:
    """Doppler's `messages`, on one line, shortened, with any value this request carried blotted out."""
    try:
        body = response.json()
    except ValueError:
        body = None
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages:
        text = "; ".join(" ".join(str(message).split()) for message in messages)
    else:
        text = response.reason_phrase or "no message"
    for value in sent:
        if value:
            text = text.replace(value, "[value]")
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    """A 429's or 503's `Retry-After`, in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _json(response: httpx.Response, where: str, store: str) -> Any:  # noqa: ANN401 - JSON
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise StoreUnavailable(f"{where}: Doppler's answer was not JSON; run the command again", store=store) from None


def _secrets_of(answer: Any, where: str, store: str) -> dict[str, DopplerSecret]:  # noqa: ANN401 - JSON
    secrets = answer.get("secrets") if isinstance(answer, dict) else None
    if not isinstance(secrets, dict):
        raise StoreUnavailable(f"{where}: Doppler's answer has no `secrets` object; run the command again", store=store)
    found: dict[str, DopplerSecret] = {}
    for name, value in secrets.items():
        if isinstance(value, dict):
            raw, computed = value.get("raw"), value.get("computed")
            found[str(name)] = DopplerSecret(
                raw=raw if isinstance(raw, str) else None, computed=computed if isinstance(computed, str) else None
            )
    return found
