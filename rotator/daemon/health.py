"""The daemon's health, for whoever watches it: when its last tick ended, whether that is too long ago, and a small
HTTP server with `/healthz` and `/metrics`.

Why a staleness rule rather than "the process is up": a daemon whose loop is stuck (a hung store, a deadlock, a
paused container) is up and rotates nothing, and the first sign would be a key past its 90 days. So the daemon
beats after every tick (and once at start), and the beat counts as stale when it is older than two intervals, jitter
included, plus some slack for a long tick: `stale_after`. The same beat goes to the heartbeat file and to
`/healthz`, so a file check and an HTTP check never disagree.

The server is the standard library's, in a daemon thread: two routes need no framework, and nothing here imports
prometheus_client until `/metrics` is served. It binds loopback unless told otherwise; the routes show credential
names, environments, key ages and exit codes, never a key or a secret, and take no input. The one route that does,
the leak-report POST (rotator/daemon/leak.py), exists only when rotator.toml has a `[leak_reports]` table; its body
is read only after the content type and length are checked, and never beyond the configured limit.

Bounded, because whoever reaches the port is not trusted to be polite: a thread and a descriptor per connection
without limit let 160 idle connections use up the process's descriptors, and then the ticks themselves failed ("Too
many open files"). So at most `MAX_CONNECTIONS` are open at once and each lives at most `CONNECTION_SECONDS` (a
scrape takes milliseconds); at the cap the oldest connection is cut if it has been open `EVICT_AFTER_SECONDS` (a
client that holds its connection idle loses it to a new one), else the new one is closed at once. A client that goes
away early is one JSON log line at debug, never a traceback on stderr.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError
from rotator.core.timestamps import format_timestamp

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from rotator.daemon.leak import LeakDesk

__all__ = ["Beat", "HealthServer", "Verdict", "parse_listen", "stale_after", "verdict"]

log = logging.getLogger("rotator.daemon.http")

DEFAULT_HOST = "127.0.0.1"
MAX_CONNECTIONS = 16
"""Connections served at once: room for a few scrapers and probes; each holds a thread and a descriptor."""
CONNECTION_SECONDS = 5.0
"""How long one connection may take from accept to the end of its answer, reads and writes included."""
EVICT_AFTER_SECONDS = 1.0
"""At the cap, a connection open this long is cut for a new one (scrapes finish in milliseconds)."""
REFUSALS_LOGGED_EVERY = 60.0
"""Connections cut or refused at the cap are logged at most once a minute (with how many), not one line each."""
MAX_SLACK_SECONDS = 300.0
"""The slack added to two intervals is one interval, at most five minutes: room for a long tick (a fleet of
credentials, each waiting up to its verify_timeout for a new key to propagate)."""


def stale_after(every: float, jitter: float) -> float:
    """Seconds after the last beat when the daemon counts as stuck: two whole intervals (with their jitter) plus
    slack, so one slow tick is not an alarm and two missed ones are."""
    return 2 * (every + jitter) + min(every, MAX_SLACK_SECONDS)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `/healthz` answers: healthy or stale, and the figures that decided it."""

    healthy: bool
    age: float
    """Seconds since the last beat."""
    limit: float
    """`stale_after`: the age at which it turns stale."""


def verdict(last_beat: float, now: float, limit: float) -> Verdict:
    """Healthy while the last beat is at most `limit` seconds old (a beat "from the future", after the clock was set
    back, counts as fresh: the loop is evidently running)."""
    age = max(0.0, now - last_beat)
    return Verdict(healthy=age <= limit, age=age, limit=limit)


class Beat:
    """The last beat of the daemon, shared by its loop (which writes) and the HTTP server's threads (which read).

    Ages are measured on the monotonic clock (a wall clock set back must not make the daemon look dead); the wall
    time of the beat is kept for people.
    """

    def __init__(self, limit: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._at = monotonic()
        self._wall = time.time()
        self._ticks = 0
        self._last_tick = "none yet"

    def beat(self, *, ticks: int, last_tick: str) -> None:
        """The loop is alive: `ticks` ticks ended so far, the last one `last_tick` ("ok", "failed", ...)."""
        with self._lock:
            self._at = self._monotonic()
            self._wall = time.time()
            self._ticks = ticks
            self._last_tick = last_tick

    def report(self) -> tuple[Verdict, dict[str, object]]:
        """The verdict now, and the JSON body `/healthz` answers with."""
        with self._lock:
            found = verdict(self._at, self._monotonic(), self.limit)
            body: dict[str, object] = {
                "status": "ok" if found.healthy else "stale",
                "last_beat": format_timestamp(self._wall),
                "age_seconds": round(found.age, 3),
                "stale_after_seconds": round(found.limit, 3),
                "ticks": self._ticks,
                "last_tick": self._last_tick,
            }
        return found, body


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (loopback) into (host, port); ConfigError with the fix otherwise.

    Port 0 picks a free port (the daemon prints which). Any address is accepted: a container must listen on
    0.0.0.0 to be scraped at all; the README says what the routes show.
    """
    hint = "write HOST:PORT, e.g. 127.0.0.1:9464 (loopback), :9464 (the same), [::1]:9464 or 0.0.0.0:9464"
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"--metrics-listen {text!r}: no port; {hint}")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"--metrics-listen {text!r}: port {port} is above 65535; {hint}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"--metrics-listen {text!r}: {host!r} is not an IPv6 address; {hint}") from None
    elif ":" in host:
        raise ConfigError(f"--metrics-listen {text!r}: put an IPv6 address in brackets; {hint}")
    return host or DEFAULT_HOST, port


class _Handler(BaseHTTPRequestHandler):
    """GET /healthz and GET /metrics; anything else is 404. No request is logged (the scrapes would drown the
    daemon's own lines)."""

    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            found, body = self.server.beat.report()
            self._send(200 if found.healthy else 503, "application/json", json.dumps(body).encode() + b"\n")
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif self.server.leak is not None and self.server.leak.routes(path):
            self._send(405, "application/json", b'{"status": "refused", "reason": "wrong_method"}\n')
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def do_POST(self) -> None:
        """The leak-report route when configured (its checks: rotator.daemon.leak); 404 otherwise."""
        from rotator.rules.leak_report import SIGNATURE_HEADER, TIMESTAMP_HEADER, Refusal

        desk = self.server.leak
        path = self.path.split("?", 1)[0]
        settings = desk.settings if desk is not None else None
        if desk is None or settings is None or path != settings.path:
            self.close_connection = True  # its body is not read
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")
            return
        client = str(self.client_address[0])
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        length_text = self.headers.get("Content-Length", "")
        if media != "application/json" or not length_text.isdigit() or int(length_text) > settings.max_body:
            wrong_type = media != "application/json"
            answer = desk.refuse(Refusal.WRONG_CONTENT_TYPE if wrong_type else Refusal.TOO_LARGE, client)
            self.close_connection = True  # the body is never read: the connection cannot serve another request
        else:
            body = self.rfile.read(int(length_text))
            headers = {name: self.headers.get(name, "") for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER)}
            answer = desk.receive(headers, body, client)
        self._send(answer.status, "application/json", answer.encoded())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: see the class docstring."""


class _Server(ThreadingHTTPServer):
    """The threading server, bounded: see the module docstring. `_open` maps each connection being served to when it
    was accepted (monotonic); the serving loop (`service_actions`, every poll) cuts those past their time."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], beat: Beat, registry: CollectorRegistry, leak: LeakDesk | None = None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.beat = beat
        self.registry = registry
        self.leak = leak
        self._open: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._turned_away = 0
        self._logged_at = -REFUSALS_LOGGED_EVERY
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """Serve `request` in its own thread if there is room (cutting an idle connection to make it), else close it
        at once."""
        now = time.monotonic()
        with self._lock:
            room = len(self._open) < MAX_CONNECTIONS or self._evict_oldest(now)
            if room:
                self._open[request] = now
        if not room:
            self._turned_away += 1
            self._log_turned_away(now)
            self._close(request)
            return
        request.settimeout(CONNECTION_SECONDS)
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started: this connection goes, the server stays
            self.shutdown_request(request)

    def _evict_oldest(self, now: float) -> bool:
        """Under the lock, at the cap: cut the oldest connection if it is older than EVICT_AFTER_SECONDS."""
        oldest, since = min(self._open.items(), key=lambda item: item[1])
        if now - since < EVICT_AFTER_SECONDS:
            return False
        del self._open[oldest]
        _cut(oldest)  # its thread sees the end of the stream and closes it
        self._turned_away += 1
        return True

    def service_actions(self) -> None:
        """Every poll of the serving loop: cut connections open longer than CONNECTION_SECONDS (a client that
        trickles a byte at a time would otherwise reset the per-read timeout forever); log the turned away."""
        now = time.monotonic()
        with self._lock:
            late = [request for request, since in self._open.items() if now - since > CONNECTION_SECONDS]
            for request in late:
                del self._open[request]
        for request in late:
            _cut(request)
        if late:
            log.debug("health server: cut connections past their time", extra={"fields": {"connections": len(late)}})
        self._log_turned_away(now)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._lock:
            self._open.pop(request, None)
        self._close(request)

    def _close(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            super().shutdown_request(request)

    def _log_turned_away(self, now: float) -> None:
        if not self._turned_away or now - self._logged_at < REFUSALS_LOGGED_EVERY:
            return
        count, self._turned_away, self._logged_at = self._turned_away, 0, now
        log.warning(
            "health server: connections closed at the cap of %d open at once (a client holding connections idle?); "
            "the ticks are not affected",
            MAX_CONNECTIONS,
            extra={"fields": {"connections_closed": count, "max_connections": MAX_CONNECTIONS}},
        )

    def handle_error(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """One log line, never the standard library's traceback on stderr: a client that went away or was too slow
        at debug, anything else at warning with its type and message."""
        error = sys.exc_info()[1]
        fields = {"client": str(client_address), "error": f"{type(error).__name__}: {error}"}
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("health server: the client went away or was too slow", extra={"fields": fields})
        else:
            log.warning("health server: a request failed", extra={"fields": fields})


def _cut(request: socket.socket) -> None:
    """End a connection another thread is serving: its reads see the end and its writes fail, so it closes."""
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)


class HealthServer:
    """`/healthz` and `/metrics` (and the leak-report route, given `leak`) on HOST:PORT, served by a daemon thread
    until `close()`."""

    def __init__(
        self, host: str, port: int, beat: Beat, registry: CollectorRegistry, leak: LeakDesk | None = None
    ) -> None:
        try:
            self._server = _Server((host, port), beat, registry, leak)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-listen {host}:{port}: cannot listen there ({exc.strerror or exc}). Fix: pick a free port "
                "and an address of this host"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="rotator-health", daemon=True
        )

    @property
    def url(self) -> str:
        """Where it listens, with the port it actually got (for port 0)."""
        host, port = self._server.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
