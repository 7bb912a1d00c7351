"""A workspace for end-to-end runs: the simulator over HTTP, a real rotator.toml and real dotenv stores.

`ws.run(...)` runs the real `rotator` CLI in a subprocess (crash tests, concurrency); `ws.cli(...)` runs
the same click command in-process (faster). Both run with -vv and hand all output, debug logs included,
to the leak guard.

Every workspace is watched by a `KeySampler` (tests/e2e/sampler.py): the key each target file holds must get
200 from Bluum all through the test, and after every command. A test that breaks a key on purpose (a revoked
current key, a rejected manager key, a new key killed in its grace window) excuses that key with `ws.excuse(pair)`
first; a test that leaves a target with no readable key at all says so with `@pytest.mark.key_outage("why")`,
and its sampler is off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from dotenv import dotenv_values

from rotator.bluum.client import BluumClient, CheckOutcome
from rotator.cli.demo import open_account
from rotator.core.model import CreatedKey, Environment, KeyPair
from rotator.core.secret import Secret
from rotator.simulator import Simulator
from tests.conftest import LeakGuard
from tests.e2e.sampler import KeySampler, Target

REPO = Path(__file__).resolve().parents[2]


def dotenv_text(pair: KeyPair, environment: str, base_url: str, extra: str = "") -> str:
    return (
        "# app settings kept by hand\nAPP_NAME='trader'\n"
        f"BLUUM_API_KEY='{pair.api_key}'\n"
        f"BLUUM_API_SECRET='{pair.api_secret.reveal()}'\n"
        f"BLUUM_KEY_ID='{pair.key_id}'\n"
        f"BLUUM_ENVIRONMENT='{environment}'\n"
        f"BLUUM_BASE_URL='{base_url}'\n" + extra
    )


@dataclass
class Workspace:
    root: Path
    sim: Simulator
    guard: LeakGuard
    tenant: dict[str, str]
    tenant_pair: KeyPair
    investor: str
    first: CreatedKey
    grace: str = "0s"
    verify_timeout: str = "5s"
    mirror: bool = True
    env: dict[str, str] = field(default_factory=dict)
    sampled: list[Target] = field(
        default_factory=lambda: [("tenant.env", "BLUUM_"), ("app.env", "BLUUM_"), ("mirror.env", "TRADING_")]
    )
    """Targets the sampler watches: files (name, prefix), or a `PairSource` for a store that is not a file (a Vault
    path); a test that adds a store adds it here, and one that moves a credential elsewhere takes its file out."""
    sampler: KeySampler | None = None

    @property
    def config(self) -> Path:
        return self.root / "rotator.toml"

    @contextmanager
    def sampling_paused(self) -> Iterator[None]:
        """Change `sampled` together with the files in here: no sampler round runs inside (`KeySampler.paused`)."""
        with self.sampler.paused() if self.sampler is not None else nullcontext():
            yield

    def write_config(self, **overrides: str) -> None:
        grace = overrides.get("grace", self.grace)
        verify_timeout = overrides.get("verify_timeout", self.verify_timeout)
        also = '["mirror"]' if self.mirror else "[]"
        self.config.write_text(
            f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[stores.app]
type = "env"
path = "app.env"

[stores.mirror]
type = "env"
path = "mirror.env"
prefix = "TRADING_"

[credentials.tenant]
environment = "sandbox"
base_url = "{self.sim.base_url}"
issuer = "manual"
store = "tenant"
grace = "{grace}"
verify_timeout = "{verify_timeout}"

[credentials.trading]
environment = "sandbox"
base_url = "{self.sim.base_url}"
issuer = "bluum"
investor_id = "{self.investor}"
manager = "tenant"
store = "app"
also_deploy_to = {also}
rotate_every = "90d"
grace = "{grace}"
verify_timeout = "{verify_timeout}"
"""
        )

    def add_config(self, tables: str) -> None:
        """Append TOML tables (another store or credential) to the workspace's rotator.toml."""
        self.config.write_text(self.config.read_text() + tables)

    def edit_config(self, old: str, new: str) -> None:
        """Replace `old` in rotator.toml; an edit that no longer matches fails the test instead of testing nothing."""
        text = self.config.read_text()
        assert old in text, f"{old!r} is not in rotator.toml"
        self.config.write_text(text.replace(old, new))

    def bluum_gives_up_soon(self, retry_budget: str = "1s") -> None:
        """Two attempts within `retry_budget`: a test of an outage ends in seconds, not the default minutes."""
        self.add_config(f'\n[bluum]\nmax_attempts = 2\nretry_budget = "{retry_budget}"\n')

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 90, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real console entry point in a subprocess; output goes through the leak guard."""
        command = [sys.executable, "-m", "rotator", "-vv", "--config", str(self.config), *args]
        return self.run_command(command, env=env, timeout=timeout, input=input)

    def run_command(
        self,
        command: list[str],
        *,
        what: str = "subprocess",
        env: dict[str, str] | None = None,
        timeout: float = 90,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`command` (a rotator run wrapped in another program, say) with the workspace's variables, in its folder;
        its output goes through the leak guard (`what` names it there), then the applications' probe runs."""
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env, **(env or {})},
            input=input,
            cwd=self.root,
            check=False,
        )
        self.guard.check(proc.stdout, f"{what} stdout")
        self.guard.check(proc.stderr, f"{what} stderr")
        self.probe()
        return proc

    def cli(self, *args: str, input: str | None = None) -> Result:
        from rotator.cli.commands import cli

        # -vv: every debug log line goes through the leak guard too
        result = CliRunner().invoke(cli, ["-vv", "--config", str(self.config), *args], input=input)
        self.guard.check(result.output, "cli output")
        self.probe()
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def excuse(self, pair: KeyPair) -> None:
        """The test is about to break `pair` at Bluum: the sampler stops counting its outages."""
        if self.sampler is not None:
            self.sampler.excuse(pair.api_key, pair.api_secret.reveal())

    def probe(self) -> None:
        """Probe every target now (the state a command left behind, crashed or not, is always sampled)."""
        if self.sampler is not None:
            self.sampler.round()

    def delay_new_keys(self, seconds: float) -> None:
        """Keys created from now on answer 401 for `seconds`; existing keys are aged past the window first."""
        self.sim.advance_clock(seconds + 60)
        self.sim.configure(propagation_delay=seconds)

    def values(self, name: str = "app.env") -> dict[str, str | None]:
        return dotenv_values(self.root / name)

    def current_id(self, name: str = "app.env", prefix: str = "BLUUM_") -> str | None:
        return self.values(name).get(f"{prefix}KEY_ID")

    def pair_in(self, name: str = "app.env", prefix: str = "BLUUM_") -> KeyPair:
        values = self.values(name)
        return KeyPair(
            api_key=str(values[f"{prefix}API_KEY"]),
            api_secret=Secret(str(values[f"{prefix}API_SECRET"])),
            environment=Environment.SANDBOX,
            key_id=values.get(f"{prefix}KEY_ID"),
        )

    def investor_keys(self) -> list[dict[str, object]]:
        return [k for k in self.sim.keys() if k.get("owner") == self.investor]

    def active_ids(self) -> set[str]:
        return {str(k["id"]) for k in self.investor_keys() if k["status"] == "active"}

    def works(self, pair: KeyPair) -> bool:
        with BluumClient(self.sim.base_url) as client:
            return client.check(pair).outcome is CheckOutcome.WORKS

    def sidecar_path(self, name: str = "app.env") -> Path:
        """Where the store of the dotenv file `name` keeps its stages and record (the rotator's state folder)."""
        return self.root / "rotator-state" / f"{name.removesuffix('.env')}.json"

    def snapshot(self) -> dict[str, bytes]:
        """Every file in the workspace and its state folder, byte for byte (lock files excluded: not a change)."""
        files = [*self.root.iterdir(), *(self.root / "rotator-state").glob("*")]
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(files)
            if p.is_file() and not p.name.endswith(".lock")
        }


@pytest.fixture
def ws(sim: Simulator, leak_guard: LeakGuard, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    account = open_account(sim, "initial")
    tenant, tenant_pair, investor, first = account.tenant, account.tenant_pair, account.investor, account.first
    (tmp_path / "tenant.env").write_text(dotenv_text(tenant_pair, "sandbox", sim.base_url))
    (tmp_path / "app.env").write_text(dotenv_text(first.pair, "sandbox", sim.base_url))
    mirror = dotenv_text(first.pair, "sandbox", sim.base_url).replace("BLUUM_", "TRADING_")
    (tmp_path / "mirror.env").write_text(mirror)
    for name in ("tenant.env", "app.env", "mirror.env"):
        (tmp_path / name).chmod(0o600)
    workspace = Workspace(
        root=tmp_path, sim=sim, guard=leak_guard, tenant=tenant, tenant_pair=tenant_pair, investor=investor, first=first
    )
    workspace.write_config()
    if request.node.get_closest_marker("key_outage") is None:
        workspace.sampler = KeySampler(sim.root_url, tmp_path, lambda: list(workspace.sampled)).start()
    yield workspace
    if workspace.sampler is not None:
        outages = workspace.sampler.stop()
        if outages:
            shown = "\n  ".join(str(o) for o in outages[:10])
            pytest.fail(f"I1: a target held a key Bluum did not accept ({len(outages)} probe(s)):\n  {shown}")
