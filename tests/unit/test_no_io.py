"""The unit tier's own rule is tested: a socket or a subprocess in a unit test fails it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.unit.conftest import UnitTestDidIO


def test_a_unit_test_cannot_connect_anywhere():
    with pytest.raises(UnitTestDidIO, match="tests/integration"):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(UnitTestDidIO):
        sock.connect(("127.0.0.1", 9))


def test_a_unit_test_cannot_start_a_process():
    with pytest.raises(UnitTestDidIO, match="subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
