"""A real consumer of a Bluum key, for the tests and the benchmark of issue 19: `python tests/consumer_app.py ...`.

It is what the rotator must not break: an application that read its key pair from where the rotator writes it (a
dotenv file, a Vault KV v2 path, a Secrets Manager secret: the same fields the stores write), holds it in memory and
calls Bluum with it all the time. It serves, on loopback:

- `GET /-/bluum-key`: `rotator.attest.wsgi_app` over the key it HOLDS IN MEMORY (what the rotator asks before it
  revokes the old key);
- `POST /-/reload`: re-read the key (what a reload action in rotator.toml calls), answered 204 at once.

Each call to Bluum is appended to `--log` as a JSON line {"t", "status", "fp"} (the public key's fingerprint, never a
key or a secret; status 0 and "error" when no answer came), and each reload as {"t", "event", "fp"}: the tests count
401s per consumer and per key from it. The port is printed on stdout, alone on a line, once it serves.

Flags make it one of the consumers the rotator has to cope with:
--reload-lag S     the reload takes effect S seconds after it is asked for (a slow rolling restart);
--never-reload     answers 204 but keeps the old key (a reload that restarted nothing);
--crash-on-reload  answers 204, then exits 3; started again, it exits 3 at once (`<log>.crashed` marks it): a crash
                   loop under the fixture's supervisor;
--hang-attest      the attestation endpoint never answers;
--lie              attests the newest key in the store while calling with the key it loaded first.

Standard library, rotator.attest (stdlib itself), python-dotenv, and boto3 for a Secrets Manager source only:
dozens of these run at once on two shared cores.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dotenv import dotenv_values

from rotator.attest import fingerprint, wsgi_app

ATTEST_PATH = "/-/bluum-key"
RELOAD_PATH = "/-/reload"
CRASH_EXIT = 3

Pair = tuple[str, str]
"""(api_key, api_secret): the public key is Bluum's Basic-auth user name, the secret its password."""


# ----------------------------------------------------------------------------- where the key is read


def dotenv_reader(path: Path, prefix: str) -> Callable[[], Pair]:
    """`{prefix}API_KEY` and `{prefix}API_SECRET` of a dotenv file, read with python-dotenv as an application would."""

    def read() -> Pair:
        values = dotenv_values(path)
        return str(values[f"{prefix}API_KEY"]), str(values[f"{prefix}API_SECRET"])

    return read


def vault_reader(addr: str, mount: str, path: str, token: str, fields: Pair) -> Callable[[], Pair]:
    """The latest KV v2 version at `mount`/`path`: fields `api_key` and `api_secret` (or the names given)."""
    url = f"{addr.rstrip('/')}/v1/{mount}/data/{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy

    def read() -> Pair:
        request = urllib.request.Request(url, headers={"X-Vault-Token": token})
        with opener.open(request, timeout=5) as answer:
            data = json.load(answer)["data"]["data"]
        return str(data[fields[0]]), str(data[fields[1]])

    return read


def aws_reader(secret_id: str, fields: Pair) -> Callable[[], Pair]:
    """The AWSCURRENT version of a Secrets Manager secret (a JSON object); boto3 is configured by AWS_* variables."""
    import boto3  # only this source needs it (35 MB and 0.2 s per process)

    client = boto3.session.Session().client("secretsmanager")

    def read() -> Pair:
        value = json.loads(client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])
        return str(value[fields[0]]), str(value[fields[1]])

    return read


# ----------------------------------------------------------------------------- the application


class Consumer:
    """The key in memory, the calls made with it, and what a reload does to it (per the behaviour flags)."""

    def __init__(self, args: argparse.Namespace, read: Callable[[], Pair]) -> None:
        self.args = args
        self.read = read
        self.log_path = Path(args.log)
        self.crash_marker = self.log_path.with_name(self.log_path.name + ".crashed")
        self._log_lock = threading.Lock()
        self.stopping = threading.Event()
        self.pair = read()
        self.first = self.pair
        """The key loaded at start: what a liar keeps calling with."""
        split = urlsplit(args.base_url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.call_path = split.path.rstrip("/") + args.call_path

    def write(self, entry: dict[str, Any]) -> None:
        entry = {"t": round(time.time(), 3), **entry}
        with self._log_lock, self.log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")

    # -- calling Bluum

    def calling_pair(self) -> Pair:
        return self.first if self.args.lie else self.pair

    def call_once(self) -> None:
        api_key, api_secret = self.calling_pair()
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            connection.request("GET", self.call_path, headers={"Authorization": f"Basic {token}"})
            response = connection.getresponse()
            response.read()
            self.write({"status": response.status, "fp": fingerprint(api_key)})
        except (OSError, http.client.HTTPException) as error:
            self.write({"status": 0, "fp": fingerprint(api_key), "error": type(error).__name__})
        finally:
            connection.close()

    def call_forever(self) -> None:
        interval = 1.0 / self.args.rate
        while not self.stopping.wait(interval):
            self.call_once()

    # -- attesting and reloading

    def attested_key(self) -> str:
        if self.args.lie:
            return self.read()[0]  # the newest key in the store, whatever it calls with
        return self.pair[0]

    def reload(self) -> None:
        if self.args.crash_on_reload:
            self.crash_marker.touch()
            self.write({"event": "crash"})
            threading.Timer(0.1, os._exit, (CRASH_EXIT,)).start()  # after the 204 is on its way
            return
        if self.args.never_reload or self.args.lie:
            self.write({"event": "reload-ignored", "fp": fingerprint(self.pair[0])})
            return
        if self.args.reload_lag > 0:
            timer = threading.Timer(self.args.reload_lag, self._load)
            timer.daemon = True
            timer.start()
        else:
            self._load()

    def _load(self) -> None:
        try:
            pair = self.read()
        except Exception as error:  # a store that cannot be read keeps the key in memory, as an app would
            self.write({"event": "reload-failed", "error": type(error).__name__})
            return
        self.pair = pair
        self.write({"event": "reload", "fp": fingerprint(pair[0])})

    def app(self) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
        attest = wsgi_app(self.attested_key)

        def route(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
            if path == ATTEST_PATH:
                if self.args.hang_attest:
                    self.stopping.wait()  # never answers while the process lives
                return attest(environ, start_response)
            if path == RELOAD_PATH and method == "POST":
                self.reload()
                start_response("204 No Content", [("Content-Length", "0")])
                return [b""]
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]

        return route


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted consumer takes its port back at once


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-url", required=True, help="the simulator's base URL, .../v1")
    parser.add_argument("--log", required=True, help="the file each call and reload is appended to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=2.0, help="calls to Bluum per second")
    parser.add_argument("--call-path", default="/accounts", help="a cheap authenticated GET under the base URL")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--env-file", help="a dotenv file")
    source.add_argument("--vault-path", help="a KV v2 path (token in $VAULT_TOKEN, address in $VAULT_ADDR)")
    source.add_argument("--aws-secret-id", help="a Secrets Manager secret (boto3 reads $AWS_*)")
    parser.add_argument("--prefix", default="BLUUM_", help="dotenv variable prefix")
    parser.add_argument("--vault-mount", default="secret")
    parser.add_argument("--fields", nargs=2, default=("api_key", "api_secret"), metavar=("KEY", "SECRET"))
    parser.add_argument("--reload-lag", type=float, default=0.0)
    behaviour = parser.add_mutually_exclusive_group()
    behaviour.add_argument("--never-reload", action="store_true")
    behaviour.add_argument("--crash-on-reload", action="store_true")
    behaviour.add_argument("--lie", action="store_true")
    parser.add_argument("--hang-attest", action="store_true")
    return parser.parse_args(argv)


def reader_for(args: argparse.Namespace) -> Callable[[], Pair]:
    fields = (args.fields[0], args.fields[1])
    if args.env_file:
        return dotenv_reader(Path(args.env_file), args.prefix)
    if args.vault_path:
        return vault_reader(
            os.environ["VAULT_ADDR"], args.vault_mount, args.vault_path, os.environ["VAULT_TOKEN"], fields
        )
    return aws_reader(args.aws_secret_id, fields)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Path(args.log)
    if args.crash_on_reload and log.with_name(log.name + ".crashed").exists():
        return CRASH_EXIT  # it crashed on a reload before: it cannot start any more (the crash loop)
    consumer = Consumer(args, reader_for(args))
    server = make_server("127.0.0.1", args.port, consumer.app(), server_class=_Server, handler_class=_QuietHandler)
    consumer.write({"event": "start", "fp": fingerprint(consumer.pair[0])})
    calls = threading.Thread(target=consumer.call_forever, name="calls", daemon=True)
    calls.start()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        consumer.stopping.set()
        calls.join(timeout=10)  # the call under way is answered and logged: the log and Bluum's agree on stop
    return 0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
