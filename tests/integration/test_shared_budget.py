"""Two rotator processes on one host spending one key pair's budget (a daemon's fleet and an operator's command):
with `[bluum] shared_budget_dir` their sends are counted together and the simulator answers no 429; without it each
paces only itself and together they overrun Bluum's limit. Real processes, the simulator over HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rotator.simulator import Simulator

pytestmark = pytest.mark.slow

CALLS = 25
"""Per process, at sandbox's 10/s: two processes that do not share need ~2.5 s, two that share ~5 s."""

SCRIPT = """
import sys
from pathlib import Path
from rotator.bluum.client import BluumClient, RetryPolicy
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret

base_url, api_key, secret, shared = sys.argv[1:5]
pair = KeyPair(api_key, Secret(secret), Environment.SANDBOX, None)
folder = Path(shared) if shared != "-" else None
with BluumClient(base_url, retry=RetryPolicy(max_attempts=1), shared_budget_dir=folder) as client:
    sys.stdin.readline()  # both processes start sending together
    for _ in range(int(sys.argv[5])):
        client.check(pair)
"""


def run_two(sim: Simulator, shared: str) -> list[int]:
    tenant = sim.create_tenant_key(environment="TEST")
    args = [sim.base_url, tenant["public_key"], tenant["secret_key"], shared, str(CALLS)]
    before = len(sim.request_log())
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdin=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    return [int(str(entry["status"])) for entry in sim.request_log()[before:]]


def test_processes_that_share_the_budget_draw_no_429(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "budget").mkdir()  # the runtime makes it (`check_budget_dir`); these bare clients do not
    statuses = run_two(sim, str(tmp_path / "budget"))
    assert len(statuses) == 2 * CALLS
    assert 429 not in statuses
    assert list((tmp_path / "budget").glob("*.window"))  # one file per key pair, named by its hash


def test_processes_that_pace_each_on_their_own_overrun_the_limit(sim: Simulator) -> None:
    """The premise of the test above: two processes at 10/s each are 20/s on one key."""
    assert 429 in run_two(sim, "-")
