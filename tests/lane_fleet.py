"""A fleet whose credentials one tenant key pays for, kept in a real OpenBao or moto, and two runners of it at once:
what the lanes tests (tests/integration/test_lanes.py) and benchmarks/bench_lanes.py share.

A runner is a real `rotator` process (`run-due`, or `daemon`), optionally on another "host": `unshare --uts` with a
host name of its own, so the two differ by host name as two machines do (the lease's holder is then not judged by
its PID, only by the lease's expiry)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rotator.core.model import KeyPair
from rotator.simulator import Simulator
from tests.integration.test_fleet import active_keys, fleet_workspace

SHORT_LEASE = '[bluum]\ntimeout = "2s"\nretry_budget = "4s"\n\n[ledger]\nlease_ttl = "12s"\n'
"""A lease of 12 s: at least two of the longest request in flight (a Bluum call: 2 s + a retry budget of 4 s, long
enough to wait for a slot behind a dozen rotations at 10/s)."""


def can_make_hosts() -> bool:
    """Whether another host can be made here (`unshare --uts` needs root)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def on_host(host: str | None, command: Sequence[str]) -> list[str]:
    """`command` run under host name `host` (a UTS namespace of its own), or as it is for None."""
    if host is None:
        return list(command)
    return ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]


def rotator(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rotator", "--config", str(config), *args]


def vault_fleet(
    sim: Simulator, bao: Any, prefix: str, root: Path, count: int, *, fleet: str, timing: str = SHORT_LEASE
) -> tuple[Path, str, list[str]]:
    """`count` investor credentials app0.. and their tenant key, each at `<prefix>/<name>` in OpenBao `bao` (a
    tests.openbao.OpenBao); the config's `[fleet]` table is `fleet`. Returns the config, the tenant key's id and the
    investors. `timing`: the `[bluum]` and `[ledger]` tables (SHORT_LEASE)."""
    client = bao.client()

    def put(name: str, pair: KeyPair) -> None:
        client.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/{name}", secret=_fields(sim, pair))

    config, tenant, investors = fleet_workspace(
        sim,
        root,
        count,
        fleet=fleet,
        store_table=lambda name: f'type = "vault"\npath = "{prefix}/{name}"\nurl = "{bao.url}"\ntimeout = 1\n',
        put=put,
    )
    return _due(config, timing), tenant, investors


def aws_fleet(
    sim: Simulator, moto: Any, prefix: str, root: Path, count: int, *, fleet: str
) -> tuple[Path, str, list[str]]:
    """The same fleet in Secrets Manager secrets `<prefix>/<name>` of `moto` (a tests.aws_fixtures.Moto), its
    ledger (leases and lanes) in moto's DynamoDB table."""
    from tests.aws_fixtures import LEDGER_TABLE

    sm = moto.client("secretsmanager")

    def put(name: str, pair: KeyPair) -> None:
        sm.create_secret(Name=f"{prefix}/{name}", SecretString=json.dumps(_fields(sim, pair)))

    config, tenant, investors = fleet_workspace(
        sim,
        root,
        count,
        fleet=fleet,
        store_table=lambda name: (
            f'type = "aws"\nsecret_id = "{prefix}/{name}"\nledger_table = "{LEDGER_TABLE}"\ntimeout = 1\n'
        ),
        put=put,
    )
    return _due(config, SHORT_LEASE), tenant, investors


def _due(config: Path, timing: str) -> Path:
    """The short lease, and every investor credential due at the first scheduled run (its seeded key's age is not
    counted); a second later, so the set-up's own requests have left the tenant key's rate window."""
    text = config.read_text().replace('grace = "0s"\n', 'grace = "0s"\nseeded_key_age = "due"\n')
    config.write_text(text + "\n" + timing)
    time.sleep(1.1)
    return config


def _fields(sim: Simulator, pair: KeyPair) -> dict[str, str]:
    return {
        "api_key": pair.api_key,
        "api_secret": pair.api_secret.reveal(),
        "key_id": pair.key_id or "",
        "environment": "sandbox",
        "base_url": sim.base_url,
    }


class Daemon:
    """One `rotator daemon` on host `host` (None: this one), its output in files in `folder`."""

    def __init__(self, config: Path, env: dict[str, str], host: str | None, folder: Path, *, every: str = "1s") -> None:
        name = host or f"daemon-{uuid.uuid4().hex[:6]}"
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                on_host(host, rotator(config, "daemon", "--every", every, "--jitter", "0s")),
                stdout=out,
                stderr=err,
                env={**os.environ, **env},
                cwd=config.parent,
            )

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def said(self) -> str:
        return self.out.read_text()

    def bluum_sends_after(self, moment: float, until: float = float("inf")) -> int:
        """Bluum requests this daemon logged at or after `moment` and before `until` (wall clock)."""
        return sum(moment <= at < until for at in self._logged("rotator.bluum", lambda entry: "method" in entry))

    def lane_taken_after(self, moment: float) -> float:
        """When this daemon next logged taking a lane at or after `moment` (inf: it did not)."""
        taken = self._logged("rotator.lanes", lambda entry: entry.get("message") == "lane taken")
        return min((at for at in taken if at >= moment), default=float("inf"))

    def _logged(self, logger: str, wanted: Callable[[dict[str, object]], bool]) -> list[float]:
        """The times of this daemon's JSON log entries of `logger` that `wanted` accepts."""
        times = []
        for line in self.err.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("logger") == logger and wanted(entry):
                times.append(datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp())
        return times


def run_due_twice_at_once(
    config: Path, env: dict[str, str], hosts: Sequence[str | None] = (None, None)
) -> list[subprocess.CompletedProcess[str]]:
    """`rotator run-due` from two processes started together (one per entry of `hosts`); both awaited."""
    procs = [
        subprocess.Popen(
            on_host(host, rotator(config, "run-due")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            cwd=config.parent,
        )
        for host in hosts
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def rotated_once(sim: Simulator, investors: Sequence[str], since: int) -> list[int]:
    """Keys created for each investor since request `since` of the simulator's log (1 each: rotated exactly once),
    after checking each investor has exactly one active key."""
    for investor in investors:
        assert len(active_keys(sim, investor)) == 1, investor
    return created_per_investor(sim, investors, since)


def created_per_investor(sim: Simulator, investors: Sequence[str], since: int) -> list[int]:
    """Keys Bluum created for each investor since request `since` of the simulator's log."""
    created = [
        str(entry.get("path", ""))
        for entry in sim.request_log()[since:]
        if entry.get("method") == "POST" and str(entry.get("path", "")).endswith("/api-keys") and entry["status"] < 300
    ]
    return [sum(f"/investors/{investor}/" in path for path in created) for investor in investors]


def statuses(sim: Simulator, since: int) -> list[int]:
    return [int(str(entry["status"])) for entry in sim.request_log()[since:]]
