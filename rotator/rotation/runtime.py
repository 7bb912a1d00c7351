"""One runtime per process: the stores, ledgers, issuers and Bluum clients of a configuration, built once, shared
by every rotation, safe in threads.

Why: the daemon and fleet rotation run many rotations at once, and each used to build its own HTTP client (a
connection pool and an SSL context: ~28 ms of CPU and ~0.85 MB each) and its own store handles. Here there is one
`BluumClient` per base URL, made on first use, so a command that makes no Bluum call (`rotator status`) never
imports httpx; stores are built once per name. Time spent sleeping (polls, throttle, back-off) is counted for the
whole process and, through `metering`, for the rotation the calling thread works on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError, RotatorError, StoreError, StoreNotFound
from rotator.core.model import Stage, StoredKey
from rotator.rules.pause import Pause, pause_in, rotation_part
from rotator.rules.record import RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore, StoreFactory
    from backends.ledger import Ledger
    from rotator.bluum.client import BluumClient
    from rotator.bluum.traffic import ResponseObserver
    from rotator.config.loader import Config, CredentialConfig
    from rotator.issuers.base import Issuer
    from rotator.issuers.bluum import ManagerKey
    from rotator.rotation.reload_tick import ReloadTick
    from rotator.rules.identity import Holding, Survey, Unreadable

__all__ = ["HOLDINGS_TTL", "Meter", "Runtime", "default_owner"]

HOLDINGS_TTL = 5.0
"""Seconds a reading of another credential's store without a fingerprint (Vault, AWS) stands in for a new one when
checking that no store holds a key about to be revoked. The rotating credential's own stores are always read."""


def default_owner() -> str:
    """Who is running: `user@host pid N`, for leases and the history."""
    import getpass  # not at the top: `rotator status` needs no owner, and socket takes milliseconds to import
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


@dataclass
class Meter:
    """Seconds one rotation (one thread) spent sleeping."""

    waited: float = 0.0


def _read_for_holdings(exc: StoreError) -> StoreError:
    """`exc`, saying why the store was read (with the same exit code)."""
    why = "it was read to make sure no key it holds gets revoked; nothing was revoked"
    wrapped = StoreError(f"{exc} ({why})")
    wrapped.exit_code = exc.exit_code
    return wrapped


class Runtime:
    """Builds and keeps what rotations share. `sleep`, `clock` and `monotonic` are injectable for tests."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        owner: str | None = None,
        stores: Mapping[str, SecretStore] | None = None,
        clients: Mapping[str, BluumClient] | None = None,
    ) -> None:
        """`stores`: store handles built by the caller (with an SDK client or session of its own, or in-memory
        stores in tests), used instead of building those names from the configuration. `clients`: Bluum clients
        by base URL, likewise (a test's fake Bluum)."""
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self._owner = owner
        self._sleep = sleep
        self._lock = threading.RLock()
        self._stores: dict[str, SecretStore] = dict(stores or {})
        self._given: set[int] = {id(item) for item in [*(stores or {}).values(), *(clients or {}).values()]}
        """Handles the caller built: the caller closes them, not this runtime."""
        self._factories: dict[str, StoreFactory] | None = None
        self._clients: dict[str, BluumClient] = dict(clients or {})
        self._issuers: dict[str, Issuer] = {}
        self._waited = 0.0
        self._holdings: dict[str, tuple[object, float, list[Holding]]] = {}
        """What each store held when last read for `holdings`: its fingerprint then, when, and the holdings."""
        self._local = threading.local()
        self.response_observers: list[ResponseObserver] = []
        """Called after each Bluum request by every client this runtime builds (`rotator.bluum.traffic`); metrics add
        themselves here (`Telemetry.attach`), so the client never imports them."""
        self._key_names: dict[str, str] = {}
        self.stopping = threading.Event()
        """Set when the process is asked to stop (the daemon's SIGTERM): rotations in hand stop after the step they
        are on, and no new one starts. What is left is finished by `rotator resume` or the next tick."""
        self.reload_tick: ReloadTick | None = None
        """During a scheduler tick, what it knows of its reloads (rotator/rotation/reload_tick.py); None otherwise."""

    @property
    def owner(self) -> str:
        """Who holds this runtime's leases and started its rotations (`default_owner` unless given), worked out
        when first asked: `rotator status` takes no lease and never asks."""
        if not self._owner:
            self._owner = default_owner()
        return self._owner

    # ----------------------------------------------------------------- time

    @property
    def waited(self) -> float:
        """Seconds every thread of this runtime spent sleeping so far."""
        with self._lock:
            return self._waited

    def sleep(self, seconds: float) -> None:
        """Sleep, counted for the process and for the rotation this thread is metering."""
        self._count_wait(seconds)
        self._sleep(seconds)

    def pause(self, seconds: float) -> bool:
        """Wait like `sleep` (counted the same way, through the injected sleep), but end early when the process is
        asked to stop; True then. Why: a wait of minutes (polling consumers) must not hold up a stop request, and a
        test's fake clock must see the wait, which `stopping.wait` alone would spend in real time."""
        self._count_wait(seconds)
        if self._sleep is time.sleep:
            return self.stopping.wait(seconds)
        self._sleep(seconds)
        return self.stopping.is_set()

    def _count_wait(self, seconds: float) -> None:
        with self._lock:
            self._waited += seconds
        meter: Meter | None = getattr(self._local, "meter", None)
        if meter is not None:
            meter.waited += seconds

    @contextmanager
    def metering(self, meter: Meter) -> Iterator[Meter]:
        """Count this thread's sleeps into `meter` for the block (a rotation's own waiting time)."""
        outer = getattr(self._local, "meter", None)
        self._local.meter = meter
        try:
            yield meter
        finally:
            self._local.meter = outer

    # ----------------------------------------------------------------- stores

    def store(self, name: str) -> SecretStore:
        """The store `name`, built once; it learns its credential's environment and base URL as fallbacks."""
        with self._lock:
            if name not in self._stores:
                self._stores[name] = self._build_store(name)
            return self._stores[name]

    def _build_store(self, name: str) -> SecretStore:
        from backends.base import load_store_factories

        spec = self.config.store(name)
        if self._factories is None:
            self._factories = load_store_factories({store.type for store in self.config.stores.values()})
        factory = self._factories.get(spec.type)
        if factory is None:
            known = ", ".join(sorted(self._factories))
            raise ConfigError(f"store {name!r}: unknown type {spec.type!r}; known: {known}")
        cred = self.config.credential_for_store(name)
        fallbacks = {} if cred is None else {"environment": cred.environment, "base_url": cred.base_url}
        try:
            return factory(name, **fallbacks, **dict(spec.options))
        except TypeError as exc:  # a third-party store's options are not checked by config.py
            raise ConfigError(f"store {name!r} (type {spec.type!r}) rejects its options: {exc}") from exc

    def stores_of(self, cred: CredentialConfig) -> list[SecretStore]:
        """Every target of `cred`, primary first."""
        return [self.store(name) for name in cred.targets]

    def ledger(self, cred: CredentialConfig) -> Ledger:
        """Where `cred`'s rotation record and lease live: its primary store."""
        from backends.ledger import Ledger

        primary = self.store(cred.store)
        if not isinstance(primary, Ledger):
            raise ConfigError(
                f"credentials.{cred.name}: its primary store {cred.store!r} cannot keep a rotation record (the store "
                "type has no lease and compare-and-set). Make a store of a built-in type the primary (`store`), "
                "and list this one in `also_deploy_to`"
            )
        return primary

    def read_record(self, cred: CredentialConfig) -> RotationRecord | None:
        """`cred`'s rotation record, read without a lease (to decide or to show; a command that changes something
        reads it again under its lease)."""
        return self.read_ledger(cred)[0]

    def read_ledger(self, cred: CredentialConfig) -> tuple[RotationRecord | None, Pause | None]:
        """`cred`'s rotation record and its pause (`rotator.rules.pause`), from one read of its ledger, without a
        lease."""
        data = self.ledger(cred).read_record().record
        rotation = rotation_part(data)
        record = None if rotation is None else RotationRecord.from_dict(rotation, store=cred.store)
        return record, pause_in(data)

    def holdings(self, *, fresh: Collection[str] | None = None) -> list[Holding]:
        """Every stage of every configured store, by public key: the keys some application may be using.

        A stage that is missing holds nothing; a store that cannot be read stops the caller (with that store's own
        exit code), since what it holds cannot be ruled out. Stores no credential uses are read too.

        `fresh`: the stores that must be read now (the rotating credential's own, which this very rotation changes);
        the others may come from what this process read before, when their fingerprint says they have not changed
        since, or, for a store without one (Vault, AWS), when that reading is less than `HOLDINGS_TTL` seconds old.
        Without it every store is read now. A fleet of N credentials would otherwise read N stores per rotation.
        """
        found: list[Holding] = []
        for name in self.config.stores:
            try:
                found.extend(self._held_in(name, fresh=fresh is None or name in fresh))
            except StoreError as exc:
                raise _read_for_holdings(exc) from exc
        return found

    def survey(self, *, fresh: Collection[str], refuse_misconfigured: bool = False) -> Survey:
        """`holdings`, except that a store outside `fresh` that cannot be read is listed as unreadable instead of
        stopping the caller: one application's broken file must not stop the rotation of another credential. The
        caller decides what an unreadable store means (rotation.revocation.checked_holdings): a scheduled revoke
        waits for it, an emergency revokes anyway and says so. The stores in `fresh` (the rotating credential's own)
        must be readable: their errors are raised, as by `holdings`. `refuse_misconfigured`: a store that cannot even
        be opened (a ConfigError: bad input, not an outage) is raised too, so a normal rotation refuses at its start
        (exit 2, nothing changed) instead of minting a key it could not finish; an emergency lists it and goes on."""
        from rotator.rules.identity import Survey  # here: `rotator status` reads no holdings

        found: list[Holding] = []
        unreadable: list[Unreadable] = []
        for name in self.config.stores:
            try:
                found.extend(self._held_in(name, fresh=name in fresh))
            except StoreError as exc:
                if name in fresh:
                    raise _read_for_holdings(exc) from exc
                unreadable.append(self._unreadable(name, exc))
            except ConfigError as exc:  # another's store that cannot even be opened (its token variable unset)
                if name in fresh or refuse_misconfigured:
                    raise
                unreadable.append(self._unreadable(name, exc, misconfigured=True))
        return Survey(found, unreadable)

    def _unreadable(self, name: str, exc: RotatorError, *, misconfigured: bool = False) -> Unreadable:
        from rotator.rules.identity import Unreadable

        cred = self.config.credential_for_store(name)
        return Unreadable(name, cred.name if cred is not None else "(none)", str(exc), misconfigured)

    def _held_in(self, name: str, *, fresh: bool) -> list[Holding]:
        from backends.base import Fingerprinted, ReadAtOnce
        from rotator.rules.identity import Holding

        store = self.store(name)
        mark = store.fingerprint() if isinstance(store, Fingerprinted) else None
        now = self.monotonic()
        with self._lock:
            seen = self._holdings.get(name)
        if seen is not None and not fresh:
            seen_mark, seen_at, held = seen
            if (mark is not None and mark == seen_mark) or (mark is None and now - seen_at < HOLDINGS_TTL):
                return held
        cred = self.config.credential_for_store(name)
        owner = cred.name if cred is not None else "(none)"
        if isinstance(store, ReadAtOnce):  # one reading of the store, not one per stage
            held = [Holding(owner, name, stage, key.api_key) for stage, key in store.read_stages().items()]
        else:
            held = []
            for stage in Stage:
                try:
                    key = store.read(stage)
                except StoreNotFound:
                    continue
                if key is not None:
                    held.append(Holding(owner, name, stage, key.api_key))
        with self._lock:
            self._holdings[name] = (mark, now, held)  # the mark taken before reading: a write meanwhile shows next time
        return held

    # ----------------------------------------------------------------- Bluum

    def client(self, base_url: str) -> BluumClient:
        """The one client for `base_url` (its connection pool is shared by every credential there)."""
        with self._lock:
            if base_url not in self._clients:
                from rotator.bluum.client import BluumClient, RetryPolicy
                from rotator.bluum.shared_window import check_budget_dir

                settings = self.config.bluum
                shared = settings.shared_budget_dir
                self._clients[base_url] = BluumClient(
                    base_url,
                    timeout=settings.timeout,
                    retry=RetryPolicy(max_attempts=settings.max_attempts, total_budget=settings.retry_budget),
                    rate_limits=settings.rate_limits,
                    sleep=self.sleep,
                    observers=self.response_observers,
                    shared_budget_dir=check_budget_dir(shared) if shared is not None else None,
                )
            return self._clients[base_url]

    def name_key(self, api_key: str, credential: str) -> None:
        """Remember that `api_key` is `credential`'s key, so metrics can name the key that pays for a request by its
        credential (its SHA-256 is kept, never the key)."""
        from rotator.bluum.throttle import key_hash

        digest = key_hash(api_key)
        with self._lock:
            self._key_names[digest] = credential

    def key_name(self, digest: str) -> str | None:
        """The credential whose key has SHA-256 `digest` (see `name_key`), or None when no command named it."""
        with self._lock:
            return self._key_names.get(digest)

    def client_urls(self) -> list[str]:
        """The base URLs a client has been built for so far (one client each)."""
        with self._lock:
            return list(self._clients)

    def issuer(self, cred: CredentialConfig) -> Issuer:
        """Who mints and revokes `cred`'s keys (built once per credential)."""
        with self._lock:
            if cred.name not in self._issuers:
                from rotator.issuers import build_issuer

                self._issuers[cred.name] = build_issuer(
                    cred, client=partial(self.client, cred.base_url), manager_key=self.manager_key
                )
            return self._issuers[cred.name]

    def manager_key(self, name: str) -> ManagerKey:
        """The reader of manager credential `name`'s key for an issuer: its primary's CURRENT, read at each call, and
        remembered as `name`'s key for the metrics (`name_key`)."""
        from rotator.issuers.bluum import ManagerKey

        manager = self.config.credential(name)

        def read() -> StoredKey | None:
            stored = self.store(manager.store).read(Stage.CURRENT)
            if stored is not None:
                self.name_key(stored.api_key, manager.name)
            return stored

        return ManagerKey(manager.name, manager.store, read, lambda: self.store(manager.store).describe())

    # ----------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close every client and store this runtime built."""
        with self._lock:
            clients, stores = list(self._clients.values()), list(self._stores.values())
            self._clients.clear()
            self._stores.clear()
            self._issuers.clear()
        for client in clients:
            if id(client) not in self._given:
                client.close()
        for store in stores:
            if id(store) not in self._given:
                store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
