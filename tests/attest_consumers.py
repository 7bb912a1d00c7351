"""Small real consumers on loopback for the consumer-gate tests (issue 19): a threaded WSGI server per consumer that
serves rotator.attest.wsgi_app with the key it "holds", and a command consumer (a script that computes the fingerprint
with hashlib, as an application in another language would).

`FakeConsumer.mode` is what it does when asked: "answer" (the fingerprint of `key`), "hang" (no answer until the
test ends), "malformed" (200 with junk), "redirect" (307 elsewhere). `key` is the public key it holds in memory:
the test moves it (`load`) as a reload would. A stopped consumer is "unreachable" (the port refuses).
The full consumer processes (a dotenv/Vault/Secrets Manager reader calling the simulator) are tests/consumer_app.py.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from rotator.attest import wsgi_app

__all__ = ["COMMAND_SCRIPT", "FakeConsumer", "command_consumer"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class FakeConsumer:
    """One HTTP consumer on 127.0.0.1; `url` is what rotator.toml names."""

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.mode = "answer"
        self.asked = 0
        self._release = threading.Event()
        inner = wsgi_app(lambda: self.key)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            self.asked += 1
            if self.mode == "hang":
                self._release.wait(30)
            if self.mode == "malformed":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"I am fine, thanks\n"]
            if self.mode == "redirect":
                start_response("307 Temporary Redirect", [("Location", "http://127.0.0.1:9/")])
                return [b""]
            return inner(environ, start_response)

        self._server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        self.running = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/-/bluum-key"

    def load(self, key: str) -> None:
        """What a reload does: the process now holds (and reports) `key`."""
        self.key = key

    def entry(self, timeout: str = "1s") -> str:
        return f'{{ name = "{self.name}", url = "{self.url}", timeout = "{timeout}" }}'

    def stop(self) -> None:
        if self.running:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self.running = False


COMMAND_SCRIPT = """\
import hashlib, sys
from pathlib import Path

key = Path("command-consumer.key").read_text().strip()
if key == "fail":
    sys.exit(3)
print("sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16])
"""


def command_consumer(root: Path, key: str, name: str = "nightly") -> str:
    """A command consumer in `root` (rotator.toml's folder) that reports `key` (the file it reads); its entry."""
    (root / "command_consumer.py").write_text(COMMAND_SCRIPT)
    (root / "command-consumer.key").write_text(key)
    command = json.dumps([sys.executable, "command_consumer.py"])
    return f'{{ name = "{name}", command = {command}, timeout = "10s" }}'
