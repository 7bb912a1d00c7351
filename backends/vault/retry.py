"""Which Vault failures are a hiccup worth another attempt, and the attempts: backoff with jitter within a budget.

Why: a rotation makes 64-80 Vault requests, and inside create, stage and promote any store error rolls a healthy
rotation back. A 500 or 503 from a node or a load balancer, a connection reset or refused mid-way, or an answer
that did not come in time says nothing about the rotation; one of them in 70 requests must not end it. Retrying is
safe because every Vault call the store makes is a read or a check-and-set write, and `backends.vault.kv` reads a
write back before sending it again (an answer that was lost may belong to a write Vault applied).

Not transient, so never retried: a sealed server (someone sealed it on purpose; it does not unseal itself), 403
(the policy or the token; the session's re-login after an expired login token is `kv`'s), 404, 400 (a
check-and-set mismatch is an answer, not a failure), TLS failures and redirects elsewhere. The Bluum client retries
the same way (`rotator.bluum.client`), with the same library, so both waits read alike in the logs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import requests
import tenacity
import urllib3
from hvac import exceptions as vault

from backends.vault.errors import WriteOutcomeUnknown
from rotator.core.errors import StoreError

__all__ = ["DEFAULT_MAX_ATTEMPTS", "VaultRetry", "is_transient", "may_have_applied"]

log = logging.getLogger("rotator.store.vault")

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS: Final = 6
"""Attempts at one Vault call, the first included (a store's `max_attempts` sets another number); see `VaultRetry`."""

_SEALED: Final = ("sealed",)
"""Words of Vault's 503 answer when it is sealed (`Vault is sealed`): then waiting does not help."""


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (an hvac or requests error, or a StoreError made from one) is worth another attempt."""
    if isinstance(exc, WriteOutcomeUnknown):
        return False  # already the end of a write's attempts
    cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ is not None else exc
    if isinstance(cause, vault.VaultDown):
        said = " ".join(str(item) for item in (cause.errors or [])) + " " + str(cause.args[0] if cause.args else "")
        return not any(word in said.lower() for word in _SEALED)
    if isinstance(cause, vault.InternalServerError | vault.BadGateway | vault.RateLimitExceeded):
        return True
    if isinstance(cause, vault.UnexpectedError):
        return True  # hvac's class for statuses it does not name: 504 from a gateway, 412 from a replica
    if isinstance(cause, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return False
    return isinstance(
        cause,
        requests.exceptions.ConnectionError | requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError,
    )


def may_have_applied(exc: BaseException) -> bool:
    """Whether a write that failed with `exc` may still have been applied: the request went out and its answer did
    not come back (a reset after sending, a read timeout, a gateway's 502 or 504). A refused or timed-out connection,
    and an answer from Vault itself (500, 503), mean it was not."""
    cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ is not None else exc
    if isinstance(cause, vault.BadGateway | vault.UnexpectedError):
        return True
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(cause, requests.exceptions.ConnectionError):
        reason = getattr(cause.args[0] if cause.args else None, "reason", None)
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return isinstance(cause, requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True, slots=True)
class VaultRetry:
    """How hard the Vault store tries one call. `total_budget` bounds the time from the first attempt: no wait
    starts that would end after it; `max_attempts` counts the first attempt.

    Six attempts with full jitter wait about 3 s in all (at most 6.2 s): a hiccup hitting one request in eight (the
    issue's storm) then ends a call once in about 260,000, while a Vault that is really gone is reported within
    seconds, not minutes."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = 0.2
    max_delay: float = 4.0
    total_budget: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def run(self, what: str, attempt: Callable[[], T]) -> T:
        """`attempt()` until it returns, raises something not transient, or the attempts or the budget run out (then
        the last error is raised as it was)."""
        started = self.clock()

        def wait(state: tenacity.RetryCallState) -> float:
            return random.uniform(0.0, min(self.max_delay, self.base_delay * 2.0 ** (state.attempt_number - 1)))

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return self.clock() - started + state.upcoming_sleep > self.total_budget

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.info(
                "vault retry: %s failed (%s); attempt %d in %.2fs",
                what,
                type(error.__cause__ or error).__name__ if error is not None else "?",
                state.attempt_number + 1,
                state.upcoming_sleep,
                extra={"fields": {"action": what, "attempt": state.attempt_number, "sleep_s": state.upcoming_sleep}},
            )

        retrying = tenacity.Retrying(
            sleep=self.sleep,
            retry=tenacity.retry_if_exception(is_transient),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)
