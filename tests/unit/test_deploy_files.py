"""deploy/: the systemd unit and the Dockerfile the README points at say what the daemon needs, and the command lines in
them are ones `rotator daemon` accepts (parsed by the real click command, so a renamed flag fails here, not on a
host)."""

from __future__ import annotations

import configparser
import json
import shlex
from datetime import timedelta
from pathlib import Path

from rotator.cli import daemon
from rotator.config.loader import DEFAULT_RETRY_BUDGET, DEFAULT_VERIFY_TIMEOUT
from rotator.core.durations import parse_duration
from rotator.core.errors import ExitCode
from rotator.daemon.health import parse_listen
from rotator.daemon.loop import parse_cadence

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
README = (DEPLOY.parent / "README.md").read_text()


def daemon_flags(args: list[str]) -> dict[str, object]:
    """The options `rotator daemon` makes of `args`, checked the way the command checks them."""
    params = daemon.make_context("daemon", list(args)).params
    parse_cadence(str(params["every"]), params["jitter"] and str(params["jitter"]))
    return params


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "bluum-rotator.service").read_text())
    return parser


def test_the_unit_runs_the_daemon_as_a_simple_service_restarted_on_failure():
    service = unit()["Service"]
    assert service["Type"] == "simple"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == str(int(ExitCode.BAD_INPUT)), "a bad rotator.toml: no restart loop"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/rotator")
    assert argv[1] == "daemon"
    params = daemon_flags(argv[2:])
    assert params["metrics_listen"] is not None
    assert parse_listen(str(params["metrics_listen"]))[0] == "127.0.0.1", "a host's metrics stay on loopback"
    assert str(params["heartbeat_file"]).startswith("/run/bluum-rotator/")
    assert service["RuntimeDirectory"] == "bluum-rotator", "the heartbeat's folder exists and is writable"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_stops_with_one_sigterm_and_waits_long_enough_for_a_step():
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed", "SIGTERM to the daemon only, SIGKILL to all at the timeout"
    longest_step = DEFAULT_VERIFY_TIMEOUT + DEFAULT_RETRY_BUDGET
    assert parse_duration(service["TimeoutStopSec"]) >= longest_step + timedelta(seconds=60)


def test_the_unit_is_hardened():
    service = unit()["Service"]
    assert service["User"] not in ("", "root")
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert service["ReadWritePaths"].split(), "the stores' folders must be listed: ProtectSystem=strict"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            lines = []
        lines.append((instruction.upper(), rest.strip()))
    return lines


def test_the_container_runs_rotator_daemon_as_a_user_and_stops_on_sigterm():
    final = dockerfile()
    found = dict(final)
    assert json.loads(found["ENTRYPOINT"]) == ["rotator", "daemon"]
    params = daemon_flags(json.loads(found["CMD"]))
    host, port = parse_listen(str(params["metrics_listen"]))
    assert host == "0.0.0.0", "inside a container only 0.0.0.0 can be reached through a published port"
    assert found["EXPOSE"] == str(port)
    assert found["STOPSIGNAL"] == "SIGTERM"
    assert found["USER"] not in ("root", "0")
    assert f"127.0.0.1:{port}/healthz" in found["HEALTHCHECK"]


def test_the_readme_points_at_both_files():
    assert "deploy/bluum-rotator.service" in README
    assert "deploy/Dockerfile" in README
