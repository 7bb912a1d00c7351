"""rotator/rules/leak_report.py and the `[leak_reports]` table: the decisions the daemon's route acts on, without a
socket. The route itself, with the real daemon, is tests/e2e/test_leak_reports.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from pathlib import Path

import pytest

from rotator.attest import fingerprint
from rotator.config.loader import ConfigProblems, parse_config_data
from rotator.rules.leak_report import (
    Refusal,
    Report,
    check_signature,
    match_current,
    parse_report,
    reason_text,
    sign,
)

KEY = b"k" * 32
NOW = 1_800_000_000.0
BODY = b'{"fingerprint": "sha256:0123456789abcdef"}'


def test_sign_is_the_documented_hmac_of_timestamp_dot_body():
    expected = hmac.new(KEY, b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(KEY, 1_800_000_000, BODY) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "expected"),
    [
        ("1800000000", sign(KEY, 1_800_000_000, BODY), BODY, None),
        ("1800000299", sign(KEY, 1_800_000_299, BODY), BODY, None),  # within 5 minutes ahead
        (None, sign(KEY, 1_800_000_000, BODY), BODY, Refusal.NO_SIGNATURE),
        ("1800000000", None, BODY, Refusal.NO_SIGNATURE),
        ("18e8", "sha256=00", BODY, Refusal.BAD_TIMESTAMP),
        ("-5", "sha256=00", BODY, Refusal.BAD_TIMESTAMP),
        ("1799999699", sign(KEY, 1_799_999_699, BODY), BODY, Refusal.STALE_TIMESTAMP),
        ("1800000301", sign(KEY, 1_800_000_301, BODY), BODY, Refusal.STALE_TIMESTAMP),
        ("1800000000", sign(KEY, 1_800_000_000, BODY), BODY + b" ", Refusal.BAD_SIGNATURE),
        ("1800000001", sign(KEY, 1_800_000_000, BODY), BODY, Refusal.BAD_SIGNATURE),  # re-dated
        ("1800000000", sign(b"other", 1_800_000_000, BODY), BODY, Refusal.BAD_SIGNATURE),
        ("1800000000", sign(KEY, 1_800_000_000, BODY).upper(), BODY, Refusal.BAD_SIGNATURE),
        ("1800000000", "sha1=" + "0" * 40, BODY, Refusal.BAD_SIGNATURE),
    ],
)
def test_check_signature(timestamp, signature, body, expected):
    assert check_signature(KEY, timestamp, signature, body, now=NOW, tolerance=300) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"\xff",
        b'{"fingerprint": "sha256:0123"}',
        b'{"fingerprint": "sha256:0123456789abcdef", "public_key": "pk_x"}',  # both
        b'{"public_key": ""}',
        b'{"public_key": 5}',
        b'{"fingerprint": "sha256:0123456789abcdef", "id": "has spaces"}',
        b'{"fingerprint": "sha256:0123456789abcdef", "source": 3}',
        json.dumps({"public_key": "p" * 300}).encode(),
        b"[" * 4000,  # nested past the interpreter's stack: RecursionError, not a crash of the handler
    ],
)
def test_malformed_bodies(body):
    assert parse_report(body) is Refusal.MALFORMED


def test_a_public_key_becomes_its_fingerprint_and_tokens_are_kept():
    report = parse_report(b'{"public_key": "pk_live_abc", "id": "alert-7", "source": "gitleaks", "extra": 1}')
    assert report == Report(fingerprint("pk_live_abc"), "alert-7", "gitleaks")
    assert "pk_live_abc" not in reason_text(report, "lr-1")
    assert reason_text(report, "lr-1") == f"leak report lr-1, key {fingerprint('pk_live_abc')}, source gitleaks, " + (
        "reporter id alert-7"
    )


def test_match_current():
    report = Report(fingerprint("pk_a"))
    assert match_current(report, {"a": "pk_a", "b": "pk_b", "c": None}) == "a"
    assert match_current(report, {"a": "pk_a", "b": "pk_a"}) is Refusal.AMBIGUOUS_KEY
    assert match_current(report, {"b": "pk_b", "c": None, "d": ""}) is Refusal.UNKNOWN_KEY
    assert match_current(report, {"b": "pk_b"}, unreadable=1) is Refusal.STORE_UNREADABLE


MINIMAL = """
[stores.app]
type = "env"
path = "app.env"

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "app"
"""


def parse(tmp_path: Path, table: str):
    return parse_config_data(tomllib.loads(MINIMAL + table), base_dir=tmp_path, store_types=("env",))


def test_the_table_is_off_when_absent_and_has_defaults(tmp_path):
    assert parse(tmp_path, "").leak_reports is None
    settings = parse(tmp_path, '[leak_reports]\nsecret_env = "LEAK_KEY"\n').leak_reports
    assert settings is not None
    assert (settings.secret_env, settings.path, settings.tolerance, settings.max_body) == (
        "LEAK_KEY",
        "/leak-report",
        300.0,
        4096,
    )


@pytest.mark.parametrize(
    "table",
    [
        "[leak_reports]\n",
        '[leak_reports]\nsecret_env = "not a name: 8f3e..."\n',
        '[leak_reports]\nsecret_env = "K"\npath = "/metrics"\n',
        '[leak_reports]\nsecret_env = "K"\npath = "leak"\n',
        '[leak_reports]\nsecret_env = "K"\ntolerance = "2h"\n',
        '[leak_reports]\nsecret_env = "K"\nmax_body = 0\n',
        '[leak_reports]\nsecret_env = "K"\nsecret = "inline"\n',
    ],
    ids=["no-secret_env", "secret_env-not-a-name", "path-taken", "path-relative", "tolerance", "max_body", "unknown"],
)
def test_bad_tables_are_problems_that_never_echo_the_value(tmp_path, table):
    with pytest.raises(ConfigProblems) as caught:
        parse(tmp_path, table)
    assert "leak_reports" in str(caught.value)
    assert "8f3e" not in str(caught.value)
    assert "inline" not in str(caught.value)


def test_the_readme_documents_every_key_and_the_protocol_page_exists():
    from rotator.config.leak_reports import LEAK_REPORT_KEYS

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    for key in LEAK_REPORT_KEYS:
        assert f"| `{key}` |" in readme, key
    page = (root / "docs" / "leak-reports.md").read_text()
    for name in ("X-Rotator-Timestamp", "X-Rotator-Signature", *(reason.value for reason in Refusal)):
        assert name in page, name
