"""rotator/attest.py, the helper applications vendor: the fingerprint, the answer both ways round, the WSGI and ASGI
apps (tests/integration/test_attest_import.py holds that importing it loads only the standard library).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from rotator.attest import answer, asgi_app, fingerprint, parse_answer, wsgi_app

KEY = "pk_live_ABCDEF0123456789"


def test_the_fingerprint_is_sha256_of_the_public_key_cut_to_16_lower_hex_digits() -> None:
    expected = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert fingerprint(KEY) == expected
    assert fingerprint(f" {KEY}\n") == expected  # a dotenv or Vault value with its newline
    assert fingerprint("other") != expected
    assert expected[7:] == expected[7:].lower()
    assert len(expected) == 23


def test_an_empty_key_has_no_fingerprint() -> None:
    with pytest.raises(ValueError, match="empty"):
        fingerprint("  ")


def test_the_answer_is_json_that_parses_back() -> None:
    body = answer(KEY)
    assert json.loads(body) == {"fingerprint": fingerprint(KEY)}
    assert parse_answer(body) == fingerprint(KEY)


@pytest.mark.parametrize(
    "body",
    [
        b"sha256:0123456789abcdef",
        b"sha256:0123456789abcdef\n",
        b'{"fingerprint": "sha256:0123456789abcdef", "loaded_at": 17}',
    ],
)
def test_a_line_or_an_object_with_extra_members_is_well_formed(body: bytes) -> None:
    assert parse_answer(body) == "sha256:0123456789abcdef"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"sha256:0123456789ABCDEF",  # upper case
        b"sha256:0123456789abcde",  # 15 digits
        b"sha256:0123456789abcdef0",  # 17 digits
        b"md5:0123456789abcdef",
        b"sha256:0123456789abcdef sha256:0123456789abcdef",
        b'{"fingerprint": 17}',
        b'["sha256:0123456789abcdef"]',
        b'{"key": "sha256:0123456789abcdef"}',
        b"\xff\xfe",
        b"sha256:0123456789abcdef" + b" " * 5000,
    ],
)
def test_anything_else_is_malformed(body: bytes) -> None:
    assert parse_answer(body) is None


def call_wsgi(app: Any, method: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/-/bluum-key",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    result = validator(app)(environ, start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)  # the validator's iterator insists on being closed
    if close is not None:
        close()
    return seen["status"], seen["headers"], body


def test_the_wsgi_app_reports_the_key_in_memory_at_each_request() -> None:
    current = [KEY]
    app = wsgi_app(lambda: current[0])
    assert call_wsgi(app, "GET")[0] == "200 OK"
    assert parse_answer(call_wsgi(app, "GET")[2]) == fingerprint(KEY)
    current[0] = "pk_live_NEW"
    assert parse_answer(call_wsgi(app, "GET")[2]) == fingerprint("pk_live_NEW")


def test_the_wsgi_app_refuses_other_methods_and_says_when_no_key_is_loaded() -> None:
    status, headers, _ = call_wsgi(wsgi_app(lambda: KEY), "POST")
    assert status.startswith("405")
    assert headers["Allow"] == "GET"

    def broken() -> str:
        raise RuntimeError(f"could not read {KEY}")

    status, _, body = call_wsgi(wsgi_app(broken), "GET")
    assert status.startswith("503")
    assert KEY.encode() not in body
    assert parse_answer(body) is None


def call_asgi(app: Any, method: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": method, "path": "/-/bluum-key"}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_the_asgi_app_answers_as_the_wsgi_app_does() -> None:
    status, body = call_asgi(asgi_app(lambda: KEY), "GET")
    assert status == 200
    assert parse_answer(body) == fingerprint(KEY)
    assert call_asgi(asgi_app(lambda: KEY), "PUT")[0] == 405


def test_the_protocols_worked_example_is_what_the_helper_computes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "consumer-attestation.md").read_text()
    assert fingerprint("pk_test_example") == "sha256:7cab758ba5ec4ff9"
    assert "`pk_test_example` has the fingerprint `sha256:7cab758ba5ec4ff9`" in doc
