"""Lambda cold start: the import time of the handler, and of what its first step loads, beside boto3's alone.

Each figure is the median over fresh interpreters of `python -X importtime` (the cumulative microseconds of the
named top-level imports). Baseline: `import boto3`, which every Python Lambda that talks to AWS pays anyway.

Run: .venv/bin/python benchmarks/bench_lambda_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys

ROUNDS = 7
CASES = {
    "handler module (rotator.aws_lambda)": "import rotator.aws_lambda",
    "what the first step loads (engine, AWS store, httpx, boto3)": (
        "import rotator.aws_lambda.entry, rotator.rotation.service, rotator.config.loader, backends.aws.store, boto3"
    ),
    "baseline: boto3 alone": "import boto3",
}


def seconds(statement: str) -> float:
    """Wall seconds of a fresh interpreter's imports, from -X importtime's top-level cumulative figures."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    total = 0
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):  # top level only
            total += int(parts[1])
    return total / 1e6


def main() -> None:
    medians = {label: statistics.median(seconds(code) for _ in range(ROUNDS)) for label, code in CASES.items()}
    baseline = medians["baseline: boto3 alone"]
    print(f"import time, median of {ROUNDS} fresh interpreters")
    for label, value in medians.items():
        print(f"  {label:<62} {value * 1000:7.1f} ms   {value / baseline:5.2f}x boto3")


if __name__ == "__main__":
    main()
