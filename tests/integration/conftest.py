"""Fixtures the integration tier shares with the unit tier: the seeded env store (tests/unit/test_env_store.py)."""

from tests.unit.test_env_store import env_path, seeded  # noqa: F401 - re-exported fixtures
