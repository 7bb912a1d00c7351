"""`issuer = "bluum"`: investor-scoped keys, minted, listed and revoked through Bluum's API with a manager's key.

The manager is another credential (a tenant key made in the dashboard); its CURRENT is read from its store at each
call, so a rotated manager key is picked up at once. A 401/403 on these calls blames the manager key, and the
message says which credential and store hold it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rotator.core.errors import BluumAuthError, BluumForbidden, ConfigError
from rotator.core.model import ApiKeyInfo, CreatedKey, KeyPair, Stage
from rotator.rules.guards import guard_environment, guard_values

if TYPE_CHECKING:
    from rotator.bluum.client import BluumClient
    from rotator.config.loader import CredentialConfig
    from rotator.rotation.runtime import Runtime


class BluumIssuer:
    """Mints and revokes the investor keys of one credential."""

    kind = "bluum"
    mints = True
    revokes = True

    def __init__(self, cred: CredentialConfig, runtime: Runtime, *, investor_id: str, manager: str) -> None:
        self._cred = cred
        self._runtime = runtime
        self.investor_id = investor_id
        self.scope = f"investor {investor_id}"
        self._manager = runtime.config.credential(manager)

    @property
    def _client(self) -> BluumClient:
        return self._runtime.client(self._cred.base_url)

    def manager_pair(self) -> KeyPair:
        """The manager credential's CURRENT, checked for environment and usable values."""
        manager = self._manager
        stored = self._runtime.store(manager.store).read(Stage.CURRENT)
        if stored is None:
            raise ConfigError(
                f"manager credential {manager.name!r} has no current key in store {manager.store!r}: "
                "put the tenant key there first"
            )
        what = f"manager key {stored.label} (credential {manager.name!r})"
        guard_environment(self._cred.name, self._cred.environment, stored, what)
        where = f"the manager key in store {manager.store!r} (credential {manager.name!r})"
        guard_values(self._cred.name, stored, where)
        self._runtime.name_key(stored.api_key, manager.name)
        return KeyPair(
            api_key=stored.api_key,
            api_secret=stored.api_secret,
            environment=stored.environment or self._cred.environment,
            key_id=stored.key_id,
        )

    def list_keys(self) -> list[ApiKeyInfo]:
        with self._manager_refusals():
            return self._client.list_investor_keys(
                self.manager_pair(), self.investor_id, keys_path=self._cred.api_keys_path
            )

    def mint(self, *, name: str, idempotency_key: str) -> CreatedKey:
        # Errors are the caller's to judge (unanswered → resume; refused → roll back): not rewrapped here.
        return self._client.create_investor_key(
            self.manager_pair(),
            self.investor_id,
            name=name,
            environment=self._cred.environment,
            idempotency_key=idempotency_key,
            keys_path=self._cred.api_keys_path,
        )

    def revoke(self, key_id: str) -> ApiKeyInfo:
        with self._manager_refusals():
            return self._client.revoke_investor_key(
                self.manager_pair(), self.investor_id, key_id, keys_path=self._cred.api_keys_path
            )

    def source(self) -> str:
        environment = self._cred.environment.bluum_name
        return f"create a new {environment} key for {self.investor_id} with {self._manager.name}'s key"

    def person_revokes(self, label: str) -> str:
        return (
            f"Revoke the old key {label} of {self._cred.name} in Bluum's dashboard (Settings → API Keys): "
            f"Bluum's key list for {self.investor_id} does not have it"
        )

    @contextmanager
    def _manager_refusals(self) -> Iterator[None]:
        """A 401/403 on a manager call blames the manager key: say which credential and store hold it."""
        try:
            yield
        except (BluumAuthError, BluumForbidden) as exc:
            manager = self._manager
            store = self._runtime.store(manager.store)
            raise type(exc)(
                f"{exc.detail}. That is the manager key of {self._cred.name}: credential {manager.name!r}, kept in "
                f"store {store.name!r} ({store.describe()}). Put a working tenant key there (Bluum's dashboard, "
                "Settings → API Keys), then run the command again",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                trace_id=exc.trace_id,
            ) from exc
