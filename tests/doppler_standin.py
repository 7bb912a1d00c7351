"""A stand-in for Doppler's REST API (v3) on loopback: real HTTP, the paths, shapes, errors and rate limit answers of
Doppler's public API reference, for the Doppler store's tests (test infrastructure, not shipped).

Written from https://docs.doppler.com/reference/api ("Authentication": Bearer tokens, personal `dp.pt.…` for every
project, service `dp.st.…` for one config, read or read/write; "Rate Limits": per token, per minute; "Errors": JSON
`{"messages": [...], "success": false}` with conventional status codes) and the secrets endpoints
(https://docs.doppler.com/reference/config-secret-update: `secrets` or `change_requests`, not both):

- `GET  /v3/configs/config/secrets?project&config` -> `{"secrets": {NAME: {"raw","computed","note"}}, "success": true}`
- `GET  /v3/configs/config/secret?project&config&name` -> `{"name": NAME, "value": {"raw","computed","note"}, ...}`
- `GET  /v3/configs/config/secrets/download?project&config&format=json` -> `{NAME: computed, ...}`
- `POST /v3/configs/config/secrets` `{"project","config","secrets": {NAME: value|null}}` or `"change_requests"`
  -> the list's shape.

Assumed where the reference is silent (the store assumes the same): the messages' wording; 429 answers carry
`Retry-After` (seconds) and `X-RateLimit-Limit/Remaining/Reset`, which every answer carries; an update applies all
its changes or none; `computed` resolves `${NAME}` references within the config only.

Fault injection (`fail_next`): the next N requests (optionally of one method) answer a status (with Doppler's error
body and, for 429, its headers), or are held `delay` seconds before being processed (a client timeout), or are
processed and then dropped without an answer (a lost answer: the change was applied). `requests` logs every
request's method, path and status (never a header or a body).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}


@dataclass
class Token:
    """A token's reach: every project (personal), or one project/config (service), and whether it may write."""

    project: str | None = None
    config: str | None = None
    write: bool = True

    def reaches(self, project: str, config: str) -> bool:
        return self.project is None or (self.project == project and self.config == config)


@dataclass
class Fault:
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    method: str | None = None
    retry_after: int = 1


@dataclass
class DopplerState:
    """Projects -> configs -> secrets (raw values), tokens, the per-token rate limit, faults and the request log."""

    projects: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    rate_limit: int = 10_000
    window: dict[str, list[float]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Answer(Exception):
    def __init__(self, status: int, messages: list[str], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.messages, self.headers = status, messages, headers or {}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK 40 ms stalls

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = _take_fault(state, method)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        status, payload, headers = 200, {}, {}
        try:
            if fault is not None and fault.status is not None:
                extra = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
                raise _Answer(fault.status, [f"injected fault {fault.status}"], extra)
            headers = self._rate_limit(state)
            payload = _route(state, method, url.path, parse_qs(url.query), body, self._token(state))
        except _Answer as answer:
            status, payload = answer.status, {"messages": answer.messages, "success": False}
            headers |= answer.headers
        with state.lock:
            state.requests.append((method, url.path, status))
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status, _REASONS.get(status))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _token(self, state: DopplerState) -> Token:
        auth = self.headers.get("Authorization", "")
        token = state.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        if token is None:
            raise _Answer(401, ["Invalid Auth token"])
        return token

    def _rate_limit(self, state: DopplerState) -> dict[str, str]:
        key = self.headers.get("Authorization", "")
        now = time.monotonic()
        with state.lock:
            seen = [t for t in state.window.get(key, []) if now - t < 60.0]
            reset = str(int(time.time() + 60 - (now - seen[0]))) if seen else str(int(time.time() + 60))
            if len(seen) >= state.rate_limit:
                wait = max(1, int(60 - (now - seen[0])) + 1)
                headers = {"X-RateLimit-Limit": str(state.rate_limit), "X-RateLimit-Remaining": "0"}
                raise _Answer(
                    429, ["Rate limit exceeded"], headers | {"X-RateLimit-Reset": reset, "Retry-After": str(wait)}
                )
            seen.append(now)
            state.window[key] = seen
            left = state.rate_limit - len(seen)
        return {
            "X-RateLimit-Limit": str(state.rate_limit),
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Reset": reset,
        }


def _take_fault(state: DopplerState, method: str) -> Fault | None:
    with state.lock:
        for index, fault in enumerate(state.faults):
            if fault.method in (None, method):
                return state.faults.pop(index)
    return None


def _route(
    state: DopplerState, method: str, path: str, query: dict[str, list[str]], body: bytes, token: Token
) -> dict[str, Any]:
    if method == "POST" and path == "/v3/configs/config/secrets":
        return _update(state, body, token)
    if method != "GET" or path not in (
        "/v3/configs/config/secrets",
        "/v3/configs/config/secret",
        "/v3/configs/config/secrets/download",
    ):
        raise _Answer(404, ["Not found"])
    project, config = (query.get(k, [""])[0] for k in ("project", "config"))
    with state.lock:
        secrets = dict(_config(state, project, config, token))
    computed = {name: _compute(secrets, value) for name, value in secrets.items()}
    if path.endswith("/download"):
        return dict(computed)
    if path.endswith("/secret"):
        name = query.get("name", [""])[0]
        if name not in secrets:
            raise _Answer(404, [f"Could not find requested secret '{name}'"])
        return {"name": name, "value": {"raw": secrets[name], "computed": computed[name], "note": ""}, "success": True}
    return {"secrets": _listed(secrets, computed), "success": True}


def _config(state: DopplerState, project: str, config: str, token: Token) -> dict[str, str]:
    if not project or not config:
        raise _Answer(400, ["Missing required parameters: project and config"])
    if not token.reaches(project, config):
        raise _Answer(403, ["You do not have access to the requested config"])
    if project not in state.projects:
        raise _Answer(404, [f"Could not find requested project '{project}'"])
    if config not in state.projects[project]:
        raise _Answer(404, [f"Could not find requested config '{config}'"])
    return state.projects[project][config]


def _update(state: DopplerState, body: bytes, token: Token) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise _Answer(400, ["Request body is not valid JSON"]) from None
    if not isinstance(request, dict):
        raise _Answer(400, ["Request body must be an object"])
    project, config = str(request.get("project") or ""), str(request.get("config") or "")
    with state.lock:
        secrets = _config(state, project, config, token)
        if not token.write:
            raise _Answer(403, ["This token does not have write access to the requested config"])
        changed = _changes(dict(secrets), request)  # all or nothing
        secrets.clear()
        secrets.update(changed)
        computed = {name: _compute(changed, value) for name, value in changed.items()}
        return {"secrets": _listed(changed, computed), "success": True}


def _changes(secrets: dict[str, str], request: dict[str, Any]) -> dict[str, str]:
    plain, requests = request.get("secrets"), request.get("change_requests")
    if (plain is None) == (requests is None):
        raise _Answer(400, ["Either secrets or change_requests is required (can't use both)"])
    if plain is not None:
        if not isinstance(plain, dict):
            raise _Answer(400, ["secrets must be an object"])
        requests = [
            {"name": n, "originalName": n if n in secrets else None, "value": v, "shouldDelete": v is None}
            for n, v in plain.items()
        ]
    if not isinstance(requests, list):
        raise _Answer(400, ["change_requests must be an array"])
    for change in requests:
        name = change.get("name") if isinstance(change, dict) else None
        if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
            raise _Answer(400, ["Secret names may only contain uppercase letters, numbers, and underscores"])
        original = change.get("originalName")
        if change.get("shouldDelete"):
            secrets.pop(name, None)
            continue
        if original is not None and original != name:
            secrets.pop(original, None)
        value = change.get("value")
        if value is not None:
            if not isinstance(value, str):
                raise _Answer(400, [f"The value of secret {name} must be a string"])
            secrets[name] = value
    return secrets


def _compute(secrets: dict[str, str], value: str) -> str:
    return _REFERENCE.sub(lambda m: secrets.get(m.group(1), ""), value)


def _listed(secrets: dict[str, str], computed: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"raw": value, "computed": computed[name], "note": ""} for name, value in secrets.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: DopplerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up (a timeout test) breaks the pipe, as against the real service."""


class DopplerStandIn:
    """The stand-in, served from a thread; `url` is where it listens."""

    def __init__(self) -> None:
        self.state = DopplerState()
        self._server = _Server(self.state)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="doppler-standin", daemon=True)
        self._thread.start()

    def add_config(self, project: str, config: str, secrets: dict[str, str] | None = None) -> None:
        with self.state.lock:
            self.state.projects.setdefault(project, {})[config] = dict(secrets or {})

    def secrets(self, project: str, config: str) -> dict[str, str]:
        with self.state.lock:
            return dict(self.state.projects[project][config])

    def add_token(
        self, token: str, *, project: str | None = None, config: str | None = None, write: bool = True
    ) -> str:
        self.state.tokens[token] = Token(project=project, config=config, write=write)
        return token

    def fail_next(self, count: int = 1, **fault: Any) -> None:
        with self.state.lock:
            self.state.faults.extend(Fault(**fault) for _ in range(count))

    def writes(self) -> int:
        with self.state.lock:
            return sum(1 for method, _, status in self.state.requests if method == "POST" and status == 200)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def doppler_standin() -> Iterator[DopplerStandIn]:
    """A running stand-in for the block."""
    standin = DopplerStandIn()
    try:
        yield standin
    finally:
        standin.stop()
