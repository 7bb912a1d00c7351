"""Who mints and revokes a credential's keys: the strategy the driver asks, so no step branches on an issuer name.

Bluum documents key management for investor-scoped keys only (`bluum`: minted, listed and revoked through the API
with a manager's tenant key). Tenant keys are made and revoked in Bluum's dashboard (`manual`: a person hands the
new pair over and revokes the old one). A future tenant-key API would be a third issuer, not new branches.
"""

from __future__ import annotations

from typing import Protocol

from rotator.core.model import ApiKeyInfo, CreatedKey


class Issuer(Protocol):
    """What a rotation needs from whoever makes keys."""

    kind: str
    """The name in rotator.toml (`bluum`, `manual`); kept in the rotation record."""
    mints: bool
    """True when `mint` creates keys; False when a person hands the new pair over."""
    revokes: bool
    """True when `revoke` works; False when a person revokes in the dashboard."""
    scope: str
    """Whose keys `list_keys` lists, for messages: `investor inv_…`."""

    def list_keys(self) -> list[ApiKeyInfo] | None:
        """Every key of this credential's owner as Bluum lists them (never a secret), or None: no list exists."""
        ...

    def mint(self, *, name: str, idempotency_key: str) -> CreatedKey:
        """Create a key named `name`; the same `idempotency_key` must give the same key again (Bluum keeps it 24 h)."""
        ...

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke `key_id` for good; returns the key as Bluum now lists it. Callers check no store holds it first."""
        ...

    def source(self) -> str:
        """Where a new key comes from, for the dry-run plan."""
        ...

    def person_revokes(self, label: str) -> str:
        """What a person must do to revoke the key `label` (for keys this issuer cannot revoke itself)."""
        ...
