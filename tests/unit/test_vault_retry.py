"""Which Vault failures the store tries again (backends/vault/retry.py), and that it stops within its budget.

Why unit tests beside the proxy tests (tests/integration/test_store_faults.py): a sealed server, a 403 or a 404 must
never be retried (an operator's action, not a hiccup), and the proxy never produces those.
"""

from __future__ import annotations

import pytest
import requests
from hvac import exceptions as vault

from backends.vault.retry import VaultRetry, is_transient, may_have_applied
from rotator.core.errors import StoreError, StoreUnavailable


def translated(cause: BaseException) -> StoreError:
    """What vault_errors makes of `cause`: a store error chained to it."""
    try:
        raise StoreUnavailable("store said no", store="vault") from cause
    except StoreError as exc:
        return exc


@pytest.mark.parametrize(
    "cause",
    [
        vault.InternalServerError("internal error"),
        vault.BadGateway("bad gateway"),
        vault.VaultDown("upstream connect error", errors=["no healthy upstream"]),
        vault.UnexpectedError("gateway timeout"),
        vault.RateLimitExceeded("slow down"),
        requests.exceptions.ConnectionError("connection reset by peer"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
    ],
    ids=type,
)
def test_a_hiccup_is_retried(cause: BaseException) -> None:
    assert is_transient(cause)
    assert is_transient(translated(cause))


@pytest.mark.parametrize(
    "cause",
    [
        vault.VaultDown("Vault is sealed", errors=["Vault is sealed"]),
        vault.Forbidden("permission denied", errors=["permission denied"]),
        vault.InvalidPath("no handler for route"),
        vault.InvalidRequest("check-and-set parameter did not match the current version"),
        requests.exceptions.SSLError("certificate verify failed"),
        StoreError("a bug", store="vault"),
    ],
    ids=lambda cause: f"{type(cause).__name__}:{cause}"[:40],
)
def test_an_answer_is_not_retried(cause: BaseException) -> None:
    assert not is_transient(cause)


def test_a_hiccup_is_tried_again_until_it_passes_and_an_answer_at_once() -> None:
    slept: list[float] = []
    retry = VaultRetry(sleep=slept.append)
    failures = [translated(requests.exceptions.ConnectionError("reset")), translated(vault.BadGateway("502"))]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "read"

    assert retry.run("reading", flaky) == "read"
    assert len(slept) == 2

    calls: list[int] = []

    def sealed() -> str:
        calls.append(1)
        raise translated(vault.VaultDown("Vault is sealed", errors=["Vault is sealed"]))

    with pytest.raises(StoreUnavailable):
        retry.run("reading", sealed)
    assert calls == [1], "a sealed server was asked again"


def test_the_attempts_and_the_budget_bound_the_retries() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    calls: list[int] = []

    def down() -> str:
        calls.append(1)
        now[0] += 4.0  # each attempt waits out a 4 s timeout
        raise translated(requests.exceptions.ConnectTimeout("timed out"))

    with pytest.raises(StoreUnavailable):
        VaultRetry(sleep=sleep, clock=lambda: now[0]).run("reading", down)
    assert len(calls) == 6, "six attempts at most"
    calls.clear()
    now[0] = 0.0
    with pytest.raises(StoreUnavailable):
        VaultRetry(sleep=sleep, clock=lambda: now[0], total_budget=10.0).run("reading", down)
    assert len(calls) <= 3, len(calls)
    assert now[0] <= 10.0 + 4.0, f"no wait starts past the budget (ended at {now[0]:.1f} s)"


def test_a_write_may_have_been_applied_only_when_it_went_out_and_no_answer_came() -> None:
    import urllib3

    refused = requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/v1", urllib3.exceptions.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    )
    reset = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    assert not may_have_applied(translated(refused)), "a refused connection never carried the write"
    assert not may_have_applied(requests.exceptions.ConnectTimeout("connect timed out"))
    assert not may_have_applied(vault.InternalServerError("Vault answered 500"))
    assert not may_have_applied(vault.VaultDown("503", errors=["no healthy upstream"]))
    assert may_have_applied(translated(reset)), "a reset after sending may follow an applied write"
    assert may_have_applied(requests.exceptions.ReadTimeout("read timed out"))
    assert may_have_applied(vault.BadGateway("502"))
    assert may_have_applied(vault.UnexpectedError("504"))
