"""Polling consumers for real (issue 19): HTTP consumers on loopback and command consumers, every outcome, each bounded
by its timeout, all at once, and nothing of the rotator's environment handed to a command."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.attest import fingerprint
from rotator.config.consumers import Consumer
from rotator.consumers.poll import poll_once, poll_until
from tests.attest_consumers import FakeConsumer

NEW, OLD = "pk_test_new_public_key", "pk_test_old_public_key"
FPS = {"new_fingerprint": fingerprint(NEW), "old_fingerprint": fingerprint(OLD)}


@pytest.fixture
def made() -> Iterator[list[FakeConsumer]]:
    servers: list[FakeConsumer] = []
    yield servers
    for server in servers:
        server.stop()


def http(made: list[FakeConsumer], name: str, key: str, mode: str = "answer", timeout: float = 1.0) -> Consumer:
    server = FakeConsumer(name, key)
    server.mode = mode
    made.append(server)
    return Consumer(name, "app", "url", timedelta(seconds=timeout), Path("."), url=server.url)


def command(tmp_path: Path, name: str, code: str, timeout: float = 5.0, pass_env: tuple[str, ...] = ()) -> Consumer:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    argv = (sys.executable, script.name)
    return Consumer(name, "mirror", "command", timedelta(seconds=timeout), tmp_path, command=argv, pass_env=pass_env)


def test_every_http_outcome(made: list[FakeConsumer]) -> None:
    gone = http(made, "gone", NEW)
    made[-1].stop()
    consumers = [
        http(made, "moved", NEW),
        http(made, "stale", OLD),
        http(made, "elsewhere", "pk_test_another"),
        http(made, "junk", NEW, mode="malformed"),
        http(made, "bouncing", NEW, mode="redirect"),
        http(made, "hanging", NEW, mode="hang"),
        gone,
    ]
    found = {a.consumer: a for a in poll_once(consumers, **FPS)}
    assert [(name, found[name].outcome) for name in found] == [
        ("moved", "new"),
        ("stale", "old"),
        ("elsewhere", "other"),
        ("junk", "malformed"),
        ("bouncing", "unreachable"),
        ("hanging", "unreachable"),
        ("gone", "unreachable"),
    ]
    assert found["stale"].reported == fingerprint(OLD)
    assert found["bouncing"].detail == "HTTP 307 (expected 200)"
    assert found["hanging"].detail == "timed out after 1s"
    assert found["gone"].detail == "no answer (ConnectError)"


def test_a_poll_lasts_as_long_as_its_slowest_consumer_not_the_sum(made: list[FakeConsumer]) -> None:
    consumers = [http(made, f"hanging-{n}", NEW, mode="hang") for n in range(20)]
    started = time.monotonic()
    found = poll_once(consumers, **FPS)
    took = time.monotonic() - started
    assert [a.detail for a in found] == ["timed out after 1s"] * 20
    assert took < 1.9, f"20 consumers with a 1s timeout took {took:.1f}s: asked in turns, not at once"


def test_command_consumers_answer_on_stdout_with_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-for-consumer-commands")
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/config")
    report = f"""\
import hashlib, json, os
from pathlib import Path
Path("env.json").write_text(json.dumps(dict(os.environ)))
print(json.dumps({{"fingerprint": "sha256:" + hashlib.sha256(b"{NEW}").hexdigest()[:16], "loaded_at": 1}}))
"""
    caplog.set_level(logging.DEBUG)
    consumers = [
        command(tmp_path, "reporter", report, pass_env=("KUBECONFIG",)),
        command(tmp_path, "failing", "import sys; print('sha256:0123456789abcdef'); sys.exit(3)"),
        command(tmp_path, "chatty", "print('hello ' * 5000)"),
        Consumer("missing", "app", "command", timedelta(seconds=5), tmp_path, command=("./no-such-program",)),
    ]
    found = {a.consumer: a for a in poll_once(consumers, credential="trading", **FPS)}
    assert found["reporter"].outcome == "new"
    assert (found["failing"].outcome, found["failing"].detail) == ("unreachable", "exit 3")
    assert found["chatty"].outcome == "malformed"
    assert found["missing"].outcome == "unreachable"
    assert found["missing"].detail.startswith("could not start './no-such-program'")
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["ROTATOR_CREDENTIAL"] == "trading"
    assert env["ROTATOR_STORE"] == "mirror"
    assert env["KUBECONFIG"] == "/etc/kube/config"
    assert "VAULT_TOKEN" not in env
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "KUBECONFIG", "ROTATOR_CREDENTIAL", "ROTATOR_STORE"}
    assert "hello" not in caplog.text, "a consumer's stdout is never logged"


def test_a_command_past_its_timeout_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    code = """\
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open("pids", "w").write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""
    started = time.monotonic()
    (found,) = poll_once([command(tmp_path, "slow", code, timeout=1.0)], **FPS)
    assert time.monotonic() - started < 5
    assert (found.outcome, found.detail) == ("unreachable", "timed out after 1s")
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid), f"process {pid} outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_poll_until_stops_once_all_report_the_new_key_and_backs_off_otherwise(made: list[FakeConsumer]) -> None:
    consumer = http(made, "late", OLD)
    server = made[-1]
    slept: list[float] = []
    polls: list[int] = []

    def sleep(seconds: float) -> bool:
        slept.append(seconds)
        if len(slept) == 3:
            server.load(NEW)  # reloads after the third wait
        return False

    found = poll_until(
        [consumer],
        credential="trading",
        wait=60,
        monotonic=time.monotonic,
        sleep=sleep,
        between=lambda f: polls.append(len(f)),
        **FPS,
    )
    assert [a.outcome for a in found] == ["new"]
    assert slept == [1.0, 2.0, 4.0]
    assert polls == [1, 1, 1]


def test_poll_until_returns_the_last_answers_when_its_wait_is_spent(made: list[FakeConsumer]) -> None:
    consumer = http(made, "never", OLD)
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> bool:
        slept.append(seconds)
        clock[0] += seconds
        return False

    found = poll_until(
        [consumer],
        new_fingerprint=fingerprint(NEW),
        old_fingerprint=fingerprint(OLD),
        credential="trading",
        wait=10,
        monotonic=lambda: clock[0],
        sleep=sleep,
    )
    assert [a.outcome for a in found] == ["old"]
    # 1 + 2 + 4, then the fourth wait (8 s) is cut to the 3 s left: the last poll is made at the bound, not at 7 s
    assert slept == [1.0, 2.0, 4.0, 3.0]
    assert clock[0] == 10.0


def test_poll_until_sees_a_consumer_that_moves_between_the_last_back_off_and_the_bound(
    made: list[FakeConsumer],
) -> None:
    """A consumer that reloads at 8 s of a 10 s wait is on the new key when the run's bound comes: the poll at the
    bound sees it (with polls at 0, 1, 3 and 7 s only, it was reported unmoved although the run waited 10 s)."""
    consumer = http(made, "late", OLD)
    server = made[-1]
    clock = [0.0]

    def sleep(seconds: float) -> bool:
        clock[0] += seconds
        if clock[0] >= 8.0:
            server.load(NEW)
        return False

    found = poll_until(
        [consumer],
        credential="trading",
        wait=10,
        monotonic=lambda: clock[0],
        sleep=sleep,
        new_fingerprint=fingerprint(NEW),
        old_fingerprint=fingerprint(OLD),
    )
    assert [a.outcome for a in found] == ["new"]
    assert clock[0] == 10.0


def test_no_consumers_no_poll() -> None:
    assert poll_once([], **FPS) == []
