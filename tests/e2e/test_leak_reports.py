"""The daemon's leak-report route as a real process over HTTP, against the simulator (docs/leak-reports.md).

A signed report naming the current key starts that credential's emergency rotation at once (202, an id) and the old
key gets 401; a second report while it runs starts nothing (409 with the first id); the same request again is a
replay. Each bad kind (no or bad signature, an old or future timestamp, a wrong content type, a body too large, a
malformed body, a key no store holds, a replay) changes nothing (files, the simulator's keys, the history) and is
counted by reason. The route is off unless rotator.toml has a [leak_reports] table. The daemon's every stream goes to
the leak guard, which watches the signing key and every key secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotator.attest import fingerprint
from rotator.bluum.client import BluumClient
from rotator.core.errors import ExitCode
from rotator.core.model import CreatedKey, Environment
from tests.e2e.conftest import Workspace, dotenv_text
from tests.e2e.test_daemon import RUNNING, DaemonProcess, hold_at, http_get, wait_until

pytestmark = pytest.mark.slow

QUIET = ("--every", "1h", "--jitter", "0s")
"""One tick at start (nothing is due), then none while the test runs: only a report rotates anything."""
LISTEN = ("--metrics-listen", "127.0.0.1:0")
SECRET_ENV = "ROTATOR_LEAK_SECRET"


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().close()


@pytest.fixture
def key(ws: Workspace) -> str:
    """The signing key, in the daemon's environment only, watched by the leak guard."""
    value = secrets.token_hex(24)
    ws.guard.watch(value)
    ws.env[SECRET_ENV] = value
    ws.add_config(f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    return value


def post(
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"text": text.decode()}


def signed(key: str, body: bytes, at: int | None = None) -> dict[str, str]:
    """The headers of docs/leak-reports.md, computed here as a reporter would (not with the rotator's code)."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(key.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Rotator-Timestamp": str(stamp), "X-Rotator-Signature": f"sha256={digest}"}


def report(**members: str) -> bytes:
    return json.dumps(members).encode()


def start(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> tuple[DaemonProcess, str]:
    daemon = DaemonProcess(ws, *QUIET, *LISTEN, *args, env=env)
    base = daemon.wait_for(r"/metrics and /healthz on (http://[^;\s]+)[;\s]").group(1)
    daemon.wait_for(r"tick 1: done")
    return daemon, base


def refused_counts(base: str) -> dict[str, float]:
    status, text = http_get(base + "/metrics")
    assert status == 200
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "bluum_rotator_leak_reports_refused"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def history_lines(ws: Workspace, name: str = "trading") -> list[dict[str, object]]:
    path = ws.root / "rotator-history" / f"{name}.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    ws.guard.check(text, "history file")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_signed_report_rotates_that_credential_and_the_old_key_gets_401(ws: Workspace, key: str, tmp_path: Path):
    release = tmp_path / "release"
    payments = add_payments(ws)
    payments_file = (ws.root / "payments.env").read_bytes()
    daemon, base = start(ws, env=hold_at("pending.record", release))
    url = base + "/leak-report"
    old = ws.pair_in()
    assert ws.works(old)
    body = report(fingerprint=fingerprint(old.api_key), source="github-secret-scanning", id="alert-42")
    headers = signed(key, body)

    started = time.monotonic()
    status, answer = post(url, body, headers)
    assert time.monotonic() - started < 2.0, "answered at once, not after the rotation"
    assert status == 202, answer
    assert answer["status"] == "accepted"
    assert answer["credential"] == "trading"
    first_id = str(answer["id"])

    # While the emergency is held at its first step: the same key reported again (the public key itself, a new
    # signature) starts nothing and names the report in hand; the very same request again is a replay.
    wait_until("a new key minted", lambda: len(ws.investor_keys()) == 2)
    again = report(public_key=old.api_key)
    status, answer = post(url, again, signed(key, again))
    assert (status, answer["status"], answer["id"]) == (409, "in_progress", first_id), answer
    status, answer = post(url, body, headers)
    assert (status, answer) == (401, {"status": "refused", "reason": "replay"})

    ws.excuse(old)  # revoked on purpose, once the new key is current everywhere
    release.touch()
    wait_until("the old key rejected", lambda: not ws.works(old))
    daemon.wait_for(rf"leak report {first_id}: emergency rotation ended", stream="err")
    assert ws.current_id() != ws.first.info.id
    assert ws.current_id("mirror.env", "TRADING_") == ws.current_id()
    ws.pair_in()  # the new key's secret: watched by the leak guard from here on
    assert ws.active_ids() == {ws.current_id()}, "one active key: the new one"
    assert len(ws.investor_keys()) == 2, "one rotation, not two"
    assert refused_counts(base)["replay"] == 1
    later = report(fingerprint=fingerprint(old.api_key), id="alert-42-resent")
    status, answer = post(url, later, signed(key, later))
    assert (status, answer) == (200, {"status": "already_rotated", "id": first_id, "credential": "trading"})
    assert len(ws.investor_keys()) == 2, "a report of the replaced key starts nothing"
    assert (ws.root / "payments.env").read_bytes() == payments_file, "the other credential is left alone"
    assert ws.works(payments.pair)
    assert history_lines(ws, "payments") == []
    lines = history_lines(ws)
    assert any(
        first_id in str(line.get("reason")) and "github-secret-scanning" in str(line.get("reason")) for line in lines
    )
    assert daemon.stop() == ExitCode.OK, daemon.tail()


BAD_KINDS = (
    "no_signature",
    "bad_signature",
    "stale_timestamp",
    "future_timestamp",
    "wrong_content_type",
    "too_large",
    "malformed",
    "unknown_key",
    "no_store_holds",
    "replay",
)


def bad_requests(ws: Workspace, key: str, other_key: str) -> Iterator[tuple[str, str, bytes, dict[str, str], str]]:
    """(kind, the reason it is counted under, body, headers, content type) for each bad kind."""
    current = ws.pair_in().api_key
    good = report(fingerprint=fingerprint(current))
    now = int(time.time())
    yield "no_signature", "no_signature", good, {}, "application/json"
    yield "bad_signature", "bad_signature", good, signed("not-the-key-" + key, good), "application/json"
    yield "stale_timestamp", "stale_timestamp", good, signed(key, good, now - 3600), "application/json"
    yield "future_timestamp", "stale_timestamp", good, signed(key, good, now + 3600), "application/json"
    yield "wrong_content_type", "wrong_content_type", good, signed(key, good), "text/plain"
    big = report(fingerprint=fingerprint(current), padding="x" * 5000)
    yield "too_large", "too_large", big, signed(key, big), "application/json"
    junk = b'{"fingerprint": '
    yield "malformed", "malformed", junk, signed(key, junk), "application/json"
    unknown = report(fingerprint="sha256:0123456789abcdef")
    yield "unknown_key", "unknown_key", unknown, signed(key, unknown), "application/json"
    orphan = report(public_key=other_key)
    yield "no_store_holds", "unknown_key", orphan, signed(key, orphan), "application/json"
    once = report(fingerprint="sha256:fedcba9876543210", id="replayed")
    headers = signed(key, once)
    yield "replay-first", "unknown_key", once, headers, "application/json"
    yield "replay", "replay", once, headers, "application/json"


def test_each_bad_report_changes_nothing_and_is_counted(ws: Workspace, key: str):
    other_key = _mint_elsewhere(ws, ws.sim.create_investor())
    daemon, base = start(ws)
    url = base + "/leak-report"
    files, keys = ws.snapshot(), ws.sim.keys()
    counted_before = refused_counts(base)
    expected: dict[str, int] = {}
    for kind, reason, body, headers, content_type in bad_requests(ws, key, other_key):
        status, answer = post(url, body, headers, content_type=content_type)
        assert 400 <= status < 600, (kind, status, answer)
        assert answer.get("reason") == reason, (kind, answer)
        expected[reason] = expected.get(reason, 0) + 1
    counted = refused_counts(base)
    for reason, count in expected.items():
        assert counted[reason] - counted_before.get(reason, 0) == count, reason
    assert set(expected) >= {k for k in BAD_KINDS if k != "future_timestamp" and k != "no_store_holds"}
    assert ws.snapshot() == files, "no file changed"
    assert ws.sim.keys() == keys, "no key minted or revoked at the simulator"
    assert history_lines(ws) == []
    err = "".join(daemon.err)
    assert err.count("leak report refused") >= len(expected), daemon.tail()
    assert daemon.stop() == ExitCode.OK, daemon.tail()


def _mint_elsewhere(ws: Workspace, investor: str) -> str:
    """A key active at Bluum that no store of this rotator.toml holds: its public half."""
    return _mint(ws, investor).pair.api_key


def _mint(ws: Workspace, investor: str) -> CreatedKey:
    with BluumClient(ws.sim.base_url) as client:
        return client.create_investor_key(
            ws.tenant_pair,
            investor,
            name="elsewhere",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )


def add_payments(ws: Workspace) -> CreatedKey:
    """A second investor credential, `payments`, in its own dotenv file: the one a report about trading must leave
    alone."""
    investor = ws.sim.create_investor()
    first = _mint(ws, investor)
    (ws.root / "payments.env").write_text(dotenv_text(first.pair, "sandbox", ws.sim.base_url))
    (ws.root / "payments.env").chmod(0o600)
    ws.add_config(
        f"""
[stores.payments]
type = "env"
path = "payments.env"

[credentials.payments]
environment = "sandbox"
base_url = "{ws.sim.base_url}"
issuer = "bluum"
investor_id = "{investor}"
manager = "tenant"
store = "payments"
rotate_every = "90d"
grace = "0s"
"""
    )
    ws.sampled.append(("payments.env", "BLUUM_"))
    return first


def test_the_route_is_off_unless_configured(ws: Workspace):
    daemon, base = start(ws)
    body = report(fingerprint=fingerprint(ws.pair_in().api_key))
    files, keys = ws.snapshot(), ws.sim.keys()
    status, _ = post(base + "/leak-report", body, signed("any-key-at-all", body))
    assert status == 404
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys
    assert daemon.stop() == ExitCode.OK, daemon.tail()


def test_a_leak_reports_table_without_a_listener_or_its_key_refuses_to_start(ws: Workspace):
    ws.add_config(f'\n[leak_reports]\nsecret_env = "{SECRET_ENV}"\n')
    no_listener = ws.run("daemon", *QUIET, env={SECRET_ENV: secrets.token_hex(16)})
    assert no_listener.returncode == ExitCode.BAD_INPUT, no_listener.stderr
    assert "--metrics-listen" in no_listener.stderr
    no_key = ws.run("daemon", *QUIET, *LISTEN, env={SECRET_ENV: ""})
    assert no_key.returncode == ExitCode.BAD_INPUT, no_key.stderr
    assert "leak_reports.secret_env" in no_key.stderr


DOCS = Path(__file__).resolve().parents[2] / "docs" / "leak-reports.md"


def docs_block(language: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"```{language}\n", text.index("### Signing")) + len(f"```{language}\n")
    return text[start : text.index("```", start)]


@pytest.mark.parametrize("language", ["python", "sh"])
def test_the_signing_recipes_in_the_docs_are_accepted(ws: Workspace, key: str, language: str, tmp_path: Path):
    """docs/leak-reports.md's own lines, pointed at this daemon: authentic (not bad_signature); their placeholder
    fingerprint names no key here, so the answer is unknown_key and nothing changes."""
    daemon, base = start(ws)
    files, keys = ws.snapshot(), ws.sim.keys()
    script = docs_block(language).replace("http://127.0.0.1:9464", base)
    run = [sys.executable, "-c", script] if language == "python" else ["sh", "-c", script]
    done = subprocess.run(run, capture_output=True, text=True, env={**os.environ, SECRET_ENV: key}, timeout=30)
    ws.guard.check(done.stdout + done.stderr, f"docs {language} recipe")
    assert "unknown_key" in done.stdout + done.stderr, done.stdout + done.stderr
    assert refused_counts(base)["unknown_key"] == 1
    assert refused_counts(base)["bad_signature"] == 0
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys
    assert daemon.stop() == ExitCode.OK, daemon.tail()


def test_a_key_only_the_dashboard_mints_is_refused_with_an_alert(ws: Workspace, key: str):
    """The tenant key (`issuer = "manual"`): nothing can replace it unattended, so nothing changes, and the alert
    tells whoever watches the sinks to make the new pair now."""
    daemon, base = start(ws)
    files, keys = ws.snapshot(), ws.sim.keys()
    body = report(public_key=ws.tenant_pair.api_key)
    status, answer = post(base + "/leak-report", body, signed(key, body))
    assert (status, answer["reason"], answer["credential"]) == (409, "needs_person", "tenant"), answer
    daemon.wait_for(r"minted in Bluum's dashboard: create a new pair there now", stream="err")
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys
    assert refused_counts(base)["needs_person"] == 1
    assert daemon.stop() == ExitCode.OK, daemon.tail()
