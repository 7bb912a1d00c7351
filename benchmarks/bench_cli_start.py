"""Command-line start-up, issue 18's two ratios measured from outside, as fresh processes in one run:
`rotator --help` beside a bare interpreter (target <= 2x), and `rotator status` over four credentials beside
`rotator --help` (target <= 2x).

A bare interpreter is `python -c pass` with the same flags and environment (site, the venv's .pth files): what any
Python command costs before it imports anything of its own. Each figure is the median of fresh processes, the
rounds interleaved so a busy machine weighs on all three alike. Beside the wall time, the CPU time (user + system)
of the process: on a shared machine the wall time also counts waiting for a core, the CPU time does not.

Run: .venv/bin/python benchmarks/bench_cli_start.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*: the same four credentials

from benchmarks.bench_status import workspace

ROUNDS = 15
TARGET = 2.0


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh `python ARGS`."""
    # As installed: bytecode caches allowed (a sandbox may set PYTHONDONTWRITEBYTECODE, which recompiles every run).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = workspace(Path(tmp))
        cases = {
            "bare interpreter (python -c pass)": ["-c", "pass"],
            "rotator --help": ["-m", "rotator", "--help"],
            "rotator status (four credentials)": ["-m", "rotator", "--config", str(config), "status"],
        }
        for args in cases.values():
            run(args)  # writes the bytecode caches
        walls: dict[str, list[float]] = {label: [] for label in cases}
        cpus: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(ROUNDS):
            for label, args in cases.items():
                wall, cpu = run(args)
                walls[label].append(wall)
                cpus[label].append(cpu)
    print(f"command-line start-up (median of {ROUNDS} fresh processes each)      wall        CPU")
    for label in cases:
        wall, cpu = statistics.median(walls[label]), statistics.median(cpus[label])
        print(f"  {label + ':':38} {wall * 1000:7.1f} ms {cpu * 1000:7.1f} ms")
    for name, numerator, denominator in (
        ("--help / bare interpreter", "rotator --help", "bare interpreter (python -c pass)"),
        ("status / --help", "rotator status (four credentials)", "rotator --help"),
    ):
        wall = statistics.median(walls[numerator]) / statistics.median(walls[denominator])
        cpu = statistics.median(cpus[numerator]) / statistics.median(cpus[denominator])
        print(f"  ratio {name + ':':32} {wall:7.2f}x   {cpu:7.2f}x   (target <= {TARGET:g}x)")


if __name__ == "__main__":
    main()
