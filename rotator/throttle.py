"""Client-side pacing per Bluum key pair, shared by every thread and client in the process.

Bluum allows 10 requests/s per key pair in sandbox and 25/s in production, counted (per the simulator
contract) in a sliding one-second window, and it does not yet send `X-RateLimit-Remaining`. A 429 costs a
`Retry-After` of at least a second, so we pace ourselves instead of reacting to 429s.

Why smooth spacing and not a bucket that allows bursts: a token bucket of capacity N lets N requests out at
once and then N more right after the refill, which a sliding window counts as 2N in one second. A bucket of
capacity 1 (one request every `1/rate` seconds) can never put more than `rate` requests in any window.

Why a safety margin (`SAFETY_MARGIN`, 10 %): we pace the moment a request *leaves*, the server counts the
moment it *arrives*. Network jitter and a thread that wakes a few milliseconds late can squeeze two sends
together. Spacing at 90 % of the documented rate makes `rate + 1` consecutive requests span
`rate / (0.9 * rate) = 1.11 s`, so up to ~110 ms of jitter never puts `rate + 1` of them in one server
window, at the cost of 10 % throughput that a rotation (a handful of calls) never notices.

Why reservations: a caller takes the next free slot under a lock and then sleeps *outside* the lock until
its slot comes. Threads never hold the lock while sleeping, and they leave in the order they reserved.

The registry is keyed by a SHA-256 of the API key (the Basic-auth user name), never by the secret, so
neither the registry nor anything that dumps it holds a credential.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable

SAFETY_MARGIN = 0.10
"""Fraction of the documented rate we leave unused; see the module docstring."""


class Throttle:
    """Spaces requests of one key pair at least `interval` seconds apart (a token bucket of capacity 1).

    `rate` of `math.inf` disables pacing (interval 0): useful for tests and for servers without limits.
    """

    def __init__(self, rate: float, *, margin: float = SAFETY_MARGIN) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive requests per second, got {rate!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin!r}")
        self._lock = threading.Lock()
        self._margin = margin
        self._rate = rate
        self._next = -math.inf

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

    def acquire(
        self, clock: Callable[[], float], sleep: Callable[[float], None], max_wait: float = math.inf
    ) -> float | None:
        """Reserve a slot, then sleep (without holding the lock) until it comes. Returns the seconds waited,
        or None without waiting when the slot is further away than `max_wait`."""
        delay = self.reserve(clock(), max_wait)
        if delay:
            sleep(delay)
        return delay


_registry: dict[str, Throttle] = {}
_registry_lock = threading.Lock()


def key_hash(api_key: str) -> str:
    """The registry key for a pair: SHA-256 of its API key (never the secret)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def throttle_for(api_key: str, rate: float) -> Throttle:
    """The process-wide throttle of the pair whose API key is `api_key`, made on first use."""
    digest = key_hash(api_key)
    with _registry_lock:
        throttle = _registry.get(digest)
        if throttle is None:
            throttle = _registry[digest] = Throttle(rate)
            return throttle
    throttle.lower_rate(rate)
    return throttle
