"""Reads and check-and-set writes of KV v2 secrets on one mount: the only place the Vault store calls hvac for data.

Why a unit of its own: every read must say which version it saw and every write must name that version (so that two
writers never both win, and so that a mount with `cas_required` just works), every call must go through the same
error translation and the same "log in again once after an expired login token", and a deleted latest version must
be told apart from a path that never existed. The store above it then only decides what to write.

Every call is retried through a store hiccup (`backends.vault.retry`: 500, 502, 503 but sealed, resets, timeouts). A
write is retried only after reading back the version it would have made: an answer can be lost after Vault applied
the write, and a check-and-set write sent again would then fail its own condition and report someone else's change.
A write that finds exactly its own data at the version it named plus one succeeded; once that version holds anything
else, this write can never apply, and the conflict is real.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import hvac
from hvac import exceptions as vault

from backends.vault.auth import VaultSession
from backends.vault.errors import CAS_MISMATCH, WriteOutcomeUnknown, translated
from backends.vault.retry import VaultRetry, is_transient, may_have_applied
from rotator.core.errors import StoreConflict, StoreError, StoreNotFound

__all__ = ["KvMount", "KvVersion"]

log = logging.getLogger("rotator.store.vault")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KvVersion:
    """The latest version of a KV v2 secret as read: its data (None when that version is deleted) and its number
    (0 when the path holds no version at all, which is what a create-only write names)."""

    data: dict[str, Any] | None
    version: int


class KvMount:
    """One KV v2 mount, reached through a logged-in session."""

    def __init__(self, session: VaultSession, mount: str, *, store: str, retry: VaultRetry | None = None) -> None:
        self._session = session
        self._mount = mount
        self._store = store
        self._retry = retry or VaultRetry()

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

        A write after someone else's raises StoreConflict and writes nothing. Returns the new version's number. A
        write whose answer was lost (or that met a conflict) is read back first: finding exactly `data` at version
        `cas + 1` means it was applied, and it is not sent again.
        """
        wanted = json.loads(json.dumps(data))  # as Vault will give it back

        from rotator.core.lease_clock import before_request  # here: its import line stays clear of the store's own

        def call(client: hvac.Client) -> int:
            before_request(0.0)  # a runner frozen past its lease since its last renewal writes nothing
            response = client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self._mount
            )
            version = (response.get("data") or {}).get("version")
            return version if isinstance(version, int) else cas + 1

        sent: list[bool] = []
        """One entry per failed attempt that may have been applied: then a give-up cannot say "not written"."""

        def attempt() -> int:
            try:
                return self._call_once(action, path, call)
            except StoreError as exc:
                conflict = isinstance(exc, StoreConflict) and CAS_MISMATCH in str(exc)
                if not conflict and not is_transient(exc):
                    raise
                if may_have_applied(exc):
                    sent.append(True)
                try:
                    landed = self._landed(path, wanted, cas, action=action)
                except StoreError as unread:
                    raise _ReadBackFailed(unread) from exc  # what cannot be read cannot be written: no more attempts
                if landed:
                    log.info(
                        "%s %s: found the write applied (version %d) after a lost answer or a conflict",
                        action,
                        path,
                        cas + 1,
                    )
                    return cas + 1
                if landed is None:
                    raise WriteOutcomeUnknown(
                        f"{action} {self.where(path)}: the write's answer was lost, and version {cas + 1} can no "
                        "longer be read (the mount keeps too few versions), so whether it was applied before a "
                        "later write cannot be told. Nothing more was done. Run `rotator status`, then `rotator "
                        "resume`",
                        store=self._store,
                    ) from exc
                raise  # not applied: a transient failure is tried again; a conflict is someone else's write

        try:
            return self._retry.run(f"{action} {self.where(path)}", attempt)
        except (StoreError, _ReadBackFailed) as failure:
            exc = failure.error if isinstance(failure, _ReadBackFailed) else failure
            if not sent or not is_transient(exc):
                raise exc from exc.__cause__
            raise WriteOutcomeUnknown(
                f"{action} {self.where(path)}: the write's answer was lost, and Vault at {self._session.address} "
                "stopped answering before it could be read back, so this runner cannot tell whether the write was "
                "applied (the lease may be held by this runner, the record may name a new rotation). Nothing more "
                "was done. Once Vault answers, `rotator status` shows what is there: `rotator resume` finishes a "
                "rotation this write started, or run the command again (from this machine either takes over this "
                "runner's lease at once; elsewhere the lease ends at its expiry)",
                store=self._store,
            ) from exc

    def _landed(self, path: str, wanted: dict[str, Any], cas: int, *, action: str) -> bool | None:
        """Whether version `cas + 1` at `path` holds exactly `wanted` (None: that version is gone, and later ones
        exist, so it cannot be told). Read with the same retries as every read."""

        def call(client: hvac.Client) -> bool | None:
            try:
                response = client.secrets.kv.v2.read_secret_version(
                    path=path, version=cas + 1, mount_point=self._mount, raise_on_deleted_version=False
                )
            except vault.InvalidPath as exc:
                if exc.errors:
                    raise
                return None if self._latest_version(client, path) > cas else False
            body = response.get("data") or {}
            return body.get("data") == wanted

        return self._retry.run(
            f"reading back {self.where(path)}", lambda: self._call_once(f"{action} (reading it back)", path, call)
        )

    def _latest_version(self, client: hvac.Client, path: str) -> int:
        try:
            response = client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self._mount, raise_on_deleted_version=False
            )
        except vault.InvalidPath as exc:
            if exc.errors:
                raise
            return 0
        version = ((response.get("data") or {}).get("metadata") or {}).get("version")
        return version if isinstance(version, int) else 0

    def _call(self, action: str, path: str, call: Callable[[hvac.Client], T]) -> T:
        """A read, retried through hiccups."""
        return self._retry.run(f"{action} {self.where(path)}", lambda: self._call_once(action, path, call))

    def _call_once(self, action: str, path: str, call: Callable[[hvac.Client], T]) -> T:
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


class _ReadBackFailed(Exception):
    """A write's read-back failed: the write's retries stop there (`error` is what the read met)."""

    def __init__(self, error: StoreError) -> None:
        super().__init__(str(error))
        self.error = error
