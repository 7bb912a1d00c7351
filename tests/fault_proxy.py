"""A fault proxy on loopback in front of a store's HTTP server (OpenBao, or moto standing in for AWS).

Why: a store fails in ways a healthy test server never shows: a 500 or 503 from a node or a load balancer, a
connection reset, an answer that takes seconds, and the worst one, a write the store applied whose answer never came
back (the connection closed unanswered). The rotator must ride out the first three and never misreport the last. This
proxy forwards each request to the real server and, as a `FaultPlan` decides, answers an error instead, closes the
connection before or after forwarding, or holds the request first.

`StormPlan` draws each request's fate from a seeded random generator (so a test run is reproducible: the order of
requests is fixed by the one client that calls through it); `LoseAnswerPlan` forwards every request and loses the
answer to the N-th write only. Every request's path and fate are kept in `FaultProxy.log` for the test's assertions.

One upstream connection per request (closed after it), so a dropped client connection never leaves half a request
upstream; the client side speaks HTTP/1.1 with keep-alive, as hvac and botocore expect.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class Fate(enum.Enum):
    """What the proxy does with one request."""

    FORWARD = "forward"
    ERROR_500 = "500"
    ERROR_503 = "503"
    DROP = "drop"
    """Close the client connection unanswered without forwarding: the store never saw the request."""
    LOSE_ANSWER = "lose-answer"
    """Forward (the store applies it), then close the client connection unanswered."""
    DELAY = "delay"
    """Hold the request for `Decision.delay` seconds, then forward."""


@dataclass(frozen=True, slots=True)
class Decision:
    fate: Fate
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Request:
    """What a plan may look at: the method, the path and the headers (AWS names its operation in X-Amz-Target)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""

    def json(self) -> dict[str, Any]:
        """The body as JSON ({} when it is not an object)."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def operation(self) -> str:
        """AWS's operation name (`UpdateItem`, `PutSecretValue`), or `METHOD path` for anything else (Vault)."""
        target = self.headers.get("X-Amz-Target") or self.headers.get("x-amz-target")
        return target.rsplit(".", 1)[-1] if target else f"{self.method} {self.path.split('?')[0]}"


class FaultPlan(Protocol):
    def decide(self, request: Request) -> Decision: ...


class PassThrough:
    """Every request forwarded as it is."""

    def decide(self, request: Request) -> Decision:
        return Decision(Fate.FORWARD)


@dataclass
class StormPlan:
    """The store storm of issue 17: 10 % 500/503, 3 % dropped connections, 5 % 1-3 s delays, seeded.

    A dropped connection is dropped before forwarding or after it (a lost answer) with equal odds."""

    seed: int
    error_rate: float = 0.10
    drop_rate: float = 0.03
    delay_rate: float = 0.05
    delay_range: tuple[float, float] = (1.0, 3.0)
    only: Callable[[Request], bool] = lambda _request: True
    """Which requests the storm may hit (the rest are forwarded): e.g. only the store's, not a health check."""
    _random: random.Random = field(init=False)
    _mutex: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def decide(self, request: Request) -> Decision:
        if not self.only(request):
            return Decision(Fate.FORWARD)
        with self._mutex:
            draw, coin, delay = self._random.random(), self._random.random(), self._random.uniform(*self.delay_range)
        if draw < self.error_rate:
            return Decision(Fate.ERROR_500 if coin < 0.5 else Fate.ERROR_503)
        if draw < self.error_rate + self.drop_rate:
            return Decision(Fate.DROP if coin < 0.5 else Fate.LOSE_ANSWER)
        if draw < self.error_rate + self.drop_rate + self.delay_rate:
            return Decision(Fate.DELAY, delay)
        return Decision(Fate.FORWARD)


@dataclass
class LoseAnswerPlan:
    """Forward everything; lose the answer to the `nth` (1-based) request `pick` picks out (0: none, only count)."""

    nth: int
    pick: Callable[[Request], bool]
    seen: int = 0
    lost: Request | None = None
    _mutex: threading.Lock = field(init=False, default_factory=threading.Lock)

    def decide(self, request: Request) -> Decision:
        if not self.pick(request):
            return Decision(Fate.FORWARD)
        with self._mutex:
            self.seen += 1
            if self.seen != self.nth:
                return Decision(Fate.FORWARD)
            self.lost = request
        return Decision(Fate.LOSE_ANSWER)


@dataclass
class LoseThenGonePlan:
    """Lose the answer to the first request `pick` picks out, then drop every request after it: a store that applied
    a write and then went away before its writer could read it back."""

    pick: Callable[[Request], bool]
    lost: Request | None = None
    _mutex: threading.Lock = field(init=False, default_factory=threading.Lock)

    def decide(self, request: Request) -> Decision:
        with self._mutex:
            if self.lost is not None:
                return Decision(Fate.DROP)
            if not self.pick(request):
                return Decision(Fate.FORWARD)
            self.lost = request
        return Decision(Fate.LOSE_ANSWER)


def vault_write(request: Request) -> bool:
    """A KV v2 data write (the only writes the Vault store makes besides logging in)."""
    return request.method in ("POST", "PUT") and "/data/" in request.path


def vault_document(request: Request) -> dict[str, Any] | None:
    """The stage document a Vault write carries (None: not a write of a stage document)."""
    if not vault_write(request) or "/data/bluum-rotator/" not in request.path:
        return None
    data = request.json().get("data")
    return data if isinstance(data, dict) else None


AWS_WRITES = frozenset({"UpdateItem", "PutItem", "PutSecretValue", "UpdateSecretVersionStage"})


def aws_write(request: Request) -> bool:
    """A DynamoDB ledger write or a Secrets Manager write."""
    return request.operation in AWS_WRITES


def aws_ledger_update(request: Request) -> str | None:
    """The UpdateExpression of a DynamoDB ledger write (None: not one)."""
    if request.operation != "UpdateItem":
        return None
    return str(request.json().get("UpdateExpression", ""))


def _record_phase(record: object) -> str | None:
    return record.get("phase") if isinstance(record, dict) else None


def _aws_record_phase(request: Request) -> str | None:
    text = ((request.json().get("ExpressionAttributeValues") or {}).get(":record") or {}).get("S")
    try:
        return _record_phase(json.loads(text)) if isinstance(text, str) else None
    except ValueError:
        return None


LEDGER_WRITES: dict[str, dict[str, Callable[[Request], bool]]] = {
    "vault": {
        "taking the lease": lambda r: (d := vault_document(r)) is not None and d.get("record") is None,
        "the STARTED record": lambda r: (
            (d := vault_document(r)) is not None
            and _record_phase(d.get("record")) == "started"
            and d.get("pending") is None
        ),
        "the PENDING stage": lambda r: (d := vault_document(r)) is not None and d.get("pending") is not None,
        "the key applications read": lambda r: vault_write(r) and "/data/bluum-rotator/" not in r.path,
    },
    "aws": {
        "taking the lease": lambda r: "SET fence" in (aws_ledger_update(r) or ""),
        "the STARTED record": lambda r: "#record" in (aws_ledger_update(r) or "") and _aws_record_phase(r) == "started",
        "moving AWSCURRENT": lambda r: (
            r.operation == "UpdateSecretVersionStage" and r.json().get("VersionStage") == "AWSCURRENT"
        ),
    },
}
"""Named store writes of one rotation, each picked out by what it carries (not by its place in the order, which
changes whenever the rotation's steps do): taking the lease, the first record, a stage write (Vault's PENDING, AWS's
AWSCURRENT move) and the key applications read. Not here, to keep `make test` short: the later record writes (the
same code path as the first), releasing the lease (today's code already rides it out: a failed release is logged, and
the lease ends by itself) and AWS's put of the PENDING version (idempotent by its token). Every write in turn is
`benchmarks/bench_store_storm.py --lost-answers`."""


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of `upstream` (http://host:port), faults as `plan` decides."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        address = urlsplit(upstream)
        self._upstream = (address.hostname or LOOPBACK, address.port or 80)
        self.plan: FaultPlan = plan or PassThrough()
        self.log: list[tuple[str, Fate]] = []
        self._mutex = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def count(self, fate: Fate) -> int:
        with self._mutex:
            return sum(1 for _, seen in self.log if seen is fate)

    def _record(self, request: Request, fate: Fate) -> None:
        with self._mutex:
            self.log.append((request.operation, fate))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: request lines would only clutter the test's captured output."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers.items()), body)
                decision = proxy.plan.decide(request)
                proxy._record(request, decision.fate)
                if decision.fate is Fate.DROP:
                    self._hang_up()
                    return
                if decision.fate in (Fate.ERROR_500, Fate.ERROR_503):
                    status = 500 if decision.fate is Fate.ERROR_500 else 503
                    text = b'{"errors":["fault proxy: injected failure"]}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                if decision.fate is Fate.DELAY:
                    time.sleep(decision.delay)
                try:
                    status, reason, headers, answer = self._forward(body)
                except OSError:
                    self._hang_up()
                    return
                if decision.fate is Fate.LOSE_ANSWER:
                    self._hang_up()
                    return
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["Connection"] = "close"
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    return response.status, response.reason, response.getheaders(), response.read()
                finally:
                    upstream.close()

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_LIST = _serve

        return Handler
