"""Everything the simulator remembers, behind one lock.

Every public method takes the single `threading.Lock` for its whole duration, so parallel requests never see a
half-made key, a torn rate-limit window or a double-spent idempotency key. Nothing here touches sockets; the
clock is the simulator's own (real monotonic time plus an offset tests can advance), so expiry, propagation
delay, rate-limit windows and idempotency TTL all move together when a test calls `advance_clock`.

Control-plane misuse raises `ValueError` (bad input) or `KeyError` (unknown id); the API paths raise
`ApiError` with the Bluum code. Secrets live only in `Key.secret_key` (excluded from repr) and leave this module
only in create responses (API keys and control-plane tenant keys) and through `all_secrets()`.
"""

from __future__ import annotations

import copy
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rotator.simulator import ids
from rotator.simulator.protocol import ApiError, parse_basic
from rotator.simulator.settings import (
    Fault,
    SimConfig,
    finite_number,
    parse_environment,
    parse_fault,
    updated_config,
)

IDEMPOTENCY_TTL = 24 * 3600.0
TENANT = "tenant"
LOG_LIMIT = 100_000


class Clock:
    """Wall time that never jumps backwards (anchored monotonic) plus an offset that tests advance."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self.offset = 0.0

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) + self.offset


@dataclass(slots=True)
class Key:
    """A tenant key (owner "tenant") or an investor-scoped key (owner `inv_…`)."""

    id: str
    owner: str
    environment: str
    name: str
    public_key: str
    secret_key: str = field(repr=False)
    created_at: float
    expires_at: float | None
    status: str  # active | inactive | revoked | expired
    via_api: bool

    def view(self) -> dict[str, Any]:
        """The control-plane view: everything a test asserts on, never the secret."""
        return {
            "id": self.id,
            "owner": self.owner,
            "environment": self.environment,
            "status": self.status,
            "name": self.name,
            "created": int(self.created_at),
            "public_key": self.public_key,
            "expires_at": _iso(self.expires_at),
        }

    def api_object(self, *, include_secret: bool = False) -> dict[str, Any]:
        """Bluum's documented investor-scoped key object; `secret_key` only in the create response."""
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "api_key",
            "created": int(self.created_at),
            "livemode": self.environment == "PRODUCTION",
            "account_id": self.owner,
            "name": self.name,
            "environment": self.environment,
            "status": self.status,
            "public_key": self.public_key,
            "expires_at": _iso(self.expires_at),
            "metadata": {},
        }
        if include_secret:
            obj["secret_key"] = self.secret_key
        return obj


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as."""

    key_id: str
    owner: str
    environment: str

    @property
    def is_tenant(self) -> bool:
        return self.owner == TENANT


@dataclass(slots=True)
class _Idempotent:
    fingerprint: str
    stored_at: float
    body: dict[str, Any]


class SimState:
    """The simulator's memory: keys, investors, idempotency records, faults, config, clock, request log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minted_secrets: list[str] = []  # survives reset(): "every secret ever minted", for the leak guard
        self._fault_seq = 0
        self.generation = 0  # bumped by reset(): work begun before a reset must not leak into the next test
        self._init()

    def _init(self) -> None:
        self._clock = Clock()
        self._config = SimConfig()
        self._keys: dict[str, Key] = {}
        self._by_public: dict[str, str] = {}
        self._investors: dict[str, float] = {}
        self._idempotency: dict[str, _Idempotent] = {}
        self._windows: dict[str, deque[float]] = {}
        self._faults: list[Fault] = []
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)

    # ----------------------------------------------------------------- control plane

    def reset(self) -> None:
        """Forget everything (keys, investors, faults, config, clock offset, log) except the minted-secret list."""
        with self._lock:
            self._init()
            self.generation += 1

    def now(self) -> float:
        with self._lock:
            return self._clock.now()

    def advance_clock(self, seconds: float) -> float:
        """Move simulated time forward; returns the new now. Going backwards is refused (it would un-expire)."""
        number = finite_number(seconds, "advance")
        if number < 0:
            raise ValueError("advance must be >= 0 seconds")
        with self._lock:
            self._clock.offset += number
            return self._clock.now()

    @property
    def error_style(self) -> str:
        return self._config.error_style  # a single attribute read: atomic, no lock needed

    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config.as_dict()

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply switches (see `settings.updated_config`); returns the whole config."""
        with self._lock:
            self._config = updated_config(self._config, changes)
            return self._config.as_dict()

    def create_tenant_key(self, environment: str = "TEST") -> dict[str, Any]:
        """Stand-in for the dashboard: a tenant-wide key, valid at once, returned with its secret."""
        env = parse_environment(environment)
        with self._lock:
            key = self._mint(TENANT, env, f"tenant {env.lower()} key", via_api=False, ttl=None)
            return {"id": key.id, "public_key": key.public_key, "secret_key": key.secret_key, "environment": env}

    def create_investor(self) -> str:
        with self._lock:
            investor = ids.new_id("inv")
            self._investors[investor] = self._clock.now()
            return investor

    def keys(self) -> list[dict[str, Any]]:
        """Every key in creation order (statuses brought up to date with the clock), never a secret."""
        with self._lock:
            now = self._clock.now()
            return [self._refresh(key, now).view() for key in self._keys.values()]

    def set_key_status(self, key_id: str, action: str) -> dict[str, Any]:
        """expire | deactivate | revoke, from the control plane. Revoked is final; the others do not undo it."""
        if action not in ("expire", "deactivate", "revoke"):
            raise ValueError(f"unknown key action {action!r}")
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                raise KeyError(f"no key {key_id!r}")
            now = self._clock.now()
            if action == "revoke":
                key.status = "revoked"
            elif key.status != "revoked":
                if action == "expire":
                    key.expires_at = now if key.expires_at is None else min(key.expires_at, now)
                    key.status = "expired"
                else:
                    key.status = "inactive"
            return key.view()

    def all_secrets(self) -> list[str]:
        with self._lock:
            return list(self._minted_secrets)

    def add_fault(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a fault (see `settings.parse_fault`); faults are consumed oldest first."""
        with self._lock:
            self._fault_seq += 1
            fault = parse_fault(spec, self._fault_seq)
            self._faults.append(fault)
            return fault.view()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Consume one use of the oldest fault matching this request, if any; returns a detached copy."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    taken = copy.copy(fault)
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return taken
            return None

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.view() for fault in self._faults]

    def record(self, entry: dict[str, Any], generation: int | None = None) -> None:
        """Append to the request log, unless the request began before a reset (then it belongs to no test)."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            entry.setdefault("time", self._clock.now())
            self._log.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    # ----------------------------------------------------------------- the API

    def admit(self, authorization: str | None, serves: str | None = None) -> Principal:
        """Authenticate (401-001…005) then charge the key's rate-limit window (429). 401s cost nothing.

        `serves`: the environment of the host that received the call (TEST or PRODUCTION), when the simulator
        plays Bluum's separate sandbox and production hosts; a key of the other environment is unknown there.
        """
        user, password = parse_basic(authorization)
        with self._lock:
            now = self._clock.now()
            key = self._verify(user, password, now, serves)
            window = self._windows.setdefault(key.id, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self._config.rate_limits[key.environment]:
                retry_after = max(1, math.ceil(window[0] + 1.0 - now))
                raise ApiError(
                    429,
                    "BLUM-429-001",
                    f"Rate limit exceeded for this key pair; retry after {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                    key_id=key.id,
                )
            window.append(now)
            return Principal(key.id, key.owner, key.environment)

    def authenticate(self, authorization: str | None, serves: str | None = None) -> str:
        """The key these credentials authenticate as, or the 401 a /v1 call would get; charges nothing."""
        user, password = parse_basic(authorization)
        with self._lock:
            return self._verify(user, password, self._clock.now(), serves).id

    def identify(self, authorization: str | None) -> str | None:
        """The key these credentials would authenticate as, without charging anything (for fault log lines)."""
        try:
            user, password = parse_basic(authorization)
            with self._lock:
                return self._verify(user, password, self._clock.now()).id
        except ApiError:
            return None

    def _verify(self, user: str, password: str, now: float, serves: str | None = None) -> Key:
        wrong = ApiError(401, "BLUM-401-003", "Invalid API key or secret.")
        key_id = self._by_public.get(user)
        key = self._keys.get(key_id) if key_id else None
        if key is None or not hmac.compare_digest(password.encode(), key.secret_key.encode()):
            raise wrong
        if serves is not None and key.environment != serves:
            raise wrong  # another environment's host: separate credentials, so this key is simply unknown here
        if key.status == "revoked":
            raise wrong
        if key.status == "inactive":
            raise ApiError(401, "BLUM-401-004", "This API key is inactive.")
        if self._refresh(key, now).status == "expired":
            raise ApiError(401, "BLUM-401-005", "This API key has expired; create new credentials.")
        if key.via_api and now < key.created_at + self._config.propagation_delay:
            raise wrong  # not yet propagated: indistinguishable from an unknown key, as in eventually-consistent APIs
        return key

    def investors(self) -> list[str]:
        with self._lock:
            return list(self._investors)

    def investor_created(self, investor_id: str) -> float | None:
        with self._lock:
            return self._investors.get(investor_id)

    def create_api_key(
        self,
        principal: Principal,
        investor_id: str,
        *,
        name: str,
        environment: str,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Mint an investor-scoped key; returns (key object with secret, replayed?). Atomic with its idempotency record.

        `idempotency` is (Idempotency-Key, request fingerprint): a live record with the same fingerprint replays
        the stored response (same key, same secret); another fingerprint is 409-001. Records live 24 h.
        """
        with self._lock:
            now = self._clock.now()
            if investor_id not in self._investors:
                raise ApiError(404, "BLUM-404-001", f"No investor {investor_id} in this tenant.", param="investor_id")
            if environment != principal.environment:
                raise ApiError(
                    403,
                    "BLUM-403-003",
                    f"A {principal.environment} tenant key can only create {principal.environment} keys.",
                    param="environment",
                )
            if idempotency is not None:
                record = self._idempotency.get(idempotency[0])
                if record is not None and now - record.stored_at >= IDEMPOTENCY_TTL:
                    del self._idempotency[idempotency[0]]
                    record = None
                if record is not None:
                    if record.fingerprint != idempotency[1]:
                        raise ApiError(
                            409,
                            "BLUM-409-001",
                            "Idempotency-Key already used with a different request.",
                            param="Idempotency-Key",
                        )
                    return copy.deepcopy(record.body), True
            key = self._mint(investor_id, environment, name, via_api=True, ttl=self._config.key_ttl)
            body = key.api_object(include_secret=True)
            if idempotency is not None:
                self._idempotency[idempotency[0]] = _Idempotent(idempotency[1], now, copy.deepcopy(body))
            return body, False

    def list_api_keys(self, principal: Principal, investor_id: str, limit: int, offset: int) -> tuple[list[Any], bool]:
        """One page of the investor's keys of the caller's environment, oldest first (stable under appends)."""
        with self._lock:
            if investor_id not in self._investors:
                raise ApiError(404, "BLUM-404-001", f"No investor {investor_id} in this tenant.", param="investor_id")
            now = self._clock.now()
            mine = [
                key
                for key in self._keys.values()
                if key.owner == investor_id and key.environment == principal.environment
            ]
            page = [self._refresh(key, now).api_object() for key in mine[offset : offset + limit]]
            return page, offset + limit < len(mine)

    def revoke_api_key(self, principal: Principal, investor_id: str, key_id: str) -> dict[str, Any]:
        """Revoke at once. Unknown, another investor's or another environment's key: 404-001."""
        with self._lock:
            if investor_id not in self._investors:
                raise ApiError(404, "BLUM-404-001", f"No investor {investor_id} in this tenant.", param="investor_id")
            key = self._keys.get(key_id)
            if key is None or key.owner != investor_id or key.environment != principal.environment:
                raise ApiError(
                    404, "BLUM-404-001", f"No API key {key_id} for investor {investor_id}.", param="api_key_id"
                )
            dead = self._refresh(key, self._clock.now()).status in ("revoked", "expired")
            if dead and self._config.revoke_repeat == "conflict":
                # Bluum does not document this answer; the flag lets clients be tested against the strict variant.
                raise ApiError(409, "BLUM-409-002", f"API key {key_id} is already {key.status}.", param="api_key_id")
            key.status = "revoked"
            return key.api_object()

    # ----------------------------------------------------------------- helpers (lock held)

    def _mint(self, owner: str, environment: str, name: str, *, via_api: bool, ttl: float | None) -> Key:
        now = self._clock.now()
        key = Key(
            id=ids.new_id("apk" if owner != TENANT else "tk"),
            owner=owner,
            environment=environment,
            name=name,
            public_key=ids.new_public_key(environment),
            secret_key=ids.new_secret(environment),
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            status="active",
            via_api=via_api,
        )
        self._keys[key.id] = key
        self._by_public[key.public_key] = key.id
        self._minted_secrets.append(key.secret_key)
        return key

    @staticmethod
    def _refresh(key: Key, now: float) -> Key:
        if key.status == "active" and key.expires_at is not None and now >= key.expires_at:
            key.status = "expired"
        return key


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
