"""`issuer = "manual"`: a person makes the new pair in Bluum's dashboard and revokes the old one there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.core.model import ApiKeyInfo, CreatedKey


class ManualIssuer:
    """Neither mints nor revokes: the driver stores the pair a person hands over and waits for the person."""

    kind = "manual"
    mints = False
    revokes = False

    def __init__(self, cred: CredentialConfig) -> None:
        self._cred = cred
        self.scope = "the tenant"

    def list_keys(self) -> list[ApiKeyInfo] | None:
        return None  # Bluum has no API that lists tenant keys

    def mint(self, *, name: str, idempotency_key: str) -> CreatedKey:
        raise ConfigError(f"{self._cred.name}: keys of issuer manual are made in Bluum's dashboard, not minted here")

    def revoke(self, key_id: str) -> ApiKeyInfo:
        raise ConfigError(f"{self._cred.name}: {self.person_revokes(key_id)}; it cannot be revoked through the API")

    def source(self) -> str:
        return "take the new pair from --new-key-file"

    def person_revokes(self, label: str) -> str:
        return f"Revoke the old key {label} of {self._cred.name} in Bluum's dashboard (Settings → API Keys)"
