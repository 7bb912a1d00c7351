"""Reads and check-and-set writes of KV v2 secrets on one mount: the only place the Vault store calls hvac for data.

Why a unit of its own: every read must say which version it saw and every write must name that version (so that two
writers never both win, and so that a mount with `cas_required` just works), every call must go through the same
error translation and the same "log in again once after an expired login token", and a deleted latest version must
be told apart from a path that never existed. The store above it then only decides what to write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import hvac
from hvac import exceptions as vault

from backends.vault_auth import VaultSession
from backends.vault_errors import translated
from rotator.errors import StoreNotFound

__all__ = ["KvMount", "KvVersion"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KvVersion:
    """The latest version of a KV v2 secret as read: its data (None when that version is deleted) and its number
    (0 when the path holds no version at all, which is what a create-only write names)."""

    data: dict[str, Any] | None
    version: int


class KvMount:
    """One KV v2 mount, reached through a logged-in session."""

    def __init__(self, session: VaultSession, mount: str, *, store: str) -> None:
        self._session = session
        self._mount = mount
        self._store = store

    @property
    def mount(self) -> str:
        """Where the KV v2 engine is mounted."""
        return self._mount

    def where(self, path: str) -> str:
        """`mount/path`, as people write it with `bao kv get -mount=...`; for messages."""
        return f"{self._mount}/{path}"

    def read(self, path: str, *, action: str) -> KvVersion:
        """The latest version at `path` (KvVersion(None, 0) when there is none)."""

        def call(client: hvac.Client) -> KvVersion:
            try:
                response = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self._mount, raise_on_deleted_version=False
                )
            except vault.InvalidPath as exc:
                if exc.errors:  # Vault lists errors for a missing mount ("no handler for route"), none for a path
                    raise
                return KvVersion(None, 0)
            body = response.get("data") or {}
            metadata = body.get("metadata") or {}
            version = metadata.get("version")
            if not isinstance(version, int) or version < 1:
                raise StoreNotFound(
                    f"{action} {self.where(path)}: Vault's answer has no version number; is `{self._mount}` a KV "
                    "version 2 mount? (`bao secrets enable -version=2 -path=... kv`)",
                    store=self._store,
                )
            data = body.get("data")
            deleted = bool(metadata.get("deletion_time")) or bool(metadata.get("destroyed"))
            return KvVersion(None if deleted or not isinstance(data, dict) else data, version)

        return self._call(action, path, call)

    def write(self, path: str, data: dict[str, Any], *, cas: int, action: str) -> int:
        """Write `data` as the new latest version if the latest is still `cas` (0: only if none exists).

        A write after someone else's raises StoreConflict and writes nothing. Returns the new version's number.
        """

        from rotator.lease_clock import before_request  # here: its import line stays clear of the store's own

        def call(client: hvac.Client) -> int:
            before_request(0.0)  # a runner frozen past its lease since its last renewal writes nothing
            response = client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self._mount
            )
            version = (response.get("data") or {}).get("version")
            return version if isinstance(version, int) else cas + 1

        return self._call(action, path, call)

    def _call(self, action: str, path: str, call: Callable[[hvac.Client], T]) -> T:
        with translated(
            action,
            self.where(path),
            store=self._store,
            address=self._session.address,
            token_valid=self._session.token_valid,
        ):
            try:
                return call(self._session.client())
            except vault.Forbidden:
                # A login token that ran out is replaced once; a narrow policy or a dead plain token is reported.
                if self._session.token_valid() is not False or not self._session.log_in_again():
                    raise
            return call(self._session.client())
