"""Fixtures shared by every tier. The leak guard lives here so every test that handles secrets uses it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from rotator.core.secret import Secret


class LeakGuard:
    """Collects every secret a test used and fails the test if one shows up in any output.

    Every `Secret` built in this process is watched automatically; tests add strings made elsewhere
    (a subprocess, the simulator) with `watch()`, and hand text captured elsewhere to `check()`.
    """

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.texts: list[tuple[str, str]] = []

    def watch(self, *values: str) -> None:
        for value in values:
            if value and len(value) >= 8:
                self.secrets.add(value)

    def check(self, text: str, where: str = "output") -> None:
        """Record text captured elsewhere (subprocess output, a file) for the end-of-test search."""
        self.texts.append((where, text))

    def find_leaks(self, extra: list[tuple[str, str]]) -> list[str]:
        found = []
        for where, text in [*self.texts, *extra]:
            for secret in self.secrets:
                if secret in text:
                    found.append(f"a secret ({len(secret)} chars, starts {secret[:3]}…) appeared in {where}")
        return found


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._json = __import__("rotator.core.logs", fromlist=["JsonFormatter"]).JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self._json.format(record))
        self.lines.append(repr(record.__dict__))


@pytest.fixture(autouse=True)
def leak_guard(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LeakGuard]:
    """Autouse: captures stdout/stderr (fd level, so subprocesses too) and every log record at DEBUG."""
    guard = LeakGuard()
    original_init = Secret.__init__

    def watching_init(self: Secret, value: str) -> None:
        original_init(self, value)
        guard.watch(value)

    monkeypatch.setattr(Secret, "__init__", watching_init)
    handler = _ListHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    out, err = capfd.readouterr()
    # Give the output back to pytest so failures still show it.
    print(out, end="")
    print(err, end="", file=__import__("sys").stderr)
    leaks = guard.find_leaks([("stdout", out), ("stderr", err), ("logs", "\n".join(handler.lines))])
    if leaks:
        pytest.fail("secret leak: " + "; ".join(sorted(set(leaks))), pytrace=False)


@pytest.fixture(autouse=True)
def _restore_rotator_logger() -> Iterator[None]:
    """The CLI configures the `rotator` logger (level, handler); in-process CLI tests must not leak that."""
    logger = logging.getLogger("rotator")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's ROTATOR_*, BLUUM_*, AWS or Vault settings."""
    for name in list(os.environ):
        if name.startswith(("ROTATOR_", "BLUUM_", "AWS_", "VAULT_", "BAO_")):
            monkeypatch.delenv(name, raising=False)


CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The project folder; tests work in their own temporary folders and must leave it as they found it."""


@pytest.fixture(autouse=True, scope="session")
def checkout_left_clean() -> Iterator[None]:
    """Fails the run if a test created something at the top of the checkout (a history or state folder once
    was, from a configuration parsed against the working folder, and was committed once)."""
    before = set(os.listdir(CHECKOUT))
    yield
    created = sorted(name for name in set(os.listdir(CHECKOUT)) - before if not name.startswith("."))  # tool caches
    assert not created, f"tests created {created} in {CHECKOUT}; give the test's configuration base_dir=tmp_path"


from tests.aws_fixtures import moto_server, secret_name  # noqa: E402, F401 - moto in server mode
from tests.sim_fixtures import sim, simulator  # noqa: E402, F401 - shared fixtures for every tier
from tests.vault_fixtures import file_backed_openbao, openbao, vault_path  # noqa: E402, F401 - real OpenBao
