"""`rotator demo` / `make demo`: one real rotation against the in-process simulator, shown step by step.

It goes through the same code as `rotator rotate` (the click command itself), over real HTTP, with a
real dotenv store in a temporary folder; only Bluum is simulated. No secret is printed.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.core.durations import format_duration
from rotator.core.model import CreatedKey, Environment, KeyPair
from rotator.core.secret import Secret

if TYPE_CHECKING:
    from rotator.simulator import Simulator

PROPAGATION_DELAY = 0.5


def _dotenv(pair: KeyPair, environment: Environment, base_url: str) -> str:
    values = {
        "BLUUM_API_KEY": pair.api_key,
        "BLUUM_API_SECRET": pair.api_secret.reveal(),
        "BLUUM_KEY_ID": pair.key_id or "",
        "BLUUM_ENVIRONMENT": environment.value,
        "BLUUM_BASE_URL": base_url,
    }
    return "# written by `rotator demo`\n" + "".join(f"{name}='{value}'\n" for name, value in values.items())


def _config(base_url: str, investor_id: str) -> str:
    return f"""\
[stores.tenant]
type = "env"
path = "tenant.env"

[stores.app]
type = "env"
path = "app.env"

[stores.reports]
type = "env"
path = "reports.env"
prefix = "TRADING_"

[credentials.tenant]
environment = "sandbox"
base_url = "{base_url}"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
base_url = "{base_url}"
issuer = "bluum"
investor_id = "{investor_id}"
manager = "tenant"
store = "app"
also_deploy_to = ["reports"]
rotate_every = "90d"
grace = "0s"
verify_timeout = "10s"
"""


@dataclass(frozen=True)
class Account:
    """A tenant (its key stands in for the one made in the dashboard), an investor and its first key."""

    tenant: dict[str, str]
    tenant_pair: KeyPair
    investor: str
    first: CreatedKey


def open_account(sim: Simulator, first_key_name: str) -> Account:
    """Set up at the simulator what an operator has before the first rotation."""
    from rotator.bluum.client import BluumClient

    tenant = sim.create_tenant_key(environment="TEST")
    tenant_pair = KeyPair(
        api_key=tenant["public_key"],
        api_secret=Secret(tenant["secret_key"]),
        environment=Environment.SANDBOX,
        key_id=tenant["id"],
    )
    investor = sim.create_investor()
    with BluumClient(sim.base_url, rate_limits={Environment.SANDBOX: math.inf}) as client:
        first = client.create_investor_key(
            tenant_pair,
            investor,
            name=first_key_name,
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    return Account(tenant, tenant_pair, investor, first)


def seed_workspace(folder: Path, base_url: str, tenant: KeyPair, investor_id: str, current: KeyPair) -> Path:
    """Dotenv stores as an operator would seed them by hand, and the rotator.toml that names them."""
    (folder / "tenant.env").write_text(_dotenv(tenant, Environment.SANDBOX, base_url))
    (folder / "app.env").write_text(_dotenv(current, Environment.SANDBOX, base_url))
    (folder / "reports.env").write_text(_dotenv(current, Environment.SANDBOX, base_url).replace("BLUUM_", "TRADING_"))
    for name in ("tenant.env", "app.env", "reports.env"):
        (folder / name).chmod(0o600)
    config = folder / "rotator.toml"
    config.write_text(_config(base_url, investor_id))
    return config


def _show(run_command: Callable[[list[str]], int], args: list[str]) -> int:
    click.secho("$ rotator " + " ".join(args), bold=True)
    return run_command(args)


def run_demo(run_command: Callable[[list[str]], int]) -> int:
    """Set up, rotate, show status and prove the old key is dead. Returns the exit code.

    `run_command` runs `rotator ARGS` and returns its exit code (the CLI passes its own click group, so this module
    needs no import of the CLI)."""
    from rotator.bluum.client import BluumClient
    from rotator.simulator import Simulator

    click.secho("bluum-rotator demo: a real rotation against the local Bluum simulator", bold=True)
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp:
        folder = Path(tmp)
        click.echo(f"simulator    {sim.base_url}  (real HTTP on loopback; stands in for Bluum)")
        account = open_account(sim, "demo: the key the trading app uses today")
        tenant, tenant_pair, investor, first = account.tenant, account.tenant_pair, account.investor, account.first
        config = seed_workspace(folder, sim.base_url, tenant_pair, investor, first.pair)
        sim.configure(propagation_delay=PROPAGATION_DELAY)
        sim.advance_clock(60)  # the existing keys are long propagated
        click.echo(f"tenant key   {tenant['id']}  (made in Bluum's dashboard; it mints investor keys)")
        click.echo(f"investor     {investor}")
        click.echo("environment  sandbox in rotator.toml; Bluum's API and dashboard call it TEST (either works there)")
        click.echo(f"current key  {first.info.id}  in {folder / 'app.env'} and {folder / 'reports.env'}")
        click.echo(f"config       {config}")
        click.echo(f"propagation  new keys answer 401 for {PROPAGATION_DELAY}s after creation, as a real API may\n")

        started = time.monotonic()
        code = _show(run_command, ["--config", str(config), "rotate", "trading"])
        elapsed = time.monotonic() - started
        click.echo(f"exit code {code}, wall time {format_duration(elapsed, places=2)}\n")
        _show(run_command, ["--config", str(config), "status"])
        click.echo()

        click.secho("proof", bold=True)
        with BluumClient(sim.base_url) as client:
            old = client.check(first.pair)
            click.echo(f"  old key {first.info.id}: {old.status} {old.code or ''} ({old.reason})")
            from rotator.config.loader import load_config
            from rotator.core.model import Stage
            from rotator.rotation.runtime import Runtime

            with Runtime(load_config(config)) as runtime:
                current = runtime.store("app").read(Stage.CURRENT)
            if current is not None:
                new_pair = KeyPair(current.api_key, current.api_secret, Environment.SANDBOX, current.key_id)
                new = client.check(new_pair)
                click.echo(f"  new key {current.label}: {new.status} ({new.reason})")
        keys = sim.keys()
        active = [k["id"] for k in keys if k["status"] == "active" and k["id"] != tenant["id"]]
        click.echo(f"  active investor keys at Bluum: {', '.join(active)}")
        return code
