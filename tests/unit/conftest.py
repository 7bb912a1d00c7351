"""tests/unit does no network and no subprocess I/O: pure logic and real files only. This fixture makes that a rule
rather than a habit: a unit test that opens a socket or starts a process fails, naming what it tried."""

from __future__ import annotations

import socket
import subprocess

import pytest


class UnitTestDidIO(AssertionError):
    """A unit test reached for the network or another process; it belongs in tests/integration or tests/e2e."""


@pytest.fixture(autouse=True)
def _no_sockets_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str):
        def refused(*args: object, **kwargs: object) -> None:
            raise UnitTestDidIO(f"tests/unit must not use {what}: move this test to tests/integration")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("sockets (socket.connect)"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("sockets (socket.connect_ex)"))
    monkeypatch.setattr(socket, "create_connection", refuse("sockets (socket.create_connection)"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("subprocesses (subprocess.Popen)"))
