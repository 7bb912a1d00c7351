"""How long this runner's lease has left, on its own clocks, and the guard every outgoing request asks first.

Why on the runner's own clocks: a runner that was frozen (a laptop that slept, a paused VM, a stalled container, a
SIGSTOP) wakes up believing it still holds its lease, and the next thing it does may be a request that changes
something. The ledger refuses a stale record write, but a Bluum create or revoke, or a write to a store that cannot
check a lease, has nobody to refuse it. So the runner times its own lease from its last renewal, on the monotonic clock
(which a suspend may or may not stop) and on the wall clock (which keeps running through it): once either says the
lease ran out, the runner stops, changing nothing more (LeaseLost, exit 3). And no request leaves while the lease has
less time left than the request may take: the runner renews first, or stops.

The guard is per thread of execution (a context variable): the command that holds a lease installs it for its block,
and the Bluum client (and any store that wants to) calls `before_request(seconds)` right before it sends. A fleet
that holds a paying key's lane (rotator/ops/lanes.py) installs the lane's guard as well (`guarding_lane`): a request
leaves only while both the lane and the credential's own lease hold, and the inner guard never hides the outer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from rotator.core.durations import format_duration

__all__ = ["LeaseClock", "before_request", "guarding", "guarding_lane"]

Guard = Callable[[float], None]
"""Called with the seconds a request may take, right before it is sent; raises (LeaseLost) to keep it from leaving."""

_guard: ContextVar[Guard | None] = ContextVar("rotator_lease_guard", default=None)
_lane: ContextVar[Guard | None] = ContextVar("rotator_lane_guard", default=None)


def before_request(seconds: float) -> None:
    """Ask the lane guard and the lease guard of this thread's command, if any, whether a request of `seconds` may
    leave now (the lane's first: a runner that lost its paying key's lane sends nothing, not even a renewal)."""
    lane = _lane.get()
    if lane is not None:
        lane(seconds)
    guard = _guard.get()
    if guard is not None:
        guard(seconds)


def guarding_lane(guard: Guard) -> AbstractContextManager[None]:
    """Install a paying-key lane's `guard` for the block (in this thread's context), beside any lease guard."""
    return _installed(_lane, guard)


def guarding(guard: Guard) -> AbstractContextManager[None]:
    """Install `guard` for the block (in this thread's context)."""
    return _installed(_guard, guard)


@contextmanager
def _installed(slot: ContextVar[Guard | None], guard: Guard) -> Iterator[None]:
    token = slot.set(guard)
    try:
        yield
    finally:
        slot.reset(token)


class LeaseClock:
    """The lease as this runner's clocks see it: `ttl` seconds from its last renewal, on both clocks. Pure: the
    clocks are given."""

    def __init__(self, ttl: float, *, monotonic: Callable[[], float], wall: Callable[[], float]) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._wall = wall
        self._since_monotonic = monotonic()
        self._since_wall = wall()

    def now(self) -> tuple[float, float]:
        """Both clocks' readings now: taken right before a renewal is sent, and given to `renewed` after it."""
        return self._monotonic(), self._wall()

    def renewed(self, sent: tuple[float, float] | None = None, *, granted: float | None = None) -> None:
        """The lease was renewed (or acquired) by a request sent at `sent` (`now()` then; default: just now). The
        ledger dates the lease from the request, so a slow answer must not lengthen this runner's view of it.

        `granted`: the wall-clock time the ledger's lease runs from (its expiry less the time it was asked for), when
        earlier than `sent`: a ledger may answer a renewal with the lease it already has (Vault's skips the write
        while two thirds are left), and this runner's view must then end no later than the ledger's."""
        monotonic, wall = sent if sent is not None else self.now()
        if granted is not None and granted < wall:
            monotonic, wall = monotonic - (wall - granted), granted
        self._since_monotonic, self._since_wall = monotonic, wall

    def since_renewal(self) -> float:
        """Seconds since the last renewal, by whichever clock moved more."""
        return max(self._monotonic() - self._since_monotonic, self._wall() - self._since_wall)

    def left(self) -> float:
        """Seconds of lease left (0 or less: it ran out)."""
        return self.ttl - self.since_renewal()

    def due(self, fraction: float = 1 / 3) -> bool:
        """Whether `fraction` of the lease has passed since the last renewal (time to renew in a wait)."""
        return self.since_renewal() >= self.ttl * fraction

    def ran_out(self) -> str | None:
        """Why the lease can no longer be trusted, or None: this runner stalled past it since its last renewal."""
        elapsed = self.since_renewal()
        if elapsed < self.ttl:
            return None
        return (
            f"this runner was frozen or stalled: {format_duration(elapsed, places=2)} passed since it last renewed its "
            f"lease, which lasts {format_duration(self.ttl)}"
        )
