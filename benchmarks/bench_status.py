"""Status benchmark: the wall time of `rotator status` over four credentials, beside `rotator --help` (the floor any
command pays: Python, click and the CLI module), measured in the same run as fresh processes.

`status` reads stores only; since the runtime builds Bluum clients on first use, it imports no httpx and makes no
SSL context, so it should cost little more than `--help`.

Run: .venv/bin/python benchmarks/bench_status.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 9


def workspace(folder: Path) -> Path:
    text = ""
    for n in range(4):
        (folder / f"c{n}.env").write_text(f"BLUUM_API_KEY='pk_test_{n:04d}'\nBLUUM_API_SECRET='sk_test_{n:04d}'\n")
        text += f'[stores.s{n}]\ntype = "env"\npath = "c{n}.env"\n\n'
        text += f'[credentials.c{n}]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s{n}"\n\n'
    config = folder / "rotator.toml"
    config.write_text(text)
    return config


def wall(args: list[str]) -> float:
    # As installed: bytecode caches allowed (a sandbox may set PYTHONDONTWRITEBYTECODE, which recompiles every run).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rotator", *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = workspace(Path(tmp))
        helps, statuses = [], []
        wall(["--help"])  # writes the bytecode caches
        wall(["--config", str(config), "status"])
        for _ in range(ROUNDS):
            helps.append(wall(["--help"]))
            statuses.append(wall(["--config", str(config), "status"]))
    h, s = statistics.median(helps), statistics.median(statuses)
    print(f"rotator status, four credentials (median of {ROUNDS} fresh processes)")
    print(f"  baseline: rotator --help:   {h * 1000:7.1f} ms")
    print(f"  rotator status:             {s * 1000:7.1f} ms")
    print(f"  ratio status / --help:      {s / h:7.2f}x")


if __name__ == "__main__":
    main()
