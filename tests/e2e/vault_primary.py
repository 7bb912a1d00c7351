"""Vault as the primary store of the e2e workspace's `trading` credential, for tests/e2e/test_vault_e2e.py.

`VaultPrimary.install(ws, bao, prefix)` does what an operator would: writes the workspace's first key as plain fields
at a KV v2 path with the root token, writes the minimal policy for that path and its state path, mints a token with
exactly that policy (handed to the leak guard, and to every `ws.run` as VAULT_TOKEN), and points `trading` at a store
`vault` there, keeping env stores in `also_deploy_to`. From then on the I1 sampler watches the Vault path too (a
`PairSource` reading the latest version, the way an application reads it), and no longer the file `app.env` unless
`app` is one of the stores deployed to.

The sampler's reads go through http.client, not hvac: the sampler polls every 50 ms and its traffic must not flood
the debug logs the leak guard reads. Assertions use the root hvac client.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac

from backends.vault.store import STATE_PREFIX
from rotator.core.faultpoints import HOLD_ENV, RELEASE_ENV, TRACE_ENV
from rotator.core.model import Environment, KeyPair
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace
from tests.e2e.sampler import PairSource
from tests.openbao import OpenBao, minimal_policy

STORE = "vault"
"""The name of the Vault store in rotator.toml; fault points name it (`promote.vault`, `clear.vault`)."""
MOUNT = "secret"
APP_STORE_TABLE = '[stores.app]\ntype = "env"\npath = "app.env"\n'


def vault_points(points: Sequence[str]) -> list[str]:
    """tests/fault_points.py names the primary store `app`; here the primary is `vault`."""
    return [point.removesuffix(".app") + ".vault" if point.endswith(".app") else point for point in points]


class VaultUnreadable(Exception):
    """The sampler could not read the Vault path (the HTTP status is in the message, never a value)."""


class VaultSource:
    """The latest KV v2 version at `path`, read with the root token over plain HTTP: what an application reads there.

    One connection per read, closed at once: the sampler's thread and the test's thread both read, and nothing is
    left open when the server is stopped or the test ends.
    """

    def __init__(self, bao: OpenBao, path: str, *, mount: str = MOUNT) -> None:
        self._bao = bao
        self._path = f"/v1/{mount}/data/{path}"
        self.down = False
        """Set by a test while it has stopped or sealed the server: reads then are skipped, not outages."""

    def target(self, name: str = "vault") -> PairSource:
        return PairSource(name, self.read)

    def skipping(self) -> bool:
        """Read anew each time: the test's thread may set `down` while the sampler's thread is reading."""
        return self.down

    def read(self) -> tuple[str | None, str | None, str | None] | None:
        if self.skipping():
            return None
        address = urlsplit(self._bao.url)
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5.0)
        try:
            connection.request("GET", self._path, headers={"X-Vault-Token": self._bao.root_token})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            if self.skipping():  # stopped while this read was under way
                return None
            raise
        finally:
            connection.close()
        if response.status != 200:
            if self.skipping():
                return None
            raise VaultUnreadable(f"HTTP {response.status}")
        data = (json.loads(body).get("data") or {}).get("data") or {}
        return data.get("api_key"), data.get("api_secret"), data.get("key_id")


@dataclass(repr=False)
class VaultPrimary:
    """The Vault side of a workspace whose `trading` credential keeps its key first in Vault.

    Its repr names the path only (pytest shows it in failures; the token must not be there), and what tests assert
    on comes without secrets (`stages()`, `field()`, `current_id()`) so that a failing assertion cannot print one.
    """

    ws: Workspace
    bao: OpenBao
    path: str
    token: str
    source: VaultSource
    also: tuple[str, ...]
    mount: str = MOUNT
    _root: hvac.Client | None = None

    @classmethod
    def install(
        cls,
        ws: Workspace,
        bao: OpenBao,
        prefix: str,
        *,
        also: tuple[str, ...] = ("mirror",),
        other_fields: dict[str, str] | None = None,
    ) -> VaultPrimary:
        path = f"{prefix}/trading"
        policy = f"rotator-{uuid.uuid4().hex[:12]}"
        bao.write_policy(policy, minimal_policy(MOUNT, path, STATE_PREFIX + path))
        token = bao.token_with_policies([policy])
        ws.guard.watch(token)
        ws.env["VAULT_TOKEN"] = token
        source = VaultSource(bao, path)
        primary = cls(ws=ws, bao=bao, path=path, token=token, source=source, also=also)
        pair = ws.first.pair
        seeded = {"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": str(pair.key_id)}
        primary.write({**seeded, **(other_fields or {})})
        primary.configure()
        with ws.sampling_paused():  # app.env leaves the sampler's list before it leaves the disk
            ws.sampled = [t for t in ws.sampled if "app" in also or t != ("app.env", "BLUUM_")] + [source.target()]
            if "app" not in also:
                (ws.root / "app.env").unlink()  # nothing may read it by mistake: the key is in Vault now
        return primary

    def __repr__(self) -> str:
        return f"VaultPrimary(path={self.path!r})"

    @property
    def state_path(self) -> str:
        return STATE_PREFIX + self.path

    def configure(self, **overrides: str) -> None:
        """The workspace's rotator.toml (`ws.write_config(**overrides)`) with `trading` kept in Vault first."""
        self.ws.write_config(**overrides)
        if "app" not in self.also:
            self.ws.edit_config(APP_STORE_TABLE, "")  # a store nobody deploys to would still "hold" the old key
        self.ws.add_config(
            f'\n[stores.{STORE}]\ntype = "vault"\nurl = "{self.bao.url}"\n'
            f'mount = "{self.mount}"\npath = "{self.path}"\n'
        )
        self.ws.edit_config('store = "app"\n', f'store = "{STORE}"\n')
        self.ws.edit_config('also_deploy_to = ["mirror"]', f"also_deploy_to = {json.dumps(list(self.also))}")

    # -- reading what is there, with the root token -------------------------------------------------------

    @property
    def root(self) -> hvac.Client:
        """One root client for the test's own reads and writes (`close()` closes its connections)."""
        if self._root is None:
            self._root = self.bao.client()
        return self._root

    def close(self) -> None:
        if self._root is not None:
            self._root.adapter.close()
            self._root = None

    def latest(self) -> dict[str, Any]:
        """What an application reads at `path`: the latest version's fields."""
        answer = self.root.secrets.kv.v2.read_secret_version(
            path=self.path, mount_point=self.mount, raise_on_deleted_version=True
        )
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def write(self, fields: dict[str, Any]) -> None:
        """A new latest version at `path`, written with the root token as an operator would (no check-and-set)."""
        self.root.secrets.kv.v2.create_or_update_secret(path=self.path, secret=fields, mount_point=self.mount)

    def version(self) -> int:
        answer = self.root.secrets.kv.v2.read_secret_version(
            path=self.path, mount_point=self.mount, raise_on_deleted_version=True
        )
        return int(answer["data"]["metadata"]["version"])

    def field(self, name: str) -> str | None:
        """One field of the latest version at `path` (not the secret's: assertions print what they compare)."""
        value = self.latest().get(name)
        return None if value is None else str(value)

    def current_id(self) -> str | None:
        value = self.latest().get("key_id")
        return None if value is None else str(value)

    def pair(self) -> KeyPair:
        data = self.latest()
        return KeyPair(
            api_key=str(data["api_key"]),
            api_secret=Secret(str(data["api_secret"])),
            environment=Environment.SANDBOX,
            key_id=data.get("key_id"),
        )

    def document(self) -> tuple[dict[str, Any], int]:
        """The stage document at state_path (stages with secrets, record, lease) and its KV version."""
        answer = self.root.secrets.kv.v2.read_secret_version(
            path=self.state_path, mount_point=self.mount, raise_on_deleted_version=True
        )
        data: dict[str, Any] = answer["data"]["data"]
        return data, int(answer["data"]["metadata"]["version"])

    def stages(self) -> dict[str, Any]:
        """The stage document without its secrets: each stage's key id (None: empty), the phase, the lease."""

        def key_id(stage: dict[str, Any] | None) -> str | None:
            return None if stage is None else str(stage.get("key_id") or "a key without an id")

        document, version = self.document()
        lease, record = document.get("lease") or {}, document.get("record") or {}
        return {
            "current": key_id(document.get("current")),
            "pending": key_id(document.get("pending")),
            "previous": key_id(document.get("previous")),
            "phase": record.get("phase"),
            "lease_owner": lease.get("owner"),
            "lease_fence": lease.get("fence"),
            "version": version,
        }

    def expire_lease(self, seconds_ago: float = 1.0) -> int:
        """Make the held lease look expired (as if its runner had stalled past it); returns its fencing number."""
        return self.edit_lease(expires_at=time.time() - seconds_ago)

    def move_lease_holder(self, host: str) -> int:
        """Make the held lease's runner look as if it ran on `host` (so no one here can tell it died)."""
        data, _ = self.document()
        return self.edit_lease(holder={**data["lease"]["holder"], "host": host})

    def edit_lease(self, **changes: Any) -> int:
        """Change the held lease in the stage document with the root token (check-and-set); returns its fence."""
        data, version = self.document()
        lease = data["lease"]
        assert lease["owner"], "no lease is held"
        lease.update(changes)
        self.root.secrets.kv.v2.create_or_update_secret(
            path=self.state_path, secret=data, cas=version, mount_point=self.mount
        )
        return int(lease["fence"])

    @contextmanager
    def server_down(self) -> Iterator[None]:
        """The test stops (or seals) the server inside: the sampler skips the Vault path until the block ends."""
        self.source.down = True
        try:
            yield
        finally:
            self.source.down = False


# -- the CLI in subprocesses beyond `ws.run` ---------------------------------------------------------------------

LIBRARY_DEBUG_LOGS = (
    "import logging, runpy, sys; "
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='LIB %(name)s %(levelname)s %(message)s'); "
    "runpy.run_module('rotator', run_name='__main__', alter_sys=True)"
)
"""`python -m rotator` with every library's logger (hvac, urllib3, requests, httpx, httpcore) at DEBUG on stderr: the
CLI configures only its own logger, so this is what an operator who turns on Python's root logging would see."""


def run_with_library_logs(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`ws.run`, with the debug logs of hvac and urllib3 on stderr too (lines starting `LIB `)."""
    return ws.run_command(
        [sys.executable, "-c", LIBRARY_DEBUG_LOGS, "-vv", "--config", str(ws.config), *args],
        what="subprocess (library logs on)",
    )


@dataclass(repr=False)
class Background:
    """One `rotator` subprocess left running (parked at a fault point, racing others); `finish()` collects it."""

    ws: Workspace
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    trace: Path

    @classmethod
    def start(
        cls, ws: Workspace, *args: str, name: str, env: dict[str, str] | None = None, library_logs: bool = False
    ) -> Background:
        """`rotator -vv ARGS` in the background; `library_logs`: hvac's and urllib3's debug logs on stderr too."""
        folder = ws.root / "runs"  # not in `ws.snapshot()`: a run's own output is not a change it made
        folder.mkdir(exist_ok=True)
        out, err, trace = (folder / f"{name}.{kind}" for kind in ("out", "err", "trace"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            python = [sys.executable, "-c", LIBRARY_DEBUG_LOGS] if library_logs else [sys.executable, "-m", "rotator"]
            proc = subprocess.Popen(
                [*python, "-vv", "--config", str(ws.config), *args],
                stdout=stdout,
                stderr=stderr,
                cwd=ws.root,
                env={**os.environ, **ws.env, TRACE_ENV: str(trace), **(env or {})},
            )
        return cls(ws, proc, out, err, trace)

    @classmethod
    def parked(
        cls, ws: Workspace, point: str, *args: str, name: str = "parked", library_logs: bool = False
    ) -> tuple[Background, Path]:
        """A run that stops at fault point `point` (its lease held) until the returned file exists."""
        release = ws.root / "runs" / f"{name}.release"
        hold = {HOLD_ENV: point, RELEASE_ENV: str(release)}
        run = cls.start(ws, *args, name=name, env=hold, library_logs=library_logs)
        run.wait_for_point(point)
        return run, release

    def __repr__(self) -> str:
        return f"Background(pid={self.proc.pid}, out={self.out.name!r})"

    def points(self) -> list[str]:
        return self.trace.read_text().split() if self.trace.exists() else []

    def wait_for_point(self, point: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while point not in self.points():
            if self.proc.poll() is not None:
                done = self.finish()
                raise AssertionError(f"exited {done.returncode} before reaching {point}: {done.stderr[-2000:]}")
            assert time.monotonic() < deadline, f"did not reach {point} in {timeout} s (passed {self.points()})"
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Wait for the exit; the output goes to the leak guard, and the sampler probes the state left behind."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        stdout, stderr = self.out.read_text(), self.err.read_text()
        self.ws.guard.check(stdout, f"{self.out.name}")
        self.ws.guard.check(stderr, f"{self.err.name}")
        self.ws.probe()
        return subprocess.CompletedProcess(self.proc.args, code, stdout, stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
