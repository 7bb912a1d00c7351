"""`issuer = "bluum"`: investor-scoped keys, minted, listed and revoked through Bluum's API with a manager's key.

The manager is another credential (a tenant key made in the dashboard); its CURRENT is read from its store at each
call, so a rotated manager key is picked up at once. A 401/403 on these calls blames the manager key, and the
message says which credential and store hold it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotator.core.errors import BluumAuthError, BluumForbidden, ConfigError
from rotator.core.model import ApiKeyInfo, CreatedKey, KeyPair, StoredKey
from rotator.rules.guards import guard_environment, guard_values

if TYPE_CHECKING:
    from rotator.bluum.client import BluumClient
    from rotator.config.loader import CredentialConfig


@dataclass(frozen=True, slots=True)
class ManagerKey:
    """Where a manager credential's tenant key is read, at each call: a rotated manager key is picked up at once."""

    credential: str
    """The manager credential's name."""
    store: str
    """The name of the store that holds its key (its primary)."""
    read: Callable[[], StoredKey | None]
    """The manager's CURRENT as that store holds it now (None: none)."""
    describe: Callable[[], str]
    """That store, in words (`SecretStore.describe`), for the message of a refused manager key."""


class BluumIssuer:
    """Mints and revokes the investor keys of one credential."""

    kind = "bluum"
    mints = True
    revokes = True

    def __init__(
        self, cred: CredentialConfig, *, client: Callable[[], BluumClient], manager: ManagerKey, investor_id: str
    ) -> None:
        """`client`: the Bluum client for `cred`'s base URL, asked for at each call (built on first use)."""
        self._cred = cred
        self._client_for = client
        self._manager = manager
        self.investor_id = investor_id
        self.scope = f"investor {investor_id}"

    @property
    def _client(self) -> BluumClient:
        return self._client_for()

    def manager_pair(self) -> KeyPair:
        """The manager credential's CURRENT, checked for environment and usable values."""
        manager = self._manager
        stored = manager.read()
        if stored is None:
            raise ConfigError(
                f"manager credential {manager.credential!r} has no current key in store {manager.store!r}: "
                "put the tenant key there first"
            )
        what = f"manager key {stored.label} (credential {manager.credential!r})"
        guard_environment(self._cred.name, self._cred.environment, stored, what)
        where = f"the manager key in store {manager.store!r} (credential {manager.credential!r})"
        guard_values(self._cred.name, stored, where)
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
        return f"create a new {environment} key for {self.investor_id} with {self._manager.credential}'s key"

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
            raise type(exc)(
                f"{exc.detail}. That is the manager key of {self._cred.name}: credential {manager.credential!r}, kept "
                f"in store {manager.store!r} ({manager.describe()}). Put a working tenant key there (Bluum's "
                "dashboard, Settings → API Keys), then run the command again",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                trace_id=exc.trace_id,
            ) from exc
