"""`rotator plan`: seeded misconfigurations on dotenv files and the simulator, each reported with its fix, by the real
CLI (in-process) against the simulator over HTTP; and the proof that the plan changed nothing (the simulator's request
log holds GETs only, every file in the workspace is byte for byte as before).

Table-driven: each case seeds one thing wrong in an otherwise healthy workspace and names the credential, words of
the part and problem, words of the fix, and the exit code (README "Exit codes": 2 bad configuration, nothing changed;
5 unreachable). The Vault cases are in test_plan_vault.py (OpenBao's audit log), the AWS ones in test_plan_aws.py
(moto with IAM enforced).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rotator.attest import answer
from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.model import Environment
from tests.e2e.conftest import Workspace, dotenv_text

PROGRAM = "/nonexistent/bin/reload-trader"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reload_binary(ws: Workspace) -> None:
    _store_key(ws, "app", f'reload = [{{ command = ["{PROGRAM}", "--graceful"] }}]')


def _reload_url(ws: Workspace) -> None:
    _store_key(ws, "app", f'reload = [{{ url = "http://127.0.0.1:{closed_port()}/-/reload" }}]')


def _health_url(ws: Workspace) -> None:
    port = closed_port()
    _store_key(ws, "app", f'reload = [{{ command = ["/bin/true"], health = {{ url = "http://127.0.0.1:{port}/h" }} }}]')


def _consumer_silent(ws: Workspace) -> None:
    url = f"http://127.0.0.1:{closed_port()}/-/bluum-key"
    _store_key(ws, "app", f'consumers = [{{ name = "trader-1", url = "{url}" }}]')


def _consumer_other_key(ws: Workspace) -> None:
    script = ws.root / "bin" / "fingerprint"
    script.parent.mkdir(mode=0o755)
    script.write_bytes(b"#!/bin/sh\nprintf '%s' '" + answer("apk_someoneelse").strip() + b"'\n")
    script.chmod(0o755)
    _store_key(ws, "app", f'consumers = [{{ name = "nightly", command = ["{script}"] }}]')


def _wrong_environment(ws: Workspace) -> None:
    text = (
        (ws.root / "mirror.env")
        .read_text()
        .replace("TRADING_ENVIRONMENT='sandbox'", "TRADING_ENVIRONMENT='production'")
    )
    (ws.root / "mirror.env").write_text(text)


def _fleet_too_big(ws: Workspace) -> None:
    ws.add_config('\n[windows]\nallow = [{ cron = "* * * * *", duration = "1s" }]\n')
    ws.add_config("\n[bluum]\nrate_limit_sandbox = 2\n")  # one rotation: 3 calls, 1.5 s of budget


def _open_folder(ws: Workspace) -> None:
    shared = ws.root / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # no sticky bit: anyone may swap the file for their own
    (ws.root / "mirror.env").rename(shared / "mirror.env")
    with ws.sampling_paused():
        ws.sampled = [t for t in ws.sampled if t != ("mirror.env", "TRADING_")] + [("shared/mirror.env", "TRADING_")]
    ws.edit_config('path = "mirror.env"', 'path = "shared/mirror.env"')


def _manager_refused(ws: Workspace) -> None:
    ws.excuse(ws.tenant_pair)
    ws.sim.revoke_key(str(ws.tenant_pair.key_id))


def _bluum_unreachable(ws: Workspace) -> None:
    ws.bluum_gives_up_soon("1s")
    text = ws.config.read_text().replace(ws.sim.base_url, f"http://127.0.0.1:{closed_port()}/v1")
    ws.config.write_text(text)


def _current_unknown(ws: Workspace) -> None:
    ws.excuse(ws.first.pair)
    ws.sim.revoke_key(str(ws.first.pair.key_id))


def _shared_key(ws: Workspace) -> None:
    (ws.root / "copy.env").write_text(dotenv_text(ws.first.pair, "sandbox", ws.sim.base_url))
    (ws.root / "copy.env").chmod(0o600)
    ws.add_config(
        '\n[stores.copy]\ntype = "env"\npath = "copy.env"\n\n[credentials.copycat]\nenvironment = "sandbox"\n'
        f'base_url = "{ws.sim.base_url}"\nissuer = "manual"\nstore = "copy"\n'
    )


def _webhook_unreachable(ws: Workspace) -> None:
    ws.add_config(
        f'\n[notifications.pager]\nurl = "http://127.0.0.1:{closed_port()}/hook"\nsecret_env = "PLAN_HOOK_KEY"\n'
    )


def _target_missing(ws: Workspace) -> None:
    with ws.sampling_paused():
        ws.sampled = [t for t in ws.sampled if t != ("mirror.env", "TRADING_")]
        (ws.root / "mirror.env").unlink()


def _reload_untrusted(ws: Workspace) -> None:
    shared = ws.root / "drop"
    shared.mkdir()
    shared.chmod(0o777)
    script = shared / "reload.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    _store_key(ws, "app", f'reload = [{{ command = ["{script}"] }}]')


def _store_key(ws: Workspace, store: str, line: str) -> None:
    """Add `line` to [stores.STORE] (the table's first line is its header)."""
    header = f"[stores.{store}]\n"
    ws.edit_config(header, header + line + "\n")


@dataclass(frozen=True)
class Case:
    seed: Callable[[Workspace], None]
    credential: str
    said: tuple[str, ...]
    """Words of the part and problem, on one line."""
    fix: str
    code: ExitCode = ExitCode.BAD_INPUT


CASES = {
    "missing reload binary": Case(_reload_binary, "trading", ("reload of store app", "does not exist"), "full path"),
    "unreachable reload URL": Case(
        _reload_url, "trading", ("reload of store app", "nothing answers"), "correct the URL"
    ),
    "health URL unreachable": Case(
        _health_url, "trading", ("health check of store app", "nothing answers"), "`reload`"
    ),
    "consumer not answering": Case(_consumer_silent, "trading", ("consumer trader-1", "does not answer"), "start it"),
    "consumer on another key": Case(_consumer_other_key, "trading", ("consumer nightly", "reports key"), "reload it"),
    "wrong-environment pair": Case(_wrong_environment, "trading", ("store mirror", "production"), "put a sandbox key"),
    "fleet too big for its window": Case(
        _fleet_too_big, "tenant", ("fleet paid by tenant", "too big"), "starts_per_window"
    ),
    "dotenv folder others can write": Case(_open_folder, "trading", ("store mirror", "chmod"), "chmod go-w"),
    "manager key refused 401": Case(
        _manager_refused, "tenant", ("Bluum manager key tenant", "401"), "working sandbox tenant key"
    ),
    "Bluum unreachable": Case(
        _bluum_unreachable, "tenant", ("Bluum manager key tenant",), "network", ExitCode.UNAVAILABLE
    ),
    "current key unknown at Bluum": Case(
        _current_unknown, "trading", ("does not accept the current key",), "--emergency"
    ),
    "key held by two credentials": Case(_shared_key, "copycat", ("also held by", "app"), "its own key"),
    "webhook unreachable": Case(
        _webhook_unreachable, "*", ("notification pager", "nothing answers"), "start the receiver"
    ),
    "target added, never deployed": Case(_target_missing, "trading", ("store mirror",), "rotator deploy trading"),
    "reload program others can change": Case(
        _reload_untrusted, "trading", ("reload of store app", "another user"), "full path"
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_seeded_misconfiguration_is_reported_with_its_fix(
    ws: Workspace, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN_HOOK_KEY", "k" * 32)
    case.seed(ws)
    before, files = len(ws.sim.request_log()), state(ws)
    result = ws.cli("plan", "--all")
    lines = [line for line in result.output.splitlines() if line.startswith(f"{case.credential} ")]
    hits = [line for line in lines if all(word in line for word in case.said) and "fix:" in line]
    assert hits, f"no line for {case.credential} says {case.said}:\n{result.output}"
    assert any(case.fix in line.split("fix:", 1)[1] for line in hits), result.output
    assert result.exit_code == case.code, result.output
    assert_nothing_written(ws, before, files)


def test_healthy_workspace_plans_clean_and_json_says_the_same(ws: Workspace) -> None:
    before, files = len(ws.sim.request_log()), state(ws)
    result = ws.cli("plan", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    assert "trading  ok" in result.output
    assert "0 problem(s)" in result.output
    data = json.loads(ws.cli("plan", "--all", "--json").stdout)
    assert data["exit_code"] == 0
    assert data["credentials"] == ["tenant", "trading"]
    assert {f["severity"] for f in data["findings"]} == {"info"}
    assert_nothing_written(ws, before, files)


def test_the_paying_key_lists_once_for_all_it_pays_for(ws: Workspace) -> None:
    """Three credentials paid by the tenant key: one list call, not three (each current key's check is its own)."""
    with BluumClient(ws.sim.base_url) as client:
        for name in ("reports", "ledger"):
            made = client.create_investor_key(
                ws.tenant_pair,
                ws.investor,
                name=name,
                environment=Environment.SANDBOX,
                idempotency_key=uuid.uuid4().hex,
            )
            ws.guard.watch(made.pair.api_secret.reveal())
            (ws.root / f"{name}.env").write_text(dotenv_text(made.pair, "sandbox", ws.sim.base_url))
            (ws.root / f"{name}.env").chmod(0o600)
            ws.add_config(
                f'\n[stores.{name}]\ntype = "env"\npath = "{name}.env"\n\n[credentials.{name}]\n'
                f'environment = "sandbox"\nbase_url = "{ws.sim.base_url}"\nissuer = "bluum"\n'
                f'investor_id = "{ws.investor}"\nmanager = "tenant"\nstore = "{name}"\n'
            )
    before = len(ws.sim.request_log())
    result = ws.cli("plan", "--all")
    assert result.exit_code == ExitCode.OK, result.output
    lists = [entry for entry in ws.sim.request_log()[before:] if entry["path"].endswith("/api-keys")]
    assert len(lists) == 1, lists


def test_name_or_all(ws: Workspace) -> None:
    assert ws.cli("plan").exit_code == ExitCode.BAD_INPUT
    unknown = ws.cli("plan", "nosuch")
    assert unknown.exit_code == ExitCode.BAD_INPUT
    assert "nosuch" in unknown.output


def state(ws: Workspace) -> tuple[dict[str, bytes], list[str]]:
    """Every file's bytes (tests/e2e/conftest.py's snapshot), and every name under the workspace, lock files too."""
    return ws.snapshot(), sorted(str(path.relative_to(ws.root)) for path in ws.root.rglob("*"))


def assert_nothing_written(ws: Workspace, before: int, files: tuple[dict[str, bytes], list[str]]) -> None:
    """Zero mutating calls: Bluum saw only GETs, and no file in the workspace (or its state folder) changed, none
    was created or removed (no lock file either)."""
    sent = {(entry["method"], entry["path"]) for entry in ws.sim.request_log()[before:]}
    assert {method for method, _ in sent} <= {"GET", "HEAD"}, sent
    assert state(ws) == files


def test_key_age_what_is_due_and_a_pause_are_said(ws: Workspace) -> None:
    """After a rotation the key's age is known: `ok` lines give it and its due date; a pause is named with its fix,
    and neither stops a rotation (exit 0)."""
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    assert ws.cli("pause", "trading", "--reason", "quarter-end freeze").exit_code == ExitCode.OK
    before, files = len(ws.sim.request_log()), state(ws)
    result = ws.cli("plan", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("trading  ok")]
    assert any("s old, due 20" in line for line in lines), result.stdout
    assert any("quarter-end freeze" in line and "rotator unpause trading" in line for line in lines), result.stdout
    assert_nothing_written(ws, before, files)
