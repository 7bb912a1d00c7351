"""`rotator daemon` as a real process over the simulator: it ticks, stops cleanly on SIGTERM in the middle of a
rotation, dies at once on a second one, loses nothing either way, serves /metrics and /healthz, survives a broken
edit of rotator.toml, and two daemons on one set of stores rotate each credential exactly once.

Races are set up, not hoped for: a rotation is parked at a fault point (ROTATOR_TEST_HOLD_AT) until the test creates
the release file, so "mid-tick" and "a tick stuck longer than the health limit" are states the test holds, not
moments it tries to hit. Every wait is for a condition, with a generous bound only against a hang.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.faultpoints import HOLD_ENV, RELEASE_ENV
from rotator.core.model import Environment
from tests.e2e.conftest import Workspace, dotenv_text

pytestmark = pytest.mark.slow

WAIT = 45.0
"""Upper bound of any wait for a condition (a hang fails the test instead of blocking the suite)."""
TICK = ("--every", "1s", "--jitter", "0s")


@dataclass(frozen=True)
class Member:
    """One credential of the test fleet: its investor at the simulator, its dotenv store and its first key."""

    name: str
    investor: str
    file: str
    first_key_id: str


def fleet(ws: Workspace, count: int) -> list[Member]:
    """A rotator.toml of the tenant key (manual) and `count` investor credentials (bluum, due at the first tick),
    each in its own dotenv file; the sampler watches every one of them."""
    members = []
    tables = f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[credentials.tenant]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "manual"
store = "tenant"
"""
    with BluumClient(ws.sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        for index in range(count):
            investor = ws.sim.create_investor()
            first = client.create_investor_key(
                ws.tenant_pair,
                investor,
                name="initial",
                environment=Environment.SANDBOX,
                idempotency_key=uuid.uuid4().hex,
            )
            file = f"app{index}.env"
            (ws.root / file).write_text(dotenv_text(first.pair, "sandbox", ws.sim.base_url))
            (ws.root / file).chmod(0o600)
            members.append(Member(f"trading{index}", investor, file, first.info.id))
            tables += f"""
[stores.app{index}]
type = "env"
path = "{file}"

[credentials.trading{index}]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "app{index}"
rotate_every = "1h"
seeded_key_age = "due"
grace = "0s"
verify_timeout = "30s"
"""
    ws.config.write_text(tables)
    ws.sampled = [("tenant.env", "BLUUM_"), *[(m.file, "BLUUM_") for m in members]]
    return members


RUNNING: list[DaemonProcess] = []
"""Every daemon a test started; the autouse fixture below kills what a failed test left running."""


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().close()


class DaemonProcess:
    """`rotator -vv daemon ...` in a subprocess; its stdout and stderr are read line by line as they come, and handed
    to the leak guard when it ends."""

    def __init__(
        self,
        ws: Workspace,
        *args: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """`preexec_fn` runs in the child before the rotator starts (a resource limit, say)."""
        self.ws = ws
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "-vv", "--config", str(ws.config), "daemon", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **ws.env, **(env or {})},
            cwd=ws.root,
            preexec_fn=preexec_fn,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.returncode: int | None = None
        RUNNING.append(self)

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, *, stream: str = "out", start: int = 0) -> re.Match[str]:
        """The first line (from index `start`) of stdout (or stderr) that matches `pattern`."""
        lines = self.out if stream == "out" else self.err
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for line in lines[start:]:
                    found = regex.search(line)
                    if found:
                        return found
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    pytest.fail(f"daemon exited ({self.proc.returncode}) before {pattern!r}:\n{self.tail()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no line matched {pattern!r} within {WAIT}s:\n{self.tail()}")
                self._changed.wait(0.2)

    def count(self, pattern: str) -> int:
        with self._changed:
            return sum(1 for line in self.out if re.search(pattern, line))

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self) -> int:
        """Wait for the process to end (bounded), and hand everything it printed to the leak guard."""
        try:
            self.returncode = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"daemon did not exit within {WAIT}s:\n{self.tail()}")
        self.close()
        self.ws.guard.check("".join(self.out), "daemon stdout")
        self.ws.guard.check("".join(self.err), "daemon stderr")
        self.ws.probe()
        return self.returncode

    def close(self) -> None:
        """Kill the process if it still runs (a failed test), and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def stop(self) -> int:
        self.send(signal.SIGTERM)
        return self.finish()

    def tail(self) -> str:
        lines = [line for line in self.err if '"level": "debug"' not in line][-15:]
        return "stdout:\n" + "".join(self.out[-30:]) + "stderr (no debug):\n" + "".join(lines)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(what: str, check, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def metric_samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, credential or result label) → value, parsed with Prometheus's own text parser."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("credential", sample.labels.get("result", ""))
            found[(sample.name, label)] = sample.value
    return found


def keys_of(ws: Workspace, member: Member) -> list[dict[str, object]]:
    return [k for k in ws.sim.keys() if k.get("owner") == member.investor]


def new_keys_made(ws: Workspace, members: list[Member]) -> int:
    return sum(len(keys_of(ws, m)) - 1 for m in members)


def assert_rotated_once_and_clean(ws: Workspace, members: list[Member]) -> None:
    """Each credential: one new key, current in its store and the only active key at Bluum; no orphan anywhere."""
    for member in members:
        keys = keys_of(ws, member)
        current = ws.current_id(member.file)
        active = [k["id"] for k in keys if k["status"] == "active"]
        assert len(keys) == 2, f"{member.name}: {len(keys)} keys made at Bluum, expected the first and one new"
        assert current != member.first_key_id, f"{member.name} was not rotated"
        assert active == [current], f"{member.name}: active {active}, current {current}"
    sweep = ws.run("sweep")
    assert sweep.returncode == ExitCode.OK, sweep.stdout + sweep.stderr


def hold_at(point: str, release: Path) -> dict[str, str]:
    return {HOLD_ENV: point, RELEASE_ENV: str(release)}


def test_sigterm_mid_tick_finishes_the_step_and_a_restart_loses_nothing(ws: Workspace, tmp_path: Path):
    members = fleet(ws, 3)
    release, heartbeat = tmp_path / "release", tmp_path / "heartbeat.json"
    health = ("--metrics-listen", "127.0.0.1:0", "--heartbeat-file", str(heartbeat))
    daemon = DaemonProcess(ws, *TICK, *health, env=hold_at("pending.record", release))
    base = daemon.wait_for(r"/metrics and /healthz on (http://[^;\s]+);").group(1)
    daemon.wait_for(r"tick 1: started over 4 credential")
    wait_until("a new key minted at Bluum", lambda: new_keys_made(ws, members) > 0)

    # The tick is parked in a rotation: no beat for longer than the limit (3s at --every 1s), so /healthz turns 503.
    wait_until("/healthz to turn stale", lambda: http_get(base + "/healthz")[0] == 503)
    status, body = http_get(base + "/healthz")
    assert status == 503
    assert json.loads(body)["status"] == "stale"
    beat = json.loads(heartbeat.read_text())
    assert (beat["ticks"], beat["last_tick"]) == (0, "none yet"), "the heartbeat written at start"

    daemon.send(signal.SIGTERM)
    daemon.wait_for(r"SIGTERM: stopping after the step in hand")
    release.touch()  # the step in hand (create) finishes; the rotation stops before the next one
    assert daemon.finish() == ExitCode.OK, daemon.tail()
    err = "".join(daemon.err)
    assert "stopped on request before" in err, daemon.tail()
    assert any(m.first_key_id == ws.current_id(m.file) for m in members), "nothing may have been promoted yet"
    made_before_restart = new_keys_made(ws, members)

    again = DaemonProcess(ws, *TICK, *health)
    base = again.wait_for(r"/metrics and /healthz on (http://[^;\s]+);").group(1)
    again.wait_for(r"tick 1: done in [\d.]+s: 4 ok; next tick at")
    status, body = http_get(base + "/healthz")
    assert status == 200, body
    assert json.loads(body)["last_tick"] == "ok"
    assert json.loads(heartbeat.read_text())["ticks"] >= 1
    status, text = http_get(base + "/metrics")
    assert status == 200
    found = metric_samples(text)
    for member in members:
        assert found[("bluum_rotator_last_run_exit_code", member.name)] == 0
        assert found[("bluum_rotator_key_overdue", member.name)] == 0
        assert 0 <= found[("bluum_rotator_key_age_seconds", member.name)] < 600
    assert found[("bluum_rotator_daemon_ticks_total", "ok")] >= 1
    assert found[("bluum_rotator_daemon_ticks_total", "failed")] == 0

    # A broken edit of rotator.toml: reported at every tick, and the last good configuration keeps ticking.
    good = ws.config.read_text()
    ws.config.write_text(good + "\n[credentials.broken\n")
    seen = again.count(r"tick \d+: done")
    again.wait_for(r"keeps running on the configuration it read", stream="err")
    again.wait_for(r"tick \d+: done in [\d.]+s: 4 ok", start=len(again.out))
    assert again.count(r"tick \d+: done") > seen
    ws.config.write_text(good)
    reloads = metric_samples(http_get(base + "/metrics")[1])
    assert reloads[("bluum_rotator_daemon_config_reload_failures_total", "")] >= 1

    assert again.stop() == ExitCode.OK, again.tail()
    assert new_keys_made(ws, members) == len(members) >= made_before_restart, "the restart used the parked keys"
    assert_rotated_once_and_clean(ws, members)


def test_a_second_sigterm_stops_at_once_and_resume_finishes(ws: Workspace, tmp_path: Path):
    members = fleet(ws, 2)
    release = tmp_path / "release"  # never created: the step in hand cannot finish by itself
    daemon = DaemonProcess(ws, *TICK, env=hold_at("pending.record", release))
    daemon.wait_for(r"tick 1: started")
    wait_until("a new key minted at Bluum", lambda: new_keys_made(ws, members) > 0)
    daemon.send(signal.SIGTERM)
    daemon.wait_for(r"SIGTERM: stopping after the step in hand")
    daemon.send(signal.SIGTERM)
    assert daemon.finish() == -signal.SIGTERM, daemon.tail()  # died of the signal: a shell shows 143
    assert "second SIGTERM: stopping at once" in "".join(daemon.err)

    resumed = ws.run("resume")
    assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
    rest = ws.run("run-due")  # whichever credential the daemon had not started yet
    assert rest.returncode == ExitCode.OK, rest.stdout + rest.stderr
    assert_rotated_once_and_clean(ws, members)


def test_two_daemons_on_one_set_of_stores_rotate_each_credential_once(ws: Workspace, tmp_path: Path):
    members = fleet(ws, 3)
    release = tmp_path / "release"
    first = DaemonProcess(ws, *TICK, env=hold_at("pending.record", release))
    wait_until("the first daemon to hold every rotation", lambda: new_keys_made(ws, members) == len(members))
    second = DaemonProcess(ws, *TICK)
    # The leases decide: the second daemon changes nothing while the first holds them.
    second.wait_for(r"tick 1: done in [\d.]+s: 1 ok, 3 in_progress \(3\);")
    release.touch()
    for daemon in (first, second):  # each has seen every credential done, and nothing in progress any more
        daemon.wait_for(r"tick \d+: done in [\d.]+s: 4 ok;")
    assert first.stop() == ExitCode.OK, first.tail()
    assert second.stop() == ExitCode.OK, second.tail()
    assert new_keys_made(ws, members) == len(members), "one new key per credential, whoever ran it"
    assert_rotated_once_and_clean(ws, members)


def test_bad_configuration_or_flags_at_start_exit_2_changing_nothing(ws: Workspace, tmp_path: Path):
    before = ws.snapshot()
    for args in (
        ("--every", "0s"),
        ("--every", "1.5s"),
        ("--jitter", "soon"),
        ("--metrics-listen", "9464"),
        ("--heartbeat-file", str(tmp_path / "no-such-folder" / "heartbeat")),
    ):
        result = ws.cli("daemon", *args)
        assert result.exit_code == ExitCode.BAD_INPUT, (args, result.output)
        assert "\nerror: " in "\n" + result.output, (args, result.output)
    ws.config.write_text("[credentials.broken\n")
    result = ws.cli("daemon")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "\nerror: " in "\n" + result.output
    assert "rotator.toml" in result.output
    assert {k: v for k, v in ws.snapshot().items() if k != "rotator.toml"} == {
        k: v for k, v in before.items() if k != "rotator.toml"
    }
