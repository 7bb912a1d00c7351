"""The HTTP layer: a stdlib ThreadingHTTPServer on loopback, the `Simulator` handle, and the CLI entry point.

stdlib only, so the simulator ships inside the package and the demo needs nothing extra. HTTP/1.1 keep-alive
with Content-Length on every answer and TCP_NODELAY (without it Nagle + delayed ACK add ~40 ms per request).
The default access log is silenced: nothing here ever prints a request, a header or a secret.

Faults are applied here because two of them are about the socket: `latency_ms` sleeps before processing
(interruptible by stop), `drop` processes the request fully (state changes happen, the log records the status it
would have had) and then shuts the connection down without sending a byte: the realistic "response lost"
case that a client's idempotency handling must survive. Status faults answer without processing the request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Mapping
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from rotator.core.errors import ConfigError
from rotator.simulator import ids
from rotator.simulator.protocol import ApiError, Request, Response
from rotator.simulator.routes import Router
from rotator.simulator.settings import Fault, parse_environment
from rotator.simulator.state import SimState

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET


class _BadBody(Exception):
    """The request body cannot be read; the connection is no longer in a known state and gets closed."""

    def __init__(self, message: str, code: str = "BLUM-400-001") -> None:
        super().__init__(message)
        self.code = code


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its router, tracks open connections (so stop() really stops) and is quiet."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, router: Router) -> None:
        self.address_family = family
        self.router = router
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall start-up for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Hang up idle keep-alive connections, which would otherwise keep being served after stop()."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError) or self.stopping.is_set():
            return  # a client hung up, or we are shutting down: nothing worth reporting
        log.error("simulator: connection handler failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "BluumSimulator/0.1"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: the default access log goes to stderr and is of no use to tests."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, huge headers, unknown method) get a JSON body and a request id too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # an unparseable request line; answer with a status line and headers
        err = ApiError(code, f"BLUM-{code}-001", message or "Malformed request.")
        self._send(self.server.router.error(err), head_only=self.command == "HEAD")

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path = split.path
        try:
            body = self._read_body()
        except _BadBody as err:
            self.close_connection = True
            self._send(self.server.router.error(ApiError(400, err.code, str(err))))
            return
        request = Request(
            method=self.command,
            path=path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        router = self.server.router
        generation = router.state.generation
        control = path == "/_sim" or path.startswith("/_sim/")
        fault = None if control else router.state.take_fault(self.command, path)
        if fault is not None and fault.latency_ms:
            stopped = self.server.stopping.wait(fault.latency_ms / 1000)
            if stopped or router.state.generation != generation:
                self._drop()  # stopping, or the simulator was reset while we slept: the request is void
                return
        try:
            if fault is not None and fault.status is not None:
                response = router.fault(request, fault)
            else:
                response = router.handle(request)
        except Exception:
            log.exception("simulator: unhandled error on %s %s", self.command, path)
            response = router.error(ApiError(500, "BLUM-500-001", "Internal simulator error."))
        request_id = ids.new_id("req")
        if not control:
            router.state.record(
                {
                    "method": self.command,
                    "path": path,
                    "status": response.status,
                    "key_id": response.key_id,
                    "request_id": request_id,
                    "fault": _fault_kind(fault),
                },
                generation,
            )
        if fault is not None and fault.drop:
            self._drop()
            return
        self._send(response, request_id=request_id)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def do_HEAD(self) -> None:
        self._send(self.server.router.error(ApiError(404, "BLUM-404-002", "HEAD is not served.")), head_only=True)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise _BadBody("Content-Length is not an integer.") from None
        if length < 0:
            raise _BadBody("Content-Length is negative.")
        if length > MAX_BODY:
            raise _BadBody(f"Request body must be at most {MAX_BODY} bytes.", "BLUM-400-008")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadBody("Malformed chunked body.") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, then the blank line
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BadBody(f"Request body must be at most {MAX_BODY} bytes.", "BLUM-400-008")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: Response, *, request_id: str | None = None, head_only: bool = False) -> None:
        payload = json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", request_id or ids.new_id("req"))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only:
            self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _fault_kind(fault: Fault | None) -> str | None:
    if fault is None:
        return None
    if fault.drop:
        return "drop"
    return "status" if fault.status is not None else "latency"


def _loopback(host: str) -> tuple[str, socket.AddressFamily]:
    """Refuse anything but a loopback address: the simulator hands out secrets to whoever asks /_sim."""
    if host == "localhost":
        return "127.0.0.1", socket.AF_INET
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"simulator host {host!r} is not an IP address; use 127.0.0.1 (loopback only)") from None
    if not address.is_loopback:
        raise ConfigError(f"refusing to bind the simulator to {host}: it serves loopback only (127.0.0.1 or ::1)")
    return str(address), socket.AF_INET6 if address.version == 6 else socket.AF_INET


class Simulator:
    """A local Bluum API on loopback, plus direct (in-process, unlogged) access to its control plane.

    `with Simulator() as sim:` starts it on a free port; `sim.base_url` is what a client points at.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, serves: str | None = None, shares: Simulator | None = None
    ) -> None:
        """`serves` (TEST or PRODUCTION) plays one of Bluum's separate hosts: keys of the other environment get
        401 there, as they would at Bluum. `shares`: another simulator whose accounts and keys this one serves
        too (the sandbox host and the production host of one Bluum)."""
        self._host, self._family = _loopback(host)
        self._requested_port = port
        self._state: SimState = shares.state if shares is not None else SimState()
        self._router = Router(self._state, serves=parse_environment(serves) if serves else None)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SimState:
        """The accounts, keys and switches this simulator serves (shared with a `shares=` twin)."""
        return self._state

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((self._host, self._requested_port), self._family, self._router)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="bluum-simulator", daemon=True
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        host = f"[{self._host}]" if self._family == socket.AF_INET6 else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # ----------------------------------------------------------------- control plane (same as /_sim)

    def create_tenant_key(self, environment: str = "TEST") -> dict[str, Any]:
        """{"id", "public_key", "secret_key", "environment"}: a tenant-wide key, valid at once."""
        return self._state.create_tenant_key(environment)

    def create_investor(self) -> str:
        return self._state.create_investor()

    def keys(self) -> list[dict[str, Any]]:
        return self._state.keys()

    def expire_key(self, key_id: str) -> dict[str, Any]:
        return self._state.set_key_status(key_id, "expire")

    def deactivate_key(self, key_id: str) -> dict[str, Any]:
        return self._state.set_key_status(key_id, "deactivate")

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._state.set_key_status(key_id, "revoke")

    def inject_fault(
        self,
        method: str = "GET",
        path: str = "/v1/assets",
        count: int = 1,
        status: int | None = None,
        latency_ms: float | None = None,
        drop: bool = False,
        retry_after: int | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"method": method, "path": path, "count": count, "drop": drop}
        for name, value in (("status", status), ("latency_ms", latency_ms), ("retry_after", retry_after)):
            if value is not None:
                spec[name] = value
        return self._state.add_fault(spec)

    def configure(
        self,
        *,
        propagation_delay: float | _Unset | None = UNSET,
        error_style: str | _Unset | None = UNSET,
        revoke_repeat: str | _Unset | None = UNSET,
        key_ttl: float | _Unset | None = UNSET,
        rate_limits: Mapping[str, float] | _Unset | None = UNSET,
    ) -> dict[str, Any]:
        """Change only the switches passed; None restores a switch's default. Returns the whole config."""
        given = {
            "propagation_delay": propagation_delay,
            "error_style": error_style,
            "revoke_repeat": revoke_repeat,
            "key_ttl": key_ttl,
            "rate_limits": rate_limits,
        }
        return self._state.configure({name: value for name, value in given.items() if value is not UNSET})

    def reset(self) -> None:
        self._state.reset()

    def request_log(self) -> list[dict[str, Any]]:
        """Every /v1 (and unknown-path) request: method, path, status, key_id, time, request_id, fault."""
        return self._state.request_log()

    def all_secrets(self) -> list[str]:
        """Every secret_key ever minted by this simulator (survives reset), for the leak guard."""
        return self._state.all_secrets()

    def advance_clock(self, seconds: float) -> float:
        return self._state.advance_clock(seconds)

    def now(self) -> float:
        return self._state.now()


def run_until_signalled(host: str = "127.0.0.1", port: int = 8765, serves: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly and return. Prints exactly one line: the base URL.
    `serves`: play one of Bluum's hosts (sandbox or TEST, production or PRODUCTION); None serves both."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = Simulator(host=host, port=port, serves=serves)
            server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pick another port (--port 0 picks a free "
                "one), or stop what uses this one"
            ) from exc
        try:
            print(f"Bluum simulator listening on {server.base_url}{_playing(serves)}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _playing(serves: str | None) -> str:
    """What the one line says of the environment served: Bluum's name and rotator.toml's, side by side."""
    if serves is None:
        return ""
    bluum = parse_environment(serves)
    return f' (only {bluum} keys: environment = "{"sandbox" if bluum == "TEST" else "production"}" in rotator.toml)'
