"""What an application serves so the rotator can ask it which Bluum key it is using right now (issue 19).

Why this exists: before the rotator revokes the old key it asks every consumer of the credential which key it holds
in memory, and revokes only once each answers with the new key. A store that holds the new key proves nothing about a
process that read its key once at start; only the process can say.

Why the answer is a fingerprint of the PUBLIC key: the answer travels over plain HTTP on loopback or a command's
stdout and may land in logs. The public key is Bluum's Basic-auth user name, not a secret; 16 hex digits of its
SHA-256 tell two keys apart and reveal nothing about the secret (docs/consumer-attestation.md has the protocol).

This module is for APPLICATIONS: it imports only the standard library, and nothing else of the rotator, so an
application can vendor this one file (a test holds that). The rotator's own code imports `fingerprint` from here, so
there is one definition.

    from rotator.attest import wsgi_app
    app = wsgi_app(lambda: current_settings.api_key)     # mount at /-/bluum-key
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

__all__ = ["FINGERPRINT_PATTERN", "answer", "asgi_app", "fingerprint", "parse_answer", "wsgi_app"]

PREFIX: Final = "sha256:"
DIGITS: Final = 16
FINGERPRINT_PATTERN: Final = re.compile(r"sha256:[0-9a-f]{16}")
"""A well-formed fingerprint: the prefix and exactly 16 lower-case hex digits."""
MAX_ANSWER_BYTES: Final = 4096
"""An answer is one short line or a small JSON object; anything longer is malformed, and never read further."""

_StartResponse = Callable[[str, list[tuple[str, str]]], object]
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def fingerprint(public_key: str) -> str:
    """ "sha256:" + the first 16 hex digits of SHA-256 over the public key as UTF-8 (surrounding blanks removed, as a
    dotenv or Vault value may carry a newline). Never pass the secret: the public key is the Basic-auth user name."""
    key = public_key.strip()
    if not key:
        raise ValueError("fingerprint: the public key is empty (the application has no key loaded)")
    return PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:DIGITS]


def answer(public_key: str) -> bytes:
    """The attestation body: the JSON object {"fingerprint": "sha256:..."}, UTF-8, with a final newline."""
    return (json.dumps({"fingerprint": fingerprint(public_key)}) + "\n").encode("utf-8")


def parse_answer(body: bytes) -> str | None:
    """The fingerprint an answer carries, or None when it is malformed: either a JSON object whose "fingerprint"
    member is a well-formed fingerprint (other members ignored), or one line holding just the fingerprint."""
    if len(body) > MAX_ANSWER_BYTES:
        return None
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if FINGERPRINT_PATTERN.fullmatch(text):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) and FINGERPRINT_PATTERN.fullmatch(value) else None


def _respond(get_public_key: Callable[[], str], method: str) -> tuple[str, bytes]:
    """Status line and body for one request; a key the application cannot produce is a 503, never a guess."""
    if method != "GET":
        return "405 Method Not Allowed", b'{"error": "use GET"}\n'
    try:
        body = answer(get_public_key())
    except Exception:
        return "503 Service Unavailable", b'{"error": "no key loaded"}\n'
    return "200 OK", body


def wsgi_app(get_public_key: Callable[[], str]) -> Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]:
    """A WSGI app answering GET with the fingerprint of the key `get_public_key()` returns at that moment (405 for
    other methods). Call the getter that your Bluum client uses, not one that re-reads the store: the point is to
    report the key in memory."""

    def app(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        status, body = _respond(get_public_key, str(environ.get("REQUEST_METHOD", "GET")).upper())
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        if status.startswith("405"):
            headers.append(("Allow", "GET"))
        start_response(status, headers)
        return [body]

    return app


def asgi_app(get_public_key: Callable[[], str]) -> Callable[[_Scope, _Receive, _Send], Awaitable[None]]:
    """The same as `wsgi_app` for ASGI servers (uvicorn, hypercorn, Starlette's Mount); HTTP scopes only."""

    async def app(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope.get("type") != "http":
            return
        status, body = _respond(get_public_key, str(scope.get("method", "GET")).upper())
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        headers.append((b"content-length", str(len(body)).encode()))
        if status.startswith("405"):
            headers.append((b"allow", b"GET"))
        await send({"type": "http.response.start", "status": int(status[:3]), "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
