"""Plain data shared by the engine, the stores and the Bluum client. No I/O here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from rotator.core.secret import Secret


class Environment(StrEnum):
    """Which Bluum environment a key belongs to. Config says sandbox/production; Bluum says TEST/PRODUCTION.

    `Environment("TEST")` and `Environment("PRODUCTION")` are accepted too, spelled exactly as Bluum's API and dashboard
    spell them: an operator who copies `environment = "TEST"` from Bluum into rotator.toml means sandbox, and
    nothing else is ambiguous about it. Any other spelling (`test`, `Prod`) stays an error with a did-you-mean."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"

    @classmethod
    def _missing_(cls, value: object) -> Environment | None:
        return _BLUUM_SPELLING.get(value) if isinstance(value, str) else None

    @property
    def bluum_name(self) -> str:
        """The spelling Bluum's API uses in `environment` fields."""
        return "TEST" if self is Environment.SANDBOX else "PRODUCTION"

    @classmethod
    def from_bluum(cls, value: str) -> Environment:
        """Parse Bluum's TEST/PRODUCTION (or our sandbox/production) spelling."""
        normalized = value.strip().upper()
        if normalized in ("TEST", "SANDBOX"):
            return cls.SANDBOX
        if normalized in ("PRODUCTION", "LIVE"):
            return cls.PRODUCTION
        raise ValueError(f"unknown Bluum environment {value!r}: expected TEST or PRODUCTION")

    @property
    def default_rate_limit(self) -> float:
        """Requests per second Bluum allows per key pair (documented: 10 sandbox, 25 production)."""
        return 10.0 if self is Environment.SANDBOX else 25.0


_BLUUM_SPELLING: dict[str, Environment] = {"TEST": Environment.SANDBOX, "PRODUCTION": Environment.PRODUCTION}
"""Bluum's names for the two environments, as its API writes them (`Environment.bluum_name` is the way back)."""


# Bluum's ids are a short lowercase prefix and 26 lowercase base32 characters (`apk_2ahq810t9rgmwgncgcawcm5400`).
# An id line a person typed may hold anything, a pasted secret included: only an id of that shape is printed.
_PRINTABLE_ID = re.compile(r"[a-z]{2,5}_[0-9a-z]{3,40}")


def printable_id(key_id: str | None) -> str | None:
    """`key_id` when it has the shape of a Bluum id, else None: safe to put in a message or log line."""
    return key_id if key_id is not None and _PRINTABLE_ID.fullmatch(key_id) else None


def fingerprint(api_key: str) -> str:
    """A short stable label for a key, safe to log: a hash prefix of the API key, never the secret."""
    return "key#" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


DEFAULT_BASE_URLS: dict[Environment, str] = {
    Environment.SANDBOX: "https://sandbox.api.bluumfinance.com/v1",
    Environment.PRODUCTION: "https://api.bluumfinance.com/v1",
}
DEFAULT_CHECK_PATH: Final = "/assets?asset_class=us_equity&tradable=true"
"""Bluum's own "test your credentials" call (bluum-api.md §6): read-only, cheap, and allowed for every key scope."""
DEFAULT_API_KEYS_PATH: Final = "/investors/{investor_id}/api-keys"
"""Where issuer "bluum" creates, lists and revokes keys. Configurable so a future tenant-key API needs no code. Both
paths are Bluum facts, kept here once for the configuration (its defaults) and the client (its own)."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An API key and its secret: what HTTP Basic auth sends. `key_id` (apk_...) is what we print."""

    api_key: str
    api_secret: Secret
    environment: Environment
    key_id: str | None = None

    @property
    def fingerprint(self) -> str:
        """A short stable label for the pair, safe to log: a hash prefix of the API key, never the secret."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """How logs and CLI output name this pair: its key id when known (and id-shaped), else its fingerprint."""
        return printable_id(self.key_id) or f"key#{self.fingerprint}"


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """One key as Bluum lists it (never with a secret)."""

    id: str
    status: str
    environment: Environment | None
    name: str
    public_key: str
    created: int | None
    account_id: str | None = None
    expires_at: float | None = None
    """When Bluum says the key expires (its `expires_at`, unix seconds); None: it does not say (the usual case)."""

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def revocable(self) -> bool:
        """Not yet dead for good: an active key, or one Bluum reports inactive (which the dashboard can reactivate).
        Revoked and expired keys are final."""
        return self.status not in ("revoked", "expired")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """The answer to a create: the only moment Bluum shows the secret."""

    info: ApiKeyInfo
    pair: KeyPair
    attempts: int = 1
    """How many times the create was sent. More than one: an earlier try may have made a key too (if Bluum did
    not honour the Idempotency-Key), so the caller looks for a duplicate."""


class Stage(StrEnum):
    """Where a key sits in a store. Mirrors AWS Secrets Manager's AWSCURRENT / AWSPENDING / AWSPREVIOUS."""

    CURRENT = "current"
    PENDING = "pending"
    PREVIOUS = "previous"


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as a store holds it. `environment` and `key_id` may be unknown in a file seeded by hand."""

    api_key: str
    api_secret: Secret
    key_id: str | None = None
    environment: Environment | None = None
    base_url: str | None = None
    token: str | None = None

    def same_key(self, other: StoredKey) -> bool:
        """True when both hold the same pair (compares the secret in constant time)."""
        return self.api_key == other.api_key and self.api_secret == other.api_secret

    @property
    def label(self) -> str:
        """Key id when known (and id-shaped: a hand-edited id line may hold anything), else a fingerprint of the
        API key: safe to print."""
        return printable_id(self.key_id) or fingerprint(self.api_key)
