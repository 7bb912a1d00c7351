"""Vault store benchmark: one rotation with two Vault stores beside the same rotation with two env stores.

Both run in this process against the same in-process Bluum simulator (throttle lifted, so the stores' own cost
shows), alternating round by round; the Vault rotation talks to a real OpenBao dev server over loopback HTTP. The
baseline is the env-store rotation measured in the same run: the ratio vault / env is what keeping the key in Vault
costs. The OpenBao server's own CPU (read from /proc) is reported beside the rotator's, and its start time too.

Run: .venv/bin/python benchmarks/bench_vault.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.openbao: the same server the tests use

from rotator.cli.demo import open_account, seed_workspace
from rotator.config.loader import load_config
from rotator.core.model import KeyPair
from rotator.ops.app import assemble
from rotator.simulator import Simulator
from tests.openbao import OpenBao, minimal_policy

ROUNDS = 7


def env_workspace(sim: Simulator, folder: Path) -> Path:
    account = open_account(sim, "bench")
    config = seed_workspace(folder, sim.base_url, account.tenant_pair, account.investor, account.first.pair)
    config.write_text(config.read_text() + "\n[bluum]\nrate_limit_sandbox = inf\n")
    return config


def vault_workspace(sim: Simulator, folder: Path, bao: OpenBao) -> tuple[Path, str]:
    """The demo's workspace with both targets of `trading` moved into Vault; returns the config and a token that
    holds exactly the minimal policy for those two paths."""
    config = env_workspace(sim, folder)
    pair = _pair_in(folder / "app.env")
    prefix = f"bench/{uuid.uuid4().hex[:10]}"
    hcl = ""
    for name in ("app", "reports"):
        bao.client().secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/{name}",
            secret={"api_key": pair.api_key, "api_secret": pair.api_secret.reveal(), "key_id": pair.key_id or ""},
        )
        hcl += minimal_policy("secret", f"{prefix}/{name}", f"bluum-rotator/{prefix}/{name}")
    policy = f"bench-{uuid.uuid4().hex[:8]}"
    bao.write_policy(policy, hcl)
    text = config.read_text()
    for name, old in (("app", 'path = "app.env"'), ("reports", 'path = "reports.env"\nprefix = "TRADING_"')):
        env_table = f'[stores.{name}]\ntype = "env"\n{old}'
        assert env_table in text, "the demo's config changed: update this benchmark"
        vault_table = f'[stores.{name}]\ntype = "vault"\npath = "{prefix}/{name}"\nurl = "{bao.url}"'
        text = text.replace(env_table, vault_table)
    config.write_text(text)
    return config, bao.token_with_policies([policy])


def _pair_in(path: Path) -> KeyPair:
    from dotenv import dotenv_values

    from rotator.core.model import Environment
    from rotator.core.secret import Secret

    values = dotenv_values(path)
    return KeyPair(
        str(values["BLUUM_API_KEY"]),
        Secret(str(values["BLUUM_API_SECRET"])),
        Environment.SANDBOX,
        values.get("BLUUM_KEY_ID"),
    )


def server_cpu(pid: int) -> float:
    """User plus system CPU seconds the server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rotation(config: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (the in-process simulator included) for one rotation."""
    app = assemble(load_config(config))  # as the command line assembles it: history and sinks included
    service = app.service
    started, cpu = time.perf_counter(), time.process_time()
    with app:
        service.rotate("trading")
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    env_walls, env_cpus, vault_walls, vault_cpus, bao_cpus = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, Simulator() as sim, OpenBao.dev(Path(tmp) / "bao") as bao:
        sim.configure(rate_limits={"TEST": 1_000_000, "PRODUCTION": 1_000_000})
        assert bao.pid is not None
        for n in range(ROUNDS):
            folder = Path(tmp) / f"env-{n}"
            folder.mkdir()
            wall, cpu = rotation(env_workspace(sim, folder))
            env_walls.append(wall)
            env_cpus.append(cpu)
            folder = Path(tmp) / f"vault-{n}"
            folder.mkdir()
            config, token = vault_workspace(sim, folder, bao)
            os.environ["VAULT_TOKEN"] = token
            before = server_cpu(bao.pid)
            wall, cpu = rotation(config)
            bao_cpus.append(server_cpu(bao.pid) - before)
            vault_walls.append(wall)
            vault_cpus.append(cpu)
        started = bao.startup_seconds
    env_wall, vault_wall = statistics.median(env_walls), statistics.median(vault_walls)
    env_cpu, vault_cpu, bao_cpu = (
        statistics.median(env_cpus),
        statistics.median(vault_cpus),
        statistics.median(bao_cpus),
    )
    print(f"one rotation of a credential with two targets, median of {ROUNDS} (throttle lifted)")
    print(f"  OpenBao dev server start (launch to healthy): {started * 1000:7.1f} ms")
    print(f"  baseline, two env stores:   wall {env_wall * 1000:7.1f} ms   CPU {env_cpu * 1000:7.1f} ms")
    print(f"  two Vault stores:           wall {vault_wall * 1000:7.1f} ms   CPU {vault_cpu * 1000:7.1f} ms")
    print(f"    the OpenBao server's own CPU meanwhile: {bao_cpu * 1000:7.1f} ms")
    print(f"  ratio Vault / env:          wall {vault_wall / env_wall:7.2f}x   CPU {vault_cpu / env_cpu:7.2f}x")


if __name__ == "__main__":
    main()
