"""`make demo` is a show for a person: with stderr not a terminal (`make demo 2>&1 | cat`, a CI log), the demo's
own lines must not drown in the JSON info records of its rotation. Its logs stay at WARNING unless -v is given.

Run as a real process with both streams piped (neither is a terminal), as `make demo 2>&1 | cat` runs it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys


def _demo(*options: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from rotator.cli import main; sys.argv = ['rotator', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *options, "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json_log_lines(text: str) -> list[str]:
    """Lines that are JSON log records (`rotator.core.logs.JsonFormatter`: an object with level and logger)."""
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "level" in value and "logger" in value:
            found.append(line)
    return found


def test_the_demo_piped_prints_its_own_lines_and_no_json_log_records() -> None:
    result = _demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert _json_log_lines(result.stdout) == []
    assert _json_log_lines(result.stderr) == [], result.stderr[:2000]
    assert "bluum-rotator demo: a real rotation against the local Bluum simulator" in result.stdout
    assert "$ rotator --config" in result.stdout  # the commands it runs, and their step lines
    assert "CREDENTIAL" in result.stdout  # the status table
    assert re.search(r"old key apk_\w+: 401 BLUM-401-003", result.stdout)  # the proof
    assert result.stderr == ""


def test_the_demo_with_v_still_logs_at_info() -> None:
    result = _demo("-v", "--log-format", "json")  # JSON when asked for: piped, -v alone is text (test_demo_text.py)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in _json_log_lines(result.stderr)]
    assert any(record["level"] == "info" and record["logger"].startswith("rotator") for record in records)
    assert "bluum-rotator demo" in result.stdout
