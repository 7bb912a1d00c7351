"""I1, watched from outside: a thread that keeps asking Bluum whether the key each target holds still works.

While a test runs rotations, crashes and rollbacks, the sampler reads every target file the way its application
does (python-dotenv) and probes the pair at the simulator's `/_sim/probe`: the same authentication a `/v1` call
gets, but with no rate-limit charge, no injected fault taken and no request-log line, so watching does not change
what is watched. Any answer but 200 is an outage an application would have seen, and fails the test.

A target is a dotenv file (its name and variable prefix) or a `PairSource`: any other place an application reads its
pair from (a Vault path, say), given as a name and a callable that returns the pair there now.

A test that kills a key itself (at the simulator's control plane) excuses that key with `excuse`; the other
targets and keys are still watched. It probes in the background (every `interval`) and once more, synchronously,
whenever the workspace asks (after each CLI run, so the state a SIGKILL leaves behind is always probed) and at
teardown.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values


@dataclass(frozen=True)
class PairSource:
    """A target that is not a dotenv file: `read()` returns what its application reads now, as
    (api_key, api_secret, key_id) with None for what is missing.

    `read()` returns None, instead of a pair, only when the test itself made the place unreadable for a while (it
    stopped the server): those rounds skip this target (counted in `KeySampler.skipped`), since no key is wrong
    then. An exception from `read()` is an outage (its type is shown, never its message, which could hold a value).
    """

    name: str
    read: Callable[[], tuple[str | None, str | None, str | None] | None]


Target = tuple[str, str] | PairSource
"""A dotenv file under the sampler's root (file name, variable prefix), or a `PairSource`."""


@dataclass(frozen=True)
class Outage:
    """One probe that did not get 200. Names the file and the key id line or a fingerprint; never a secret."""

    target: str
    label: str
    status: int | None
    detail: str

    def __str__(self) -> str:
        return f"{self.target}: {self.label} answered {self.status}: {self.detail}"


class KeySampler:
    """Probes the CURRENT key of each target in `targets()`: a dotenv file under `root` (file name, variable prefix),
    or a `PairSource`."""

    def __init__(
        self,
        root_url: str,
        root: Path,
        targets: Callable[[], Sequence[Target]],
        *,
        interval: float = 0.05,
    ) -> None:
        self._root = root
        self._targets = targets
        self._interval = interval
        # http.client, not httpx: the sampler's own traffic must not flood the debug logs the leak guard reads.
        address = urlsplit(root_url)
        self._http = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="key-sampler", daemon=True)
        self.outages: list[Outage] = []
        self.probes = 0
        self.skipped = 0
        """Reads of a `PairSource` that answered None (the test made it unreadable on purpose)."""
        self.excused: set[tuple[str, str]] = set()
        """Pairs a test broke on purpose (revoked, expired at the simulator, garbled): their outages are the test's."""

    def excuse(self, api_key: str, api_secret: str) -> None:
        """Outages of this pair are the test's doing from now on (probe first, so earlier ones still count)."""
        self.round()
        with self._lock:
            self.excused.add((api_key, api_secret))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No round runs inside (one under way ends first): a test that removes or moves a watched file takes it off
        the targets in here, so no round can read the file after it went and before it left the list."""
        with self._lock:
            yield

    def start(self) -> KeySampler:
        self._thread.start()
        return self

    def stop(self) -> list[Outage]:
        """Stop the thread, probe one last time, and return every outage seen."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.round()
        self._http.close()
        return self.outages

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.round()

    def round(self) -> None:
        """Probe every target once (a pair held by several targets is probed once)."""
        with self._lock:
            seen: dict[tuple[str, str], Outage | None] = {}
            for target in self._targets():
                found = self._pair(target)
                if found is None:
                    self.skipped += 1
                    continue
                name, (key, secret, shown) = found
                label = shown or ("key#" + hashlib.sha256(key.encode()).hexdigest()[:12] if key else "no key")
                if not key or not secret:
                    self.outages.append(Outage(name, label, None, "no key and secret an application could read"))
                    continue
                if (key, secret) in self.excused:
                    continue
                if (key, secret) not in seen:
                    seen[(key, secret)] = self._probe(name, label, key, secret)
                outage = seen[(key, secret)]
                if outage is not None:
                    self.outages.append(Outage(name, label, outage.status, outage.detail))

    def _pair(self, target: Target) -> tuple[str, tuple[str | None, str | None, str | None]] | None:
        """The target's name and (api_key, api_secret, key id) as its application reads them, None to skip it; a
        source that could not be read has no pair, and why stands in for the key id (the outage's label)."""
        if isinstance(target, PairSource):
            try:
                pair = target.read()
            except Exception as exc:  # any failure to read is one an application would meet too
                return target.name, (None, None, f"unreadable ({type(exc).__name__})")
            return None if pair is None else (target.name, pair)
        name, prefix = target
        values = self._read(name, prefix)
        return name, (values.get(f"{prefix}API_KEY"), values.get(f"{prefix}API_SECRET"), values.get(f"{prefix}KEY_ID"))

    def _read(self, name: str, prefix: str) -> dict[str, str | None]:
        """The file as its application reads it. A test that rewrites a file in place (not atomically, unlike the
        rotator) can be caught between truncate and write: a file without a pair is read once more before it counts."""
        for attempt in range(2):
            values = dotenv_values(self._root / name)
            if values.get(f"{prefix}API_KEY") and values.get(f"{prefix}API_SECRET"):
                break
            if attempt == 0:
                time.sleep(0.05)
        return values

    def _probe(self, name: str, label: str, key: str, secret: str) -> Outage | None:
        self.probes += 1
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        try:
            self._http.request("GET", "/_sim/probe", headers={"Authorization": f"Basic {basic}"})
            response = self._http.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self._http.close()  # reconnects on the next request
            return Outage(name, label, None, f"no answer: {type(exc).__name__}")
        if response.status == 200:
            return None
        return Outage(name, label, response.status, f"{body[:200]} at {time.strftime('%X')}")
