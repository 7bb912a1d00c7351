"""The memory store: a `SecretStore` that lives in a dict, for tests and examples. NOT for production.

Why it exists: code that drives the engine (a custom issuer, a scheduler, a wrapper script) needs a store in its own
tests, and a real one brings files, SDKs or a cloud account along. Like structlog's testing helpers, this gives a
store that keeps every promise of `backends.base.SecretStore` exactly as `backends.env.store` does, passes the same
contract suite (`tests/store_contract.py`), and never leaves the process. Tests can seed it (`current=`), share it
between handles (`twin()` or `shared=`) to play two processes racing for the lock, and drive lease expiry with an
injectable clock.

Why it is not for production: nothing is persisted. When the process ends, every stage, the rotation record and the
lock are gone, so a crashed rotation could never be resumed and applications in other processes could never read
CURRENT. It is deliberately not registered as a built-in store type.

All handles on one state share a mutex: every call is atomic with respect to every other, from any thread. The
store is its credential's ledger (`backends.ledger`) with a real TTL lease: `acquire` is refused at once to every
other contender (another handle, another thread, or the same handle again: like `flock` on a fresh descriptor, it
is not re-entrant) until the lease is released or `ttl_seconds` pass on the state's clock, after which the next
contender takes it over with a higher fencing number. From then on the old holder's writes and renewals are
refused (LeaseLost), and its late release does not free the new holder's lease. Tests move the clock to expire a
lease in the middle of a rotation.

What each call does to the stages is decided by `backends.stages`, the rules the env store uses too; this module
keeps only the mutex, the lease and the shared state.

Secrets only leave through `read()`; messages and logs name keys by label (key id or fingerprint) and tokens only.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from backends import stages
from backends.ledger import Lease, VersionedRecord, lease_refusal
from backends.stages import StageLog, Stages
from rotator.core.durations import format_duration
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict, StoreError
from rotator.core.model import Environment, Stage, StoredKey

__all__ = ["Clock", "MemoryStore"]

log = logging.getLogger("rotator.store.memory")

Clock = Callable[[], float]
"""Seconds on a monotonic scale; `time.monotonic` unless a test injects a fake one."""

_STATE_IDS: Final = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Lease:
    """Who holds the rotation lock of one state, and until when (on the state's clock)."""

    fence: int
    owner: str
    handle: str
    thread: str
    acquired_at: float
    expires_at: float

    def describe(self, now: float) -> str:
        """`owner, handle H in thread T, held for Ns, lease expires in Ms`: for the next contender's message."""
        return (
            f"{self.owner}, handle {self.handle!r} in thread {self.thread!r}, held for "
            f"{format_duration(now - self.acquired_at, places=2)}, lease expires in "
            f"{format_duration(max(self.expires_at - now, 0.0), places=2)}"
        )


class _State:
    """What all handles on one in-memory secret share: the stages, the record, the lease and the mutex guarding them.

    Stages hold `StoredKey`s as given (frozen, so sharing them is safe); the record is kept as a JSON round-trip copy
    so a caller mutating its dict afterwards changes nothing here, just as with a store that serializes.
    """

    def __init__(self, label: str, clock: Clock) -> None:
        self.label = label
        self.clock = clock
        self.mutex = threading.Lock()
        self.stages = Stages()
        self.record: str | None = None
        self.record_version = 0
        self.lease: _Lease | None = None
        self.last_fence = 0
        self.lane: MemoryStore | None = None
        """The paying-key lane kept beside this state (`MemoryStore.lane_ledger`), made on first use."""


class MemoryStore:
    """One credential held in this process's memory; see the module docstring for why and why not in production.

    `current` seeds CURRENT (as a hand-seeded dotenv file would); without it the store starts empty, as a deploy
    target that never held a key. `environment` and `base_url` are the credential's own: like the env store, they fill
    in for a CURRENT key that lacks them. `shared` makes this a second handle on another store's state (the seed and
    the clock are that state's); `twin()` is the short way. `clock` drives lease expiry (default `time.monotonic`).
    """

    name: str
    _state: _State
    _environment: Environment | None
    _base_url: str | None

    def __init__(
        self,
        name: str,
        *,
        current: StoredKey | None = None,
        environment: Environment | str | None = None,
        base_url: str | None = None,
        shared: MemoryStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        if shared is not None and (current is not None or clock is not None):
            raise ValueError(
                f"memory store {name!r}: `current` and `clock` belong to the shared state of {shared.name!r}; "
                "pass them to that store instead"
            )
        self.name = name
        self._environment = Environment(environment) if environment is not None else None
        self._base_url = base_url
        if shared is not None:
            self._state = shared._state
        else:
            self._state = _State(f"{name}#{next(_STATE_IDS)}", clock or time.monotonic)
            if current is not None:
                _check_storable(current, name)
                self._state.stages = Stages(current=current)

    def twin(self, name: str | None = None) -> MemoryStore:
        """A second, independent handle on the same state, as another process would hold on the same secret."""
        return MemoryStore(
            name or f"{self.name}-twin", environment=self._environment, base_url=self._base_url, shared=self
        )

    def lane_ledger(self) -> MemoryStore:
        """A handle on the paying-key lane kept beside this state (`backends.ledger.LaneSource`): a lease of its own on
        the same clock, the same lane for every handle (twin) on this state."""
        with self._state.mutex:
            if self._state.lane is None:
                self._state.lane = MemoryStore(f"{self._state.label}.lane", clock=self._state.clock)
            return self._state.lane.twin(f"{self.name}.lane")

    def describe(self) -> str:
        """Where the secret lives, for messages: the state's label, the same for every handle on it."""
        return f"memory store {self._state.label} (this process only, not persisted)"

    def __repr__(self) -> str:
        return f"MemoryStore(name={self.name!r}, state={self._state.label!r})"

    @property
    def _stage_log(self) -> StageLog:
        return StageLog(log, self.name, self.describe())

    # ----------------------------------------------------------------------------------------------- reads

    def read(self, stage: Stage) -> StoredKey | None:
        """The key at `stage`; CURRENT gets the store's `environment` and `base_url` where the key lacks them."""
        with self._state.mutex:
            if stage is Stage.CURRENT:
                return self._current()
            if stage is Stage.PENDING:
                return self._state.stages.pending
            return self._state.stages.previous

    def read_record(self) -> VersionedRecord:
        """A fresh copy of the rotation record and its version (0 and None before the first write)."""
        with self._state.mutex:
            text, version = self._state.record, self._state.record_version
        return VersionedRecord(None if text is None else _loads_record(text), version)

    # ----------------------------------------------------------------------------------------------- writes

    def put_pending(self, key: StoredKey) -> stages.Staged:
        """Stage `key` as PENDING. A token any stage already holds with the same key is a no-op; with another key,
        StoreConflict. A PENDING of another token is replaced (with a warning: the engine revokes that key)."""
        stages.require_token(key)
        _check_storable(key, self.name)
        state = self._state
        with state.mutex:
            staged = stages.put_pending(state.stages, key, where=self.describe(), store=self.name)
            self._stage_log.staging(staged)
            state.stages = staged.stages
        if staged.changed:
            self._stage_log.staged(staged)
        return staged

    def promote(self, token: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT and the old CURRENT becomes PREVIOUS, in one step under the mutex.

        When CURRENT already carries `token` this does nothing (readers already see it: there is no projection to
        repair in memory). StoreConflict when neither PENDING nor CURRENT carries `token`.
        """
        state = self._state
        with state.mutex:
            promotion = stages.promote(state.stages, token, shown=self._current, where=self.describe(), store=self.name)
            self._stage_log.promoting(promotion)
            state.stages = promotion.stages
        if not promotion.changed:
            self._stage_log.already_current("promote", promotion.key)
            return promotion
        self._stage_log.promoted(promotion, token)
        return promotion

    def restore_previous(self, token: str) -> stages.Rollback:
        """Rollback: when CURRENT carries `token`, PREVIOUS becomes CURRENT again and PREVIOUS empties.

        A PENDING of `token` is dropped either way. When CURRENT does not carry `token`, CURRENT and PREVIOUS are left
        alone. CURRENT carrying `token` with PREVIOUS empty raises StoreConflict and changes nothing.
        """
        state = self._state
        with state.mutex:
            rollback = stages.restore_previous(state.stages, token, where=self.describe(), store=self.name)
            state.stages = rollback.stages
        self._stage_log.rolled_back(rollback, token)
        return rollback

    def clear_previous(self, token: str) -> stages.Cleared:
        """Forget PREVIOUS once its key is revoked at Bluum, when CURRENT carries `token`; else nothing changes."""
        state = self._state
        with state.mutex:
            cleared = stages.clear_previous(state.stages, token)
            state.stages = cleared.stages
        self._stage_log.cleared(cleared)
        return cleared

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record if `lease` is the current, unexpired lease and the record is still at `version`.

        LeaseLost or StoreConflict otherwise, changing nothing. Refused (StoreError) unless the record is JSON, as a
        real store would refuse it.
        """
        try:
            text = json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=self.name) from exc
        state = self._state
        with state.mutex:
            held = state.lease.fence if state.lease is not None else None
            refusal = lease_refusal(held_fence=held, latest_fence=state.last_fence, lease=lease, now=state.clock())
            if refusal:
                raise LeaseLost(
                    f"{self.describe()}: the rotation record was not written: {refusal}; this runner changes nothing "
                    "more. The lease holder (or `rotator resume`, once no lease is held) finishes"
                )
            if state.record_version != version:
                raise StoreConflict(
                    f"the rotation record changed since it was read (version {state.record_version}, not {version}); "
                    "nothing was written",
                    store=self.name,
                )
            state.record = text
            state.record_version += 1
            return state.record_version

    # ----------------------------------------------------------------------------------------------- lease

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A lease on this state's record, refused at once while anyone else (or this very handle) holds an unexpired
        one. It expires `ttl_seconds` later on the state's clock: that is how a dead holder stops blocking others."""
        ttl = _positive_ttl(ttl_seconds, self.name)
        state = self._state
        with state.mutex:
            now = state.clock()
            held = state.lease
            if held is not None and now < held.expires_at:
                busy = RotationInProgress(
                    f"another rotation of this credential is running ({held.describe(now)}; {self.describe()}); "
                    "nothing was changed. Wait for it, or if that holder is gone, wait for its lease to expire and "
                    "run `rotator resume`"
                )
                busy.held_by = held.owner
                raise busy
            state.last_fence += 1
            taken = _Lease(
                fence=state.last_fence,
                owner=owner,
                handle=self.name,
                thread=threading.current_thread().name,
                acquired_at=now,
                expires_at=now + ttl,
            )
            state.lease = taken
        if held is not None:
            log.warning(
                "took over the rotation lease of %s from %s (handle %r), whose lease expired %.1fs ago",
                self.describe(),
                held.owner,
                held.handle,
                now - held.expires_at,
                extra={"fields": {"store": self.name, "owner": owner, "expired_owner": held.owner}},
            )
        log.debug("took the rotation lease of %s for %s (fence %d)", self.describe(), owner, taken.fence)
        return Lease(owner=owner, fence=taken.fence, expires_at=taken.expires_at, ttl_seconds=ttl)

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        """`lease` extended to `ttl_seconds` from now, if nobody acquired since (even when it had expired)."""
        ttl = _positive_ttl(ttl_seconds, self.name)
        state = self._state
        with state.mutex:
            held = state.lease
            if held is None or held.fence != lease.fence:
                how = "released" if state.last_fence == lease.fence else f"taken over (fence {state.last_fence})"
                raise LeaseLost(
                    f"{self.describe()}: the rotation lease of {lease.owner} (fence {lease.fence}) was {how}; "
                    "this runner changes nothing more"
                )
            now = state.clock()
            state.lease = replace(held, expires_at=now + ttl)
        return replace(lease, expires_at=now + ttl, ttl_seconds=ttl)

    def release(self, lease: Lease) -> None:
        state = self._state
        with state.mutex:
            ours = state.lease is not None and state.lease.fence == lease.fence
            if ours:
                state.lease = None
            successor = state.lease
        if ours:
            log.debug("released the rotation lease of %s", self.describe())
        else:
            log.warning(
                "the rotation lease of %s for %s had expired and was %s before it was released",
                self.describe(),
                lease.owner,
                f"taken over by {successor.owner}" if successor is not None else "given up",
                extra={"fields": {"store": self.name, "owner": lease.owner}},
            )

    def close(self) -> None:
        """Nothing to close: the state lives as long as some handle refers to it."""

    # ----------------------------------------------------------------------------------------------- helpers

    def _current(self) -> StoredKey | None:
        """CURRENT with this handle's fallbacks filled in (call with the mutex held)."""
        key = self._state.stages.current
        if key is None or (key.environment is not None and key.base_url is not None):
            return key
        return replace(key, environment=key.environment or self._environment, base_url=key.base_url or self._base_url)


def _positive_ttl(ttl_seconds: float, store: str) -> float:
    if not (isinstance(ttl_seconds, int | float) and math.isfinite(ttl_seconds) and ttl_seconds > 0):
        raise ValueError(f"memory store {store!r}: ttl_seconds must be a positive number, not {ttl_seconds!r}")
    return float(ttl_seconds)


def _loads_record(text: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(text)  # only write_record sets it, from a dict
    return record


def _check_storable(key: StoredKey, store: str) -> None:
    """Refuse a key without API key or secret before anything changes, as the env store does."""
    if not key.api_key or not key.api_secret:
        raise StoreError(f"API key or secret of {key.label} is empty; nothing was written", store=store)
