"""A real HTTP server on loopback that records every request (method, path, Vault token, body) and answers as the
test says, and a pair of them where the first redirects everything to the second: how the trust tests of issue 16
item 9 see whether a Vault token or a login's secret followed a redirect to another address (another port, so
host:port differ). Used by tests/integration/test_trust_net.py and tests/e2e/test_trust_net.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["RecordingHandler", "RecordingServer", "json_reply", "redirecting_to"]


class RecordingHandler(BaseHTTPRequestHandler):
    """Records every request in `server.seen`; answers with `server.reply`."""

    server: RecordingServer

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.seen.append((self.command, self.path, self.headers.get("X-Vault-Token"), body))
        self.server.reply(self)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class RecordingServer(ThreadingHTTPServer):
    """Serves on a free loopback port from a thread of its own until `stop`."""

    daemon_threads = True

    def __init__(self, reply: Callable[[RecordingHandler], None]) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen: list[tuple[str, str, str | None, str]] = []
        """(method, path, X-Vault-Token or None, body) of every request, in order."""
        self.reply = reply
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def json_reply(handler: RecordingHandler, body: bytes) -> None:
    """200 with `body` as JSON."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def redirecting_to(reply: Callable[[RecordingHandler], None]) -> Iterator[tuple[RecordingServer, RecordingServer]]:
    """(first, other): `first` answers every request with 307 to the same path at `other`, which answers `reply`."""
    other = RecordingServer(reply)

    def redirect(handler: RecordingHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", other.url + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    first = RecordingServer(redirect)
    try:
        yield first, other
    finally:
        first.stop()
        other.stop()
