"""`[stores.NAME] max_attempts` of a Vault store: how many times one Vault call meets a hiccup before the command
gives up. The real CLI against OpenBao behind a fault proxy that answers every request 503 (a Vault that is up but
not serving): the proxy counts the attempts that reached it. A value that is not a whole number of 1 or more is a
configuration error that says the fix, before any request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from rotator.simulator import Simulator
from tests.conftest import LeakGuard
from tests.fault_proxy import Decision, Fate, FaultProxy, Request
from tests.openbao import OpenBao
from tests.store_workspaces import StoreWorkspace, vault_workspace


class AllUnavailable:
    """Every request answered 503, as a Vault that is up but not serving (not sealed: that is not retried)."""

    def decide(self, request: Request) -> Decision:
        return Decision(Fate.ERROR_503)


@pytest.fixture
def proxy(openbao: OpenBao, vault_path: str) -> Iterator[FaultProxy]:
    with FaultProxy(openbao.url, AllUnavailable()) as proxy:
        yield proxy


def workspace(
    sim: Simulator, openbao: OpenBao, proxy: FaultProxy, guard: LeakGuard, folder: Path, attempts: str
) -> StoreWorkspace:
    ws = vault_workspace(sim, openbao, proxy.url, folder)
    guard.watch(*ws.secrets)
    text = ws.config.read_text()
    assert 'type = "vault"\n' in text
    ws.config.write_text(text.replace('type = "vault"\n', f'type = "vault"\nmax_attempts = {attempts}\n', 1))
    return ws


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_vault_that_answers_503_is_tried_max_attempts_times_then_reported(
    sim: Simulator, openbao: OpenBao, proxy: FaultProxy, leak_guard: LeakGuard, tmp_path: Path, attempts: int
) -> None:
    ws = workspace(sim, openbao, proxy, leak_guard, tmp_path, str(attempts))
    result = ws.run("rotate", "trading", timeout=60)
    leak_guard.check(result.stdout + result.stderr, "rotate output")
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr[-2000:]
    assert "Vault" in result.stderr
    assert proxy.count(Fate.ERROR_503) == attempts, proxy.log
    assert ws.shown_key_id() == str(ws.first.key_id)


@pytest.mark.parametrize("attempts", ["0", "2.5", '"3"', "true"])
def test_max_attempts_that_is_not_a_whole_number_of_one_or_more_is_refused_saying_the_fix(
    sim: Simulator, openbao: OpenBao, proxy: FaultProxy, leak_guard: LeakGuard, tmp_path: Path, attempts: str
) -> None:
    ws = workspace(sim, openbao, proxy, leak_guard, tmp_path, attempts)
    result = ws.run("rotate", "trading", timeout=60)
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr[-2000:]
    assert "max_attempts must be a whole number of attempts, 1 or more" in result.stderr
    assert "max_attempts = 6" in result.stderr
    assert proxy.log == [], "a request was sent with a configuration that is wrong"
