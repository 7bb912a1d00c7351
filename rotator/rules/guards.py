"""Refusals shared by the preflight, the steps and the issuers: a key of the wrong environment (I7), or values no
HTTP Basic auth can carry. They raise before anything is created; messages name keys by label only."""

from __future__ import annotations

from rotator.core.errors import ConfigError, EnvironmentMismatch
from rotator.core.model import Environment, StoredKey
from rotator.rules import identity, machine


def guard_environment(credential: str, expected: Environment, key: StoredKey, what: str) -> None:
    """EnvironmentMismatch when `key` is known to belong to the other environment (I7)."""
    problem = machine.environment_violation(expected, key.environment, what)
    if problem:
        raise EnvironmentMismatch(
            f"{credential}: {problem}. Nothing was changed. Check which key is in that store, "
            "and that `environment` in rotator.toml is right"
        )


def guard_values(credential: str, key: StoredKey, where: str) -> None:
    """ConfigError naming each value of `key` that HTTP Basic auth cannot carry."""
    problems = identity.value_problems(key, where=where)
    if problems:
        raise ConfigError(f"{credential}: " + "; ".join(problems))
