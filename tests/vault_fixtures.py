"""Pytest fixtures for a real OpenBao server (`tests/openbao.py`); tests/conftest.py re-exports them.

One dev server per session, since it is healthy in a fraction of a second but tests would still pay that many
times over; tests keep apart by path (`vault_path`) and by unique policy and role names, never by resetting the
server. A test that must stop, restart or seal a server takes `file_backed_openbao`, its own server.

tests/openbao.py (and with it hvac) is imported inside the fixtures, so runs that never touch Vault do not load it.
Every credential the helpers mint is handed to the leak guard at teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import LeakGuard
    from tests.openbao import OpenBao


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """The session's shared OpenBao dev server: root token "root", KV v2 at `secret/`, stopped at session end.

    Shared, so never seal, stop or reconfigure `secret/` on it (`vault_path` fails the test that does); mount
    your own engine with `enable_kv2(unique_name, ...)` when a test needs other mount settings.
    """
    from tests.openbao import OpenBao  # here: keeps hvac out of runs that never use Vault

    with OpenBao.dev(tmp_path_factory.mktemp("openbao-dev")) as server:
        yield server


@pytest.fixture
def vault_path(openbao: OpenBao, leak_guard: LeakGuard) -> Iterator[str]:
    """A KV path prefix no other test uses (`t/<hex>`), on the shared server.

    At teardown the credentials minted on the shared server so far go to the leak guard, and the server is
    checked: a test that left it sealed or stopped fails here, and the server is repaired for the tests after it.
    """
    yield f"t/{uuid.uuid4().hex}"
    leak_guard.watch(*openbao.all_secrets())
    if not openbao.running:
        openbao.start()
        pytest.fail("the test stopped the shared OpenBao dev server (restarted empty); use file_backed_openbao")
    if openbao.health() != 200:
        openbao.unseal()
        pytest.fail("the test sealed the shared OpenBao dev server (unsealed again); use file_backed_openbao")


@pytest.fixture
def file_backed_openbao(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[OpenBao]:
    """This test's own server with raft storage in tmp_path: survives `stop()`/`start()`, can be sealed.

    Costs about 2 s to create (raft elects its single node first); stopped at teardown.
    """
    from tests.openbao import OpenBao  # here: keeps hvac out of runs that never use Vault

    with OpenBao.file_backed(tmp_path / "openbao") as server:
        try:
            yield server
        finally:
            leak_guard.watch(*server.all_secrets())
