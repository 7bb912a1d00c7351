"""What only another process can show: import costs, a lock held by a process that dies, the leak guard failing
a whole pytest run. Kept out of tests/unit, which does no socket or subprocess I/O."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backends.env.store import EnvStore
from backends.ledger import held_lease
from rotator.core.errors import RotationInProgress


def test_import_is_light() -> None:
    """The Lambda and `rotator --help` load config; it must not drag in the CLI, HTTP or store SDKs."""
    code = (
        "import rotator.config.loader, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'click','httpx','boto3','hvac','msgspec'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


HOLD_LOCK = """
import sys, time
from backends.env.store import EnvStore
from backends.ledger import held_lease
with held_lease(EnvStore("other", path=sys.argv[1]), "nightly-cron", 60):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_lock_held_by_another_process_and_freed_when_it_dies(seeded: EnvStore, env_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(env_path)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RotationInProgress) as caught:
            seeded.acquire("me", 30)
        message = str(caught.value)
        assert f"nightly-cron, pid {holder.pid} on host" in message
        assert "nothing was changed" in message
        assert "rotator resume" in message
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with held_lease(seeded, "me", 30) as lease:
            holder_now = json.loads(seeded.lock_path.read_text())
            assert holder_now["owner"] == "me"
            assert holder_now["fence"] == lease.fence
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_guard_fails_a_test_that_logs_a_secret(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makeconftest("from tests.conftest import leak_guard  # noqa: F401\n")
    pytester.makepyfile(
        """
        import logging
        from rotator.core.secret import Secret

        def test_leaks():
            value = Secret("oops-this-leaks-123").reveal()
            logging.getLogger("rotator.x").debug("the secret is %s", value)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--rootdir={pytester.path}")
    result.assert_outcomes(passed=1, errors=1)
    verdicts = [line for line in result.stdout.lines if line.startswith("secret leak:")]
    assert verdicts == ["secret leak: a secret (19 chars, starts oop…) appeared in logs"]
