"""Issue 16, item 5: a hostile client of the daemon's /metrics and /healthz port must never stop a tick.

A real `rotator daemon` process with few descriptors (RLIMIT_NOFILE 64, so exhausting them would show at once) ticks
over the simulator while the test holds 300 idle connections to its port and resets 50 more right after sending a
request. The ticks go on succeeding, /healthz answers while the idle connections are still held, and stderr holds
JSON log lines only (no traceback from a client that went away).
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_daemon import TICK, DaemonProcess, fleet, metric_samples, wait_until

pytestmark = pytest.mark.slow

DESCRIPTORS = 64
"""The daemon's RLIMIT_NOFILE: a few dozen more than it needs, far fewer than the connections the test opens."""
IDLE = 300
RESETS = 50


class LimitedDaemon(DaemonProcess):
    """`rotator -vv daemon ...` as DaemonProcess runs it, with RLIMIT_NOFILE set to `descriptors` in the child."""

    def __init__(self, ws: Workspace, *args: str, descriptors: int) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

        super().__init__(ws, *args, preexec_fn=limit)


def connect(host: str, port: int) -> socket.socket:
    """A connection that sends nothing (connect is not waited for: a full backlog must not block the test)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex((host, port))
    return sock


def open_idle(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections that send nothing, opened ten at a time so that the listen backlog never overflows (a
    connection dropped there would only reach the server seconds later, by the kernel's retries)."""
    held = []
    for _ in range(0, count, 10):
        held += [connect(host, port) for _ in range(10)]
        time.sleep(0.05)
    return held


def reset_after_request(host: str, port: int) -> None:
    """Send a request and tear the connection down with RST before the answer: the server's write fails."""
    try:
        sock = socket.create_connection((host, port), timeout=0.5)
    except OSError:
        return  # turned away at the cap: also fine
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")


def healthz(base: str) -> tuple[int, dict[str, object]] | None:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (OSError, ValueError):
        return None


def test_idle_and_reset_connections_never_stop_a_tick(ws: Workspace, tmp_path: Path) -> None:
    members = fleet(ws, 2)
    daemon = LimitedDaemon(ws, *TICK, "--metrics-listen", "127.0.0.1:0", descriptors=DESCRIPTORS)
    base = daemon.wait_for(r"/metrics and /healthz on (http://[^;\s]+);").group(1)
    daemon.wait_for(r"tick 1: done in [\d.]+s: 3 ok")
    host, port = re.match(r"http://([\d.]+):(\d+)", base).groups()  # type: ignore[union-attr]

    held = open_idle(host, int(port), IDLE)
    try:
        for _ in range(RESETS):
            reset_after_request(host, int(port))
        start = len(daemon.out)
        for _ in range(3):  # three more ticks, each reading every store, while the connections are held
            found = daemon.wait_for(r"tick (\d+): done in [\d.]+s: (.*?); next tick", start=start)
            assert found.group(2) == "3 ok", daemon.tail()
            start = next(i for i, line in enumerate(daemon.out) if i >= start and found.group(0) in line) + 1

        answers: list[tuple[int, dict[str, object]]] = []

        def answered() -> bool:
            got = healthz(base)
            if got is not None:
                answers.append(got)
            return got is not None

        wait_until("/healthz to answer while 300 idle connections are held", answered, timeout=20)
        status, body = answers[-1]
        assert status == 200, body
        assert body["status"] == "ok"
        assert body["last_tick"] == "ok"
        assert int(str(body["ticks"])) >= 4
    finally:
        for sock in held:
            sock.close()

    samples = metric_samples(urllib.request.urlopen(base + "/metrics", timeout=5).read().decode())
    assert samples[("bluum_rotator_daemon_ticks_total", "failed")] == 0
    assert daemon.stop() == ExitCode.OK, daemon.tail()
    assert [m.name for m in members]  # both rotated in tick 1 (the "3 ok" above)

    not_json = []
    for line in daemon.err:
        try:
            json.loads(line)
        except ValueError:
            not_json.append(line)
    assert not not_json, "stderr holds lines that are not JSON log records:\n" + "".join(not_json[:20])
    err = "".join(daemon.err)
    assert "Too many open files" not in err
    assert "connections closed at the cap" in err, "the turned-away connections are logged (once a minute)"


def test_a_client_that_trickles_its_request_is_cut_and_the_daemon_stops_cleanly(ws: Workspace) -> None:
    """One byte every half second would reset a per-read timeout forever; the connection's whole time is bounded."""
    fleet(ws, 1)
    daemon = LimitedDaemon(ws, *TICK, "--metrics-listen", "127.0.0.1:0", descriptors=DESCRIPTORS)
    base = daemon.wait_for(r"/metrics and /healthz on (http://[^;\s]+);").group(1)
    host, port = re.match(r"http://([\d.]+):(\d+)", base).groups()  # type: ignore[union-attr]
    sock = socket.create_connection((host, int(port)), timeout=10)
    cut = False
    with sock:
        for byte in b"GET /healthz HTTP/1.0\r\nX-Slow: " + b"a" * 60:
            try:
                sock.sendall(bytes([byte]))
                time.sleep(0.5)
            except OSError:
                cut = True
                break
    assert cut, "a trickling client kept its connection for 30 s"
    assert daemon.stop() == ExitCode.OK, daemon.tail()
