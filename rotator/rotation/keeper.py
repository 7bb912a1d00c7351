"""The record keeper: one command's lease on a credential's ledger, and the record read and written under it.

Why a module of its own: the driver runs steps; this is what every step's writes go through. A record is read with a
version and written only with that version under a lease that still holds; the lease is renewed when the runner's
lease clock says so (and at each step's start), and a runner that stalled past it sends nothing more. Where the
ledger keeps the record beside the primary's stages (`backends.ledger.DocumentLedger`, the Vault store), a stage move
and the record that follows it, and the last record and the lease's release, are one check-and-set write each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from rotator.core.durations import format_duration
from rotator.core.errors import LeaseLost, RotationInProgress, RotatorError, StoreError
from rotator.core.lease_clock import LeaseClock, guarding
from rotator.core.timestamps import format_timestamp
from rotator.rules.pause import PAUSE_KEY, Pause, pause_in, rotation_part
from rotator.rules.record import RotationRecord

log = logging.getLogger("rotator.driver")

if TYPE_CHECKING:
    from backends.ledger import Lease, Ledger

T = TypeVar("T")

LEASE_TTL_SECONDS = 15 * 60
"""The default lease (`[ledger] lease_ttl`): it outlives one step with room to spare; waits renew it every third."""
IN_FLIGHT_SECONDS = 40.0
"""With the defaults, the longest request a runner may still have in flight
(`rotator.core.in_flight.longest_in_flight`): a whole Bluum call ([bluum] timeout 10s + retry_budget 30s), longer than
one Vault or AWS request (20 s)."""
TAKEOVER_SECONDS = LEASE_TTL_SECONDS + IN_FLIGHT_SECONDS
"""With the defaults, how long after its last renewal another runner may take a lease over."""


class RecordKeeper:
    """The lease on one credential's ledger, for one command: its record is read with a version and written only
    with that version under a lease that still holds. Waits renew the lease every third of its time.

    Two lengths: this runner treats its lease as `ttl` seconds from its last renewal, on its own clocks
    (`rotator.core.lease_clock`), and stops once either clock says that passed (it was frozen); the ledger is told
    `ttl + in_flight`, so another runner takes over only once the longest request this one may still have in flight
    (`in_flight`: a whole Bluum call with its retries, or one store request with its timeouts) has ended too. A create
    or revoke leaves only with a whole Bluum call (`call`) left on the lease: it is renewed first, or the runner stops
    (LeaseLost, exit 3, nothing more changed). The clocks are read before a renewal is sent, not after its answer:
    the ledger dates the lease from the request, and a slow answer must not lengthen this runner's view of it."""

    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        credential: str = "",
        ttl: float = LEASE_TTL_SECONDS,
        in_flight: float = IN_FLIGHT_SECONDS,
        call: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._ledger = ledger
        self._owner = owner
        self._ttl = ttl
        self._in_flight = in_flight
        self._call = in_flight if call is None else call
        self._clock = LeaseClock(ttl, monotonic=monotonic, wall=clock)
        self._lease: Lease | None = None
        self._version = 0
        self._pause: Pause | None = None
        self._read: tuple[str, RotationRecord | None] | None = None
        self._renewing = False
        self._released = False
        """The lease went with the last record write (`write(last=True)`): nothing is left to release."""
        self._guard: ExitStack | None = None

    @property
    def call_seconds(self) -> float:
        """The longest one Bluum call may take, retries included: what a create or revoke needs left."""
        return self._call

    def __enter__(self) -> RecordKeeper:
        sent = self._clock.now()
        try:
            self._lease = self._ledger.acquire(self._owner, self._ttl + self._in_flight)
        except RotationInProgress as exc:
            if not self._credential:
                raise
            raise RotationInProgress(f"{self._credential}: {exc}") from exc
        self._clock.renewed(sent, granted=self._granted(self._lease, sent))
        self._read = None
        self._released = False
        self._guard = ExitStack()
        self._guard.enter_context(guarding(self.before_request))
        return self

    def __exit__(self, *exc: object) -> None:
        """Release the lease. A release that fails (the store went away) is logged, never raised: it would hide
        what the block ended with (a finished rotation, or the error that says where it stopped), and a lease
        nobody releases still ends at its expiry.

        An error that ends the block after this runner stalled past its lease (a refusal, exit 2 or 4, judged on what
        it read once thawed: another runner may have finished or rolled back the rotation since, so the advice would
        be wrong) is reported as what it is: LeaseLost, exit 3, nothing more changed."""
        ended_on = exc[1] if len(exc) > 1 and isinstance(exc[1], BaseException) else None
        stalled = None
        if isinstance(ended_on, RotatorError) and not isinstance(ended_on, RotationInProgress) and self._lease:
            stalled = self._clock.ran_out()
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.close()
        lease, self._lease = self._lease, None
        if lease is None or self._released:
            return
        try:
            self._ledger.release(lease)
        except StoreError as error:
            log.warning(
                "could not release the rotation lease (fence %d); it ends by itself at %s: %s",
                lease.fence,
                format_timestamp(lease.expires_at),
                error,
                extra={"fields": {"credential": self._credential, "fence": lease.fence}},
            )
        if stalled:
            raise LeaseLost(
                f"{self._prefix()}{stalled} (fence {lease.fence}); it stopped on what it read since, which another "
                "runner may have changed, so this one changes nothing more. `rotator status` shows where the "
                "rotation is; `rotator resume` finishes it once no other runner holds the lease"
            ) from ended_on

    @property
    def lease(self) -> Lease:
        if self._lease is None:
            raise RuntimeError("the record keeper is used outside its `with` block")
        return self._lease

    def read(self, *, store: str) -> RotationRecord | None:
        """The record (and, for the next write, its version)."""
        versioned = self._ledger.read_record()
        self._version = versioned.version
        self._pause = pause_in(versioned.record)
        rotation = rotation_part(versioned.record)
        record = None if rotation is None else RotationRecord.from_dict(rotation, store=store)
        self._read = (store, record)
        return record

    def recall(self, *, store: str) -> RotationRecord | None:
        """The record as this lease last read it, when nothing was written since; read now otherwise.

        Under a lease the record stays as read until this keeper writes it: a write must name a lease that holds and
        the version read. Should this runner lose its lease, it sends nothing more (`before_request`) and its writes
        are refused, as they would be after a second read. So a command that read the record to decide does not read
        it again to start (issue 18: a Lambda step reads it once)."""
        if self._read is not None and self._read[0] == store:
            return self._read[1]
        return self.read(store=store)

    def write(self, record: RotationRecord, *, last: bool = False) -> None:
        """Write `record` under the lease. `last`: nothing more is written under this lease (a completed rotation):
        a ledger that keeps the record and the lease in one document releases the lease in the same write."""
        from backends.ledger import DocumentLedger  # lazily, as every store import

        self.hold()  # renewed only when the lease clock says it is due; checked always
        self._read = None
        if last and isinstance(self._ledger, DocumentLedger):
            self._version = self._ledger.write_last_record(
                self._with_pause(record.to_dict()), lease=self.lease, version=self._version
            )
            self._released = True
            return
        self._version = self._ledger.write_record(
            self._with_pause(record.to_dict()), lease=self.lease, version=self._version
        )

    @property
    def pause(self) -> Pause | None:
        """The credential's pause as this lease last read the ledger (`rotator.rules.pause`)."""
        return self._pause

    def _with_pause(self, data: dict[str, Any]) -> dict[str, Any]:
        """The record to write, carrying the pause it was read with: a rotation's write must not end a pause (only
        `rotator pause`/`unpause` write it, under this same lease discipline)."""
        if self._pause is not None:
            data[PAUSE_KEY] = self._pause.to_json()
        return data

    def write_pause(self, pause: Pause | None) -> None:
        """Set (or with None, end) the credential's pause, keeping the rotation record as it is: read under this
        lease, then written by compare-and-set on that version (`rotator pause`, `rotator unpause`)."""
        self.hold()
        versioned = self._ledger.read_record()
        data = dict(rotation_part(versioned.record) or {})
        data.pop(PAUSE_KEY, None)
        if pause is not None:
            data[PAUSE_KEY] = pause.to_json()
        self._read = None
        self._version = self._ledger.write_record(data, lease=self.lease, version=versioned.version)
        self._pause = pause

    def write_along(self, record: RotationRecord, change: Callable[[], T], *, last: bool = False) -> T:
        """`change` (a stage move in the primary), then `record` (`last`: as by `write`). When the ledger keeps the
        record in the document that move writes (`DocumentLedger`), that one check-and-set write carries both (issue
        18): the record is then written with the change or not at all, never before it. Otherwise, or when the move
        writes nothing, the record is written after it as by `write`."""
        from backends.ledger import DocumentLedger  # lazily, as every store import

        ledger = self._ledger
        if not isinstance(ledger, DocumentLedger):
            done = change()
            self.write(record, last=last)
            return done
        self.hold()
        ledger.carry_record(self._with_pause(record.to_dict()), lease=self.lease, version=self._version, last=last)
        try:
            done = change()
        finally:
            carried = ledger.carried()
            if carried is not None:  # written with the change, even when something after it in `change` failed
                self._read = None
                self._version = carried
                self._released = last
        if carried is None:
            self.write(record, last=last)
        return done

    def keepalive(self) -> None:
        """Renew the lease once a third of its time has passed; LeaseLost when someone else holds it now."""
        if self._clock.due():
            self.hold()
        else:
            self.check()

    def check(self, needed: float = 0.0) -> None:
        """LeaseLost when this runner stalled past its lease since its last renewal (no I/O: before every change);
        with `needed`, also when less than that is left."""
        stalled = self._clock.ran_out()
        if stalled:
            fence = self._lease.fence if self._lease is not None else 0
            raise LeaseLost(
                f"{self._prefix()}{stalled} (fence {fence}); another runner may have taken it over since, so this "
                "one changes nothing more and stops. `rotator status` shows where the rotation is; `rotator resume` "
                "finishes it once no other runner holds the lease"
            )
        left = self._clock.left()
        if left < needed:
            raise LeaseLost(
                f"{self._prefix()}the lease has {format_duration(left, places=2)} left, less than the "
                f"{format_duration(needed)} the next request may take, and could not be renewed first; this runner "
                "changes nothing more and stops. `rotator resume` finishes the rotation"
            )

    def hold(self, needed: float = 0.0, *, confirm: bool = False) -> None:
        """Renew the lease when needed, unless this runner stalled past it (then it stops: a renewal must not make a
        frozen runner's view of the world current again); LeaseLost when someone else holds it now (the caller then
        changes nothing). With `needed`: at least that much of the lease is left afterwards.

        Renewed only when the lease clock says so: a third of the lease has passed, or less than `needed` plus the
        renewal's own request (`in_flight`) is left. Otherwise the clock, timed from the last renewal's send, already
        proves the lease is held (another runner takes it over only after its expiry, or once this process is gone),
        and every store write is fenced by its own check-and-set (issue 18: a renewal is a request). `confirm`: ask
        the ledger anyway: at the start of each step, which may change what no check-and-set fences (a dotenv file,
        Bluum), and whose reads of the stage document are then served from what that renewal read."""
        self.check()
        if not confirm and not self._clock.due() and self._clock.left() >= needed + self._in_flight:
            return
        self._renewing = True
        sent = self._clock.now()
        try:
            self._lease = self._ledger.renew(self.lease, self._ttl + self._in_flight)
        finally:
            self._renewing = False
        self._clock.renewed(sent, granted=self._granted(self._lease, sent))
        self.check(needed)

    def before_request(self, seconds: float) -> None:
        """The guard of every request sent inside this block (`rotator.core.lease_clock`): a runner that stalled past
        its lease sends nothing; one whose lease has less than `seconds` left renews it first."""
        if self._renewing or self._lease is None:
            return  # the renewal's own request
        self.check()
        if self._clock.left() < seconds:
            self.hold(seconds)

    def _granted(self, lease: Lease | None, sent: tuple[float, float]) -> float | None:
        """When the ledger's lease runs from, when that is before the request was sent: a renewal may be answered
        with the lease as it already was (Vault's skips its write while two thirds are left). None when the ledger's
        clock is not this runner's wall clock (a memory store on a monotonic clock): then its lease says nothing
        about when, and the request's own time stands."""
        if lease is None:
            return None
        length = self._ttl + self._in_flight
        granted = lease.expires_at - length
        return granted if sent[1] - length < granted < sent[1] else None

    def _prefix(self) -> str:
        return f"{self._credential}: " if self._credential else ""
