"""Client-side pacing per Bluum key pair, shared by every thread and client in the process.

Bluum allows 10 requests/s per key pair in sandbox and 25/s in production, counted (per the simulator
contract) in a sliding one-second window, and it does not yet send `X-RateLimit-Remaining`. A 429 costs a
`Retry-After` of at least a second, so we pace ourselves instead of reacting to 429s.

Why smooth spacing and not a bucket that allows bursts: a token bucket of capacity N lets N requests out at
once and then N more right after the refill, which a sliding window counts as 2N in one second. A bucket of
capacity 1 (one request every `1/rate` seconds) can never put more than `rate` requests in any window.

Why a small margin (`SAFETY_MARGIN`, 3 %) and a window check (`WINDOW_GUARD`): we pace the moment a request
*leaves*, the server counts the moment it *arrives*, and a thread can wake late and send close to the next one.
The margin alone had to be 10 % to absorb that (`rate + 1` requests spanning 1.11 s), which cost a fleet of
rotations 10 % of the tenant key's budget, the only thing a fleet waits on. Now each sender, once awake, also
checks the times requests really left: it goes only when fewer than `rate` left in the last `1 + WINDOW_GUARD`
seconds, else it waits for the oldest to age out. The margin only keeps the smooth schedule from running into
that check.

Why a request is counted from its *answer* once it has one (`Throttle.answered`): the time a request left is only
when it was cleared to go. Between that and its arrival, a loaded machine can stall the sending thread (CPU, the
GIL), and the network can hold it; meanwhile later requests, cleared after it, arrive on time. Bluum then counts
the stalled one late and in the same second as a request sent a full window after it, and answers 429: the rare
429 a fleet drew at 0.97 of the limit under load. A request cannot arrive after its answer came back, so once
answered it is counted at the answer's time instead; a new request arrives after it is cleared, so no `rate + 1`
requests can then share one second at the server, whatever the stall.

Why a request not yet answered counts as sent *now*: it may arrive at any moment, however long ago it was cleared. It
was counted from when it was cleared, so one held longer than the window (TCP resends a lost SYN after 1 s; a loaded
host can keep its thread off the CPU as long) aged out while still on its way, the next sends went out as if it were
gone, and Bluum counted it in a second already full. It ages out only once answered, or after `IN_FLIGHT_LIMIT`
seconds (what a crashed process leaves in a shared window must age out).

Why reservations: a caller takes the next free slot under a lock and then sleeps *outside* the lock until
its slot comes. Threads never hold the lock while sleeping, and they leave in the order they reserved.

Across processes: with `[bluum] shared_budget_dir`, the window check counts the sends of every rotator process on
the host through a small file per key pair (`rotator.bluum.shared_window`); the smooth schedule stays per process.

The registry is keyed by a SHA-256 of the API key (the Basic-auth user name), never by the secret, so
neither the registry nor anything that dumps it holds a credential.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rotator.bluum.shared_window import IN_FLIGHT_LIMIT, SharedWindow, in_flight_wait

SAFETY_MARGIN = 0.03
"""Fraction of the documented rate the smooth schedule leaves unused; see the module docstring."""

WINDOW_GUARD = 0.05
"""Seconds added to Bluum's one-second window when counting the requests that really left."""


@dataclass(frozen=True)
class Slot:
    """A request cleared to leave: how long it waited, and the times it was counted at in the windows, which
    `Throttle.answered` moves to the answer's time."""

    waited: float
    at: float
    """The caller's clock when this process's window counted it."""
    wall: float | None = None
    """The wall-clock time the host's shared window counted it at (None: no shared window, or it was unusable)."""


class Throttle:
    """Spaces requests of one key pair at least `interval` seconds apart (a token bucket of capacity 1).

    `rate` of `math.inf` disables pacing (interval 0): useful for tests and for servers without limits.
    """

    def __init__(self, rate: float, *, margin: float = SAFETY_MARGIN, guard: float = WINDOW_GUARD) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive requests per second, got {rate!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin!r}")
        self._lock = threading.Lock()
        self._margin = margin
        self._guard = guard
        self._rate = rate
        self._next = -math.inf
        self.shared: SharedWindow | None = None
        """When set (`[bluum] shared_budget_dir`), the window check counts every process's sends on this host."""
        self._sent: deque[float] = deque()
        """When the answered requests of the last `1 + guard` seconds got their answers, oldest first."""
        self._flying: list[float] = []
        """When the requests not yet answered were cleared to go (after their sender woke)."""

    @property
    def rate(self) -> float:
        """The documented (configured) rate in requests per second, before the margin."""
        return self._rate

    @property
    def interval(self) -> float:
        """Seconds between two requests: 1 / (rate * (1 - margin))."""
        return 0.0 if math.isinf(self._rate) else 1.0 / (self._rate * (1.0 - self._margin))

    def lower_rate(self, rate: float) -> None:
        """Adopt `rate` if it is stricter: two clients configured differently for one pair honour the lower."""
        if not rate > 0:
            raise ValueError(f"rate must be positive requests per second, got {rate!r}")
        with self._lock:
            self._rate = min(self._rate, rate)

    def reserve(self, now: float, max_wait: float = math.inf) -> float | None:
        """Take the next free slot; return how long the caller must wait for it (0 when it is free now).

        None, and no slot taken, when the wait would exceed `max_wait` (the caller's time budget).
        """
        with self._lock:
            slot = max(now, self._next)
            if slot - now > max_wait:
                return None
            self._next = slot + self.interval
        return slot - now

    def wait_time(self, now: float) -> float:
        """How long a caller arriving at `now` would wait, without taking a slot."""
        with self._lock:
            return max(0.0, self._next - now)

    def hold_until(self, moment: float) -> None:
        """Push every later slot to `moment` or after (a 429's Retry-After applies to all users of the pair)."""
        with self._lock:
            self._next = max(self._next, moment)

    @property
    def guard(self) -> float:
        """Seconds added to Bluum's one-second window when counting sends."""
        return self._guard

    @property
    def window_limit(self) -> int:
        """Requests allowed to leave in any `1 + guard` seconds: the documented rate, rounded down."""
        return max(1, math.floor(self._rate)) if not math.isinf(self._rate) else 0

    def admit(self, now: float) -> float:
        """Let a request leave at `now` if the window allows (0.0, and it is counted); else how long to wait."""
        limit = self.window_limit
        if not limit:
            return 0.0
        span = 1.0 + self._guard
        with self._lock:
            while self._sent and self._sent[0] <= now - span:
                self._sent.popleft()
            if self._flying and min(self._flying) <= now - IN_FLIGHT_LIMIT:
                self._flying = [t for t in self._flying if t > now - IN_FLIGHT_LIMIT]
            wait = in_flight_wait(self._sent, len(self._flying), now, limit, span)
            if not wait:
                self._flying.append(now)
            return wait

    def answered(self, slot: Slot, now: float) -> None:
        """The request of `slot` got its answer (or failed) at `now` (the caller's clock): from now on it is counted
        at `now`, the latest it can have arrived, instead of when it left (see the module docstring)."""
        if not self.window_limit:
            return
        shared = self.shared
        if slot.wall is not None and shared is not None:
            shared.answered(slot.wall)
            return
        with self._lock:
            with contextlib.suppress(ValueError):  # in flight past IN_FLIGHT_LIMIT: counting it again only waits longer
                self._flying.remove(slot.at)
            bisect.insort(self._sent, max(now, slot.at))  # `now` was read before the lock: another may be later

    def acquire(
        self, clock: Callable[[], float], sleep: Callable[[float], None], max_wait: float = math.inf
    ) -> Slot | None:
        """Reserve a slot, sleep (without holding the lock) until it comes, then wait on the window check if a late
        wake needs it. Returns the slot (the seconds waited, where it was counted), or None without waiting when the
        slot is further away than `max_wait` (the window check's rare extra wait, at most a fraction of a second, is
        not held to it). Tell `answered` when the request's answer comes."""
        delay = self.reserve(clock(), max_wait)
        if delay is None:
            return None
        if delay:
            sleep(delay)
        while True:
            shared = self._shared_admit()
            if shared is not None:
                extra, wall = shared
                if not extra:
                    return Slot(delay, clock(), wall)
            else:
                now = clock()
                extra = self.admit(now)
                if not extra:
                    return Slot(delay, now)
            sleep(extra)
            delay += extra

    def _shared_admit(self) -> tuple[float, float] | None:
        """The host's window check, when this pair has a usable one: (0.0 or the seconds to wait, the wall-clock time
        it counted the send at when it let it go; the wall clock is the one every process shares)."""
        shared = self.shared
        if shared is None or not self.window_limit:
            return None
        return shared.admit_now(self.window_limit)


_registry: dict[str, Throttle] = {}
_registry_lock = threading.Lock()


def key_hash(api_key: str) -> str:
    """The registry key for a pair: SHA-256 of its API key (never the secret)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def throttle_for(api_key: str, rate: float, shared_dir: Path | None = None) -> Throttle:
    """The process-wide throttle of the pair whose API key is `api_key`, made on first use. `shared_dir`: count its
    window with every process on this host that names the same folder (`rotator.bluum.shared_window`)."""
    digest = key_hash(api_key)
    with _registry_lock:
        throttle = _registry.get(digest)
        if throttle is None:
            throttle = _registry[digest] = Throttle(rate)
        else:
            throttle.lower_rate(rate)
        if shared_dir is not None and throttle.shared is None:
            throttle.shared = SharedWindow(shared_dir / f"{digest}.window", throttle.guard)
    return throttle
