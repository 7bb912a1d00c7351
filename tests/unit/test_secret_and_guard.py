"""The two halves of I6: a Secret cannot be printed by accident, and the leak guard would notice if it were."""

from __future__ import annotations

import logging
import pickle

import pytest

from rotator.core.secret import MASK, Secret
from tests.conftest import LeakGuard


def test_secret_never_formats_its_value():
    secret = Secret("s3cr3t-value-xyz")
    for text in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>30}", "%s" % secret):  # noqa: UP031 - %-formatting is what logging does
        assert "s3cr3t" not in text
        assert MASK in text
    assert secret.reveal() == "s3cr3t-value-xyz"


def test_secret_compares_and_hashes_by_value_but_refuses_pickle():
    assert Secret("same-value-123") == Secret("same-value-123")
    assert Secret("same-value-123") != Secret("other-value-123")
    assert hash(Secret("same-value-123")) == hash(Secret("same-value-123"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("same-value-123"))
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_every_secret_built_in_a_test_is_watched(leak_guard: LeakGuard):
    Secret("watched-automatically-1")
    assert "watched-automatically-1" in leak_guard.secrets


def test_guard_finds_a_secret_in_any_stream():
    guard = LeakGuard()
    guard.watch("leaky-secret-value")
    guard.check("nothing to see", "stdout")
    assert guard.find_leaks([]) == []
    guard.check("log line: key=leaky-secret-value", "subprocess stderr")
    leaks = guard.find_leaks([("logs", "and leaky-secret-value again")])
    assert len(leaks) == 2
    assert all("leaky-secret-value" not in leak for leak in leaks), "the report must not repeat the secret"


def test_logging_a_masked_secret_is_fine(leak_guard: LeakGuard):
    logging.getLogger("rotator.test").warning("value is %s", Secret("masked-value-12345"))
