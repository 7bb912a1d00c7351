"""What users expect of a command line, through the real console entry point (subprocesses)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from rotator.core.errors import ExitCode
from tests.e2e.conftest import REPO, Workspace
from tests.e2e.test_review_scenarios import said


def rotator(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` with nothing added (ws.run puts -vv and --config first)."""
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", *args], capture_output=True, text=True, cwd=ws.root, timeout=60, check=False
    )
    ws.guard.check(proc.stdout, "stdout")
    ws.guard.check(proc.stderr, "stderr")
    return proc


def test_global_options_after_the_command_work(ws: Workspace):
    proc = rotator(ws, "status", "--json", "--config", str(ws.config))
    assert proc.returncode == ExitCode.OK, said(proc)
    assert {row["name"] for row in json.loads(proc.stdout)} == {"tenant", "trading"}
    proc = rotator(ws, "verify", "trading", f"--config={ws.config}", "-q")
    assert proc.returncode == ExitCode.OK, said(proc)


def test_quiet_prints_the_outcome_but_no_step_lines(ws: Workspace):
    proc = rotator(ws, "-q", "--config", str(ws.config), "rotate", "trading")
    assert proc.returncode == ExitCode.OK, said(proc)
    assert "rotation complete" in proc.stdout
    assert "generate" not in proc.stdout
    assert proc.stderr == ""


def test_without_a_terminal_the_log_has_json_lines_at_info(ws: Workspace):
    """The README's cron line redirects stderr to a file: it must get a record of every step and call."""
    proc = rotator(ws, "--config", str(ws.config), "rotate", "trading")
    assert proc.returncode == ExitCode.OK, said(proc)
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert records, "no log lines"
    assert all(r["level"] in ("info", "warning") for r in records)
    assert any(r.get("event") == "completed" for r in records)
    assert any(r["logger"] == "rotator.bluum" for r in records)


def test_verify_all(ws: Workspace):
    proc = rotator(ws, "--config", str(ws.config), "verify", "--all")
    assert proc.returncode == ExitCode.OK, said(proc)
    assert "tenant:" in proc.stdout
    assert "trading:" in proc.stdout
    both = rotator(ws, "--config", str(ws.config), "verify", "trading", "--all")
    assert both.returncode == ExitCode.BAD_INPUT


def test_the_lock_message_names_the_credential(ws: Workspace):
    import fcntl

    lock = ws.root / "app.env.rotator.lock"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = rotator(ws, "--config", str(ws.config), "rotate", "trading")
    assert proc.returncode == ExitCode.IN_PROGRESS, said(proc)
    assert "trading: another rotation of this credential is running" in proc.stderr


def test_the_simulator_on_a_port_in_use_says_so(ws: Workspace):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "rotator", "simulator", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_has_examples(ws: Workspace):
    for command in ([], ["sweep"], ["rotate"]):
        text = rotator(ws, *command, "--help").stdout
        assert "Examples:" in text, command


def test_a_long_wait_says_what_it_waits_for_and_how_long_is_left(ws: Workspace):
    ws.write_config(verify_timeout="30s")
    ws.delay_new_keys(9)  # Bluum takes 9 s to accept the new key
    proc = ws.run("rotate", "trading")
    assert proc.returncode == ExitCode.OK, said(proc)
    waits = [line for line in proc.stdout.splitlines() if "still waiting for Bluum to accept" in line]
    assert waits, proc.stdout
    assert "of up to 30s" in waits[0]
    history = json.loads(ws.run("history", "trading", "--json").stdout)
    assert not [e for e in history if e["event"] == "progress"], "a wait's heartbeat is not history"


def test_shell_completion_offers_the_configured_credential_names(ws: Workspace):
    env = {
        **__import__("os").environ,
        "_ROTATOR_COMPLETE": "bash_complete",
        "COMP_WORDS": "rotator verify tr",
        "COMP_CWORD": "2",
        "ROTATOR_CONFIG": str(ws.config),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from rotator.cli.commands import cli; cli(prog_name='rotator')"],
        capture_output=True,
        text=True,
        cwd=ws.root,
        env=env,
        timeout=30,
        check=False,
    )
    assert "plain,trading" in proc.stdout.splitlines(), proc.stdout + proc.stderr
    assert "tenant" not in proc.stdout
