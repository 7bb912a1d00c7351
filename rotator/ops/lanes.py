"""Many hosts, one tenant key: a lease per paying key (its "lane"), so that one runner at a time spends its budget.

Why: the throttle paces a key's requests for the threads of one process (rotator/bluum/throttle.py), and
`[bluum] shared_budget_dir` for the processes of one host (rotator/bluum/shared_window.py). Two daemons on two hosts,
or a daemon and a cron `run-due` elsewhere, that rotate credentials paid for by one tenant (manager) key each pace
themselves at the key's whole rate, so together they send twice it and Bluum answers the overflow with 429s. Each
credential's own lease keeps them from rotating the same credential, not from spending the same budget.

How (`[fleet] lanes = true`, rotator/config/lanes.py): at the start of a scheduler tick (`run-due`, the daemon's
tick), for each paying key among its credentials, the runner takes the lane's lease in the ledger that key's
credential already uses: its primary store (`backends.ledger.LaneSource`: Vault `<state_path>.lane`, the DynamoDB
item `<secret ARN>#lane`, a dotenv file's `<file>.lane.rotator.lock`, which is a same-host lock only). The holder
runs that key's credentials; a runner that finds the lane held runs none of them and says so (exit 0: "waiting: the
lane of paying key X is held by ... until ..."). The holder releases the lane when its tick ends; one that is gone
or frozen loses it at its expiry, and the next tick of another runner takes it over.

Renewal and fencing: while the tick runs, a thread renews every held lane each third of its length (a ledger
write: a check-and-set on Vault's document, a conditional write on DynamoDB's item, refused once another runner
took the lane). A holder frozen past its lease (SIGSTOP, a suspended VM) finds on waking that its own clocks say
the lease ran out (rotator.core.lease_clock.LeaseClock): the lane's guard, asked before every request
(`before_request`: every Bluum request, every Vault KV write, every AWS request, botocore's resends too), refuses,
so it sends nothing more for that key; the lane is then lost for good in this tick, even if nobody took it over.

Length: `[ledger] lease_ttl`, the credential lease's, and the ledger is told `ttl + in_flight`
(rotator.core.in_flight) as for a credential's lease: another runner takes over only once the longest request the
holder may still have in flight has ended too.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode, LeaseLost, RotationInProgress, StoreError
from rotator.core.in_flight import longest_in_flight
from rotator.core.lease_clock import LeaseClock, guarding_lane
from rotator.core.timestamps import format_timestamp
from rotator.ops.fleet import payer
from rotator.rotation.driver import Outcome

if TYPE_CHECKING:
    from backends.ledger import Lease, Ledger
    from rotator.rotation.runtime import Runtime
    from rotator.rotation.service import RotationService

__all__ = ["Lane", "LaneScope", "LaneSeen", "lanes_for_tick", "last_seen", "run_in_lane"]

log = logging.getLogger("rotator.lanes")

Action = Callable[[str], Outcome]

MIN_RENEW_EVERY = 0.2
"""Seconds between two renewal rounds at least (a test's lease of a few seconds)."""


@dataclass
class Lane:
    """One paying key's lane as this runner holds it: the lease, its clock, and whether it was lost."""

    payer: str
    ledger: Ledger
    lease: Lease
    clock: LeaseClock
    length: float
    """Seconds the ledger is told at each renewal: the lease plus the longest request in flight."""
    lost: str | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _renewing: bool = field(default=False, init=False, repr=False)

    def guard(self, seconds: float) -> None:
        """Before each request of this lane's credentials: LeaseLost once the lane is lost or its clock ran out; a
        renewal first when less than `seconds` is left."""
        with self._lock:
            if self._renewing:
                return  # the renewal's own request
            self.check()
            if self.clock.left() < seconds:
                self.renew()

    def check(self) -> None:
        """LeaseLost when the lane was lost, or this runner stalled past it since its last renewal."""
        with self._lock:
            if self.lost is None and (why := self.clock.ran_out()) is not None:
                self._lose(why)
            if self.lost is not None:
                raise LeaseLost(self.lost)

    def renew(self) -> None:
        """Extend the lease (LeaseLost when another runner took it, or this one stalled past it)."""
        with self._lock:
            self.check()
            self._renewing = True
            sent = self.clock.now()
            try:
                self.lease = self.ledger.renew(self.lease, self.length)
            except LeaseLost as exc:
                self._lose(f"another runner took it over ({exc})")
                raise LeaseLost(self.lost) from exc
            finally:
                self._renewing = False
            granted = self.lease.expires_at - self.length  # Vault answers with the lease it has while 2/3 are left
            self.clock.renewed(sent, granted=granted if sent[1] - self.length < granted < sent[1] else None)

    def _lose(self, why: str) -> None:
        self.lost = f"the lane of paying key {self.payer} is lost: {why}; this runner sends nothing more for it"
        log.warning(self.lost, extra={"fields": {"payer": self.payer, "fence": self.lease.fence}})

    def release(self) -> None:
        """Give the lane up; a release that fails is logged (the lease then ends at its expiry)."""
        try:
            self.ledger.release(self.lease)
        except StoreError as exc:
            log.warning("could not release the lane of paying key %s: %s", self.payer, exc)


@dataclass(frozen=True, slots=True)
class LaneSeen:
    """A paying key's lane as the last tick of a runtime found it: for the daemon's line and metric."""

    payer: str
    here: bool
    """This runner held it (its credentials ran here)."""
    holder: str | None = None
    """Who held it when this runner did not (None: unknown, or the lane could not be read)."""
    until: float | None = None
    lost: str | None = None
    """Why this runner lost it during the tick, if it did."""


_SEEN: weakref.WeakKeyDictionary[Runtime, tuple[LaneSeen, ...]] = weakref.WeakKeyDictionary()
_SEEN_LOCK = threading.Lock()


def last_seen(runtime: Runtime) -> tuple[LaneSeen, ...]:
    """The lanes of `runtime`'s last tick that took lanes (empty before one, or with `[fleet] lanes` off)."""
    with _SEEN_LOCK:
        try:
            return _SEEN.get(runtime, ())
        except TypeError:  # not weakly referable, so never a key here: a stand-in that took no lane
            return ()


class LaneScope:
    """The lanes of one tick: taken at the start, renewed while it runs, released at the end. `run(names)` says which
    credentials this runner may run and what the others' outcomes are."""

    def __init__(self, service: RotationService, names: Sequence[str]) -> None:
        self._runtime = service.runtime
        config = service.config
        self._ttl = config.ledger.lease_ttl
        self._length = self._ttl + longest_in_flight(config.bluum, config.stores.values())
        self._payers = {name: payer(config.credential(name)) for name in names}
        self.held: dict[str, Lane] = {}
        self.refused: dict[str, tuple[ExitCode, str]] = {}
        """Paying key -> why its credentials do not run here (the outcome each of them gets, named for it)."""
        self._seen: list[LaneSeen] = []
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> LaneScope:
        try:
            for key in dict.fromkeys(self._payers.values()):
                self._take(key)
        except BaseException:
            self.__exit__()  # what was taken is given up, not left to expire
            raise
        if self.held:
            self._renewer = threading.Thread(target=self._renew_all, name="rotator-lanes", daemon=True)
            self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        for lane in self.held.values():
            lane.release()
        seen = [LaneSeen(lane.payer, True, lost=lane.lost) for lane in self.held.values()]
        with _SEEN_LOCK:
            _SEEN[self._runtime] = (*seen, *self._seen)

    def _take(self, key: str) -> None:
        runtime = self._runtime
        ledger = _lane_ledger(runtime, key)
        if ledger is None:
            return  # a store type without lanes: its credentials run as they always did
        sent = (runtime.monotonic(), runtime.clock())
        try:
            lease = ledger.acquire(runtime.owner, self._length)
        except RotationInProgress as exc:
            self.refused[key] = (ExitCode.OK, _waiting_words(key, exc))
            self._seen.append(LaneSeen(key, False, exc.held_by, exc.held_until))
            log.info("lane held elsewhere", extra={"fields": {"payer": key, "holder": exc.held_by}})
            return
        except StoreError as exc:
            self.refused[key] = (exc.exit_code, f"the lane of paying key {key} could not be taken: {exc}")
            self._seen.append(LaneSeen(key, False))
            return
        clock = LeaseClock(self._ttl, monotonic=runtime.monotonic, wall=runtime.clock)
        clock.renewed(sent)
        self.held[key] = Lane(key, ledger, lease, clock, self._length)
        from rotator.rotation import start_gate

        start_gate.forget_counts(runtime, key)  # only the holder decides now: count what others started from the ledger
        log.info("lane taken", extra={"fields": {"payer": key, "fence": lease.fence, "owner": runtime.owner}})

    def _renew_all(self) -> None:
        every = max(MIN_RENEW_EVERY, self._ttl / 3)
        while not self._stop.wait(every):
            for lane in self.held.values():
                if lane.lost is not None:
                    continue
                try:
                    lane.renew()
                except LeaseLost:
                    pass  # the lane says so at its next request
                except StoreError as exc:  # the ledger away for a while: the lease clock decides
                    log.warning("could not renew the lane of paying key %s: %s", lane.payer, exc)

    def refusal(self, name: str) -> Outcome | None:
        """The outcome of credential `name` when it does not run here (its lane is held elsewhere), else None."""
        refused = self.refused.get(self._payers[name])
        if refused is None:
            return None
        return Outcome(name, refused[0], f"{name}: {refused[1]}")

    def guarded(self, action: Action) -> Action:
        """`action` run under its paying key's lane: not started once the lane is lost, and every request it makes
        asks the lane first."""

        def run(name: str) -> Outcome:
            refused = self.refusal(name)
            if refused is not None:
                return refused
            return run_in_lane(self.held.get(self._payers[name]), action, name)

        return run


def run_in_lane(lane: Lane | None, action: Action, name: str) -> Outcome:
    """`action(name)` with `lane`'s guard asked before each of its requests; not started (exit 3) once the lane is
    lost. No lane (its store keeps none): as it always ran."""
    if lane is None:
        return action(name)
    try:
        lane.check()
    except LeaseLost as exc:
        return Outcome(name, ExitCode.IN_PROGRESS, f"{name}: not started: {exc}")
    with guarding_lane(lane.guard):
        return action(name)


@contextmanager
def lanes_for_tick(service: RotationService, names: Sequence[str]) -> Iterator[LaneScope | None]:
    """The lanes of a tick over `names` when `[fleet] lanes` is on; None (nothing taken) when it is off."""
    if not service.config.fleet.lanes or not names:
        yield None
        return
    with LaneScope(service, names) as scope:
        yield scope


def _lane_ledger(runtime: Runtime, key: str) -> Ledger | None:
    """A handle on the lane of paying key `key` in its credential's primary store; None when that store type keeps
    no lanes (a third-party store: logged)."""
    from backends.ledger import LaneSource

    store = runtime.store(runtime.config.credential(key).store)
    if not isinstance(store, LaneSource):
        log.warning(
            "the primary store of %s (%s) keeps no lanes: its credentials run without one on every host",
            key,
            type(store).__name__,
        )
        return None
    return store.lane_ledger()


def _waiting_words(key: str, exc: RotationInProgress) -> str:
    """Why a runner waits for a lane, in words (the outcome of each of its credentials)."""
    holder = exc.held_by or "another runner"
    until = f" until {format_timestamp(exc.held_until)}" if exc.held_until is not None else ""
    return (
        f"waiting: the lane of paying key {key} is held by {holder}{until}; that runner rotates its credentials, "
        "and this one takes the lane over if it is not given up by then"
    )
