"""A fleet of real consumer processes (tests/consumer_app.py) for the tests and the benchmark of issue 19.

`ConsumerFleet.start(name, source, *flags)` starts one, waits until it serves (it prints its port) and supervises it
as systemd's `Restart=always` would: a consumer that exits while the fleet runs is started again on the same port,
after a short pause, for as long as the fleet runs (a consumer that crashes at every start is a crash loop).
`close()` kills each consumer's process group (each runs in a session of its own), reaps every process it ever
started and then proves no process of the fleet is left: no process on the machine has the fleet's folder on its
command line. It fails loudly if one does.

What each consumer did is in its own log (JSON lines, never a secret): `Consumer.calls()` are its calls to Bluum
(status, key fingerprint), `Consumer.count(401)` and `Consumer.statuses()` count them per status and key.

`rotator_toml(...)` gives the `reload` and `consumers` lines of a store table that point at the fleet: each
consumer's `POST /-/reload` and its `GET /-/bluum-key`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP = Path(__file__).with_name("consumer_app.py")
RESTART_PAUSE = 0.5
"""Seconds between a consumer's exit and its restart (systemd's RestartSec, shortened); doubled, up to
MAX_RESTART_PAUSE, while it keeps exiting within MAX_RESTART_PAUSE of its start."""
MAX_RESTART_PAUSE = 2.0
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class Source:
    """Where a consumer reads its key: the consumer_app arguments for it, and what its process needs in env."""

    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def dotenv(cls, path: Path, prefix: str = "BLUUM_") -> Source:
        return cls(("--env-file", str(path), "--prefix", prefix))

    @classmethod
    def vault(cls, addr: str, token: str, path: str, mount: str = "secret") -> Source:
        return cls(("--vault-path", path, "--vault-mount", mount), {"VAULT_ADDR": addr, "VAULT_TOKEN": token})

    @classmethod
    def aws(cls, secret_id: str, env: Mapping[str, str]) -> Source:
        return cls(("--aws-secret-id", secret_id), dict(env))


@dataclass
class Consumer:
    """One supervised consumer process (and every restart of it)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    stderr: Path
    port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Its attestation endpoint, for `consumers` in rotator.toml."""
        return f"http://127.0.0.1:{self.port}/-/bluum-key"

    @property
    def reload_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/-/reload"

    @property
    def starts(self) -> int:
        """How many processes were started for it (1 + restarts)."""
        return len(self.processes)

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]  # a line being written is left out

    def calls(self) -> list[dict[str, Any]]:
        """Its calls to Bluum, in order: {"t", "status", "fp"} (status 0: no answer)."""
        return [e for e in self.entries() if "status" in e]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Its starts, reloads and crashes: {"t", "event", "fp"?}."""
        return [e for e in self.entries() if "event" in e and (kind is None or e["event"] == kind)]

    def statuses(self) -> Counter[tuple[int, str]]:
        """Calls per (status, key fingerprint)."""
        return Counter((int(e["status"]), str(e["fp"])) for e in self.calls())

    def count(self, status: int, fp: str | None = None) -> int:
        """Calls answered `status` (with the key of fingerprint `fp`, when given)."""
        return sum(n for (code, key), n in self.statuses().items() if code == status and fp in (None, key))


class ConsumerFleet:
    """Starts, supervises and stops consumer processes; everything they write goes under `root`."""

    def __init__(self, root: Path, base_url: str, *, env: Mapping[str, str] | None = None, rate: float = 2.0) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url
        self.rate = rate
        self.env = {**os.environ, **(env or {})}
        self.consumers: dict[str, Consumer] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisors: list[threading.Thread] = []

    # -- starting

    def start(self, name: str, source: Source, *flags: str, rate: float | None = None) -> Consumer:
        """Start consumer `name` reading from `source`, with behaviour `flags` ("--reload-lag", "2", "--lie"...);
        returns once it serves. Started together, use `start_many`: they boot in parallel."""
        return self.start_many([(name, source, flags)], rate=rate)[0]

    def start_many(
        self, specs: Sequence[tuple[str, Source, Sequence[str]]], *, rate: float | None = None
    ) -> list[Consumer]:
        launched = [self._launch(name, source, flags, rate) for name, source, flags in specs]
        for consumer in launched:
            consumer.port = self._wait_ready(consumer)
            thread = threading.Thread(target=self._supervise, args=(consumer,), name=f"supervise-{consumer.name}")
            thread.daemon = True
            thread.start()
            self._supervisors.append(thread)
        return launched

    def _launch(self, name: str, source: Source, flags: Sequence[str], rate: float | None) -> Consumer:
        if name in self.consumers:
            raise ValueError(f"consumer {name!r} already started")
        log, stderr = self.root / f"{name}.calls.jsonl", self.root / f"{name}.stderr"
        command = [sys.executable, str(APP), "--base-url", self.base_url, "--log", str(log)]
        command += ["--rate", str(rate if rate is not None else self.rate), *source.args, *flags]
        consumer = Consumer(name, command, {**self.env, **source.env}, log, stderr)
        self.consumers[name] = consumer
        self._spawn(consumer, ["--port", "0"], stdout=subprocess.PIPE)
        return consumer

    def _spawn(self, consumer: Consumer, extra: list[str], stdout: int) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("the fleet is stopping")
            with consumer.stderr.open("ab") as err:
                process = subprocess.Popen(
                    [*consumer.command, *extra],
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=err,
                    env=consumer.env,
                    start_new_session=True,  # its own process group: killed as a whole at close()
                )
            consumer.processes.append(process)
            return process

    def _wait_ready(self, consumer: Consumer) -> int:
        process = consumer.processes[0]
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        line = process.stdout.readline() if ready else b""
        process.stdout.close()
        if not line.strip().isdigit():
            tail = consumer.stderr.read_text()[-2000:] if consumer.stderr.exists() else ""
            raise RuntimeError(f"consumer {consumer.name} did not start (exit {process.poll()}): {tail}")
        return int(line)

    def _supervise(self, consumer: Consumer) -> None:
        """Restart the consumer on its port whenever it exits, until the fleet stops; one that keeps dying at once
        is restarted less and less often (a crash loop's back-off, as Kubernetes does), to spare the shared cores."""
        pause = RESTART_PAUSE
        while not self._stopping.is_set():
            process = consumer.processes[-1]
            began = time.monotonic()
            process.wait()
            pause = RESTART_PAUSE if time.monotonic() - began > MAX_RESTART_PAUSE else min(pause * 2, MAX_RESTART_PAUSE)
            if self._stopping.wait(pause):
                return
            try:
                self._spawn(consumer, ["--port", str(consumer.port)], stdout=subprocess.DEVNULL)
            except RuntimeError:
                return

    # -- config

    def rotator_toml(self, names: Sequence[str] | None = None, *, timeout: str = "2s", reload: bool = True) -> str:
        """`reload = [...]` and `consumers = [...]` lines for a store table, for the consumers `names` (all)."""
        chosen = [self.consumers[n] for n in (names if names is not None else list(self.consumers))]
        lines = []
        if reload:
            actions = ", ".join(f'{{ url = "{c.reload_url}", timeout = "5s" }}' for c in chosen)
            lines.append(f"reload = [{actions}]")
        declared = ", ".join(f'{{ name = "{c.name}", url = "{c.url}", timeout = "{timeout}" }}' for c in chosen)
        lines.append(f"consumers = [{declared}]")
        return "\n".join(lines) + "\n"

    # -- stopping

    def close(self) -> None:
        """Kill every consumer's process group, reap them all, and prove that none of the fleet's processes is left."""
        with self._lock:
            self._stopping.set()
        processes = [p for c in self.consumers.values() for p in c.processes]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in processes:
                if process.poll() is None:
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
            deadline = time.monotonic() + 5
            for process in processes:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    continue
            if all(p.poll() is not None for p in processes):
                break
        for thread in self._supervisors:
            thread.join(timeout=5)
        left = self.leftovers()
        if left:
            raise AssertionError(f"consumer processes left running after close(): {left}")

    def leftovers(self) -> list[int]:
        """PIDs of live processes whose command line names this fleet's folder (a consumer, or a child of one)."""
        marker = str(self.root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
        return found

    def __enter__(self) -> ConsumerFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def consumer_fleet(root: Path, base_url: str, **kwargs: Any) -> Iterator[ConsumerFleet]:
    """A fleet closed (and checked for leftovers) on the way out, whatever happened inside."""
    fleet = ConsumerFleet(root, base_url, **kwargs)
    try:
        yield fleet
    finally:
        fleet.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether `check()` comes true within `timeout` seconds (asked every 50 ms): consumers act on their own time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
