"""Pytest fixtures for the Bluum simulator; tests/conftest.py re-exports them.

One server per session (start-up is cheap, but a fresh port per test would defeat keep-alive clients and slow
the suite); each test gets it reset, and every secret it ever minted is handed to the leak guard at teardown,
so a test fails if any of them reached stdout, stderr or the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from rotator.simulator import Simulator

if TYPE_CHECKING:
    from tests.conftest import LeakGuard


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """The session's simulator, started once on a free loopback port. Prefer `sim`, which also resets it."""
    with Simulator() as server:
        yield server


@pytest.fixture
def sim(simulator: Simulator, leak_guard: LeakGuard) -> Iterator[Simulator]:
    """The simulator, reset to a clean state for this test; its minted secrets are watched for leaks."""
    simulator.reset()
    yield simulator
    leak_guard.watch(*simulator.all_secrets())
