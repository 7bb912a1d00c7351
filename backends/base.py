"""The contract every secret store keeps, so the engine never knows which store it talks to.

A store holds the stages of ONE credential: CURRENT (what applications read), PENDING (a new key, tagged
with the rotation token that made it), PREVIOUS (the key CURRENT replaced, still active at Bluum during
the overlap). The primary store of a credential is also its ledger (`backends.ledger.Ledger`): the rotation
record (no secrets in it) and the lease.

The calls are shaped after AWS Secrets Manager's staging labels and Vault KV v2's check-and-set:
- every mutating call is idempotent for the same token, so a crashed rotation can simply call it again;
- `promote` and `restore_previous` are single atomic moves in stores that have them (a label move, a CAS
  write), and in the env store a sidecar write followed by a re-projection of the dotenv file.

Errors: raise the `rotator.core.errors.Store*` classes only, chained (`raise ... from exc`) to the SDK error,
and never put a secret value in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from backends.stages import Cleared, Promotion, Rollback, Staged
from rotator.core.errors import ConfigError
from rotator.core.model import Stage, StoredKey

ENTRY_POINT_GROUP = "rotator.backends"
log = logging.getLogger("rotator.store")


@runtime_checkable
class Fingerprinted(Protocol):
    """A store that can tell cheaply whether what it holds may have changed (a dotenv file: its `stat`).

    Before a revoke every configured store is read, so that no key some application holds is revoked. In a fleet
    of N credentials that is N reads per rotation; a store with a fingerprint is read again only when it changed.
    """

    def fingerprint(self) -> object:
        """A value that differs whenever the store's content may have changed (equal values: it did not)."""
        ...


@runtime_checkable
class ReadAtOnce(Protocol):
    """A store that reads all its stages in one go (the Vault store: one read of the stage document and one of the
    path applications read, where three `read` calls make up to three of that path).

    A holdings check (before a revoke, at a rotation's start) reads every stage of every store; from one reading it
    sees one moment of the store, and a remote store is asked once."""

    def read_stages(self) -> dict[Stage, StoredKey]:
        """Every stage that holds a key, as `read` gives each; a stage `read` finds missing (StoreNotFound) is left
        out. Other errors are raised, as by `read`."""
        ...


@runtime_checkable
class WriteChecked(Protocol):
    """A store that can tell, before a rotation changes anything, that it must not be written (a dotenv file in a
    folder other users can write, a hard-linked file): the rotation is refused (exit 2) instead of stopping half-way."""

    def check_writable(self) -> None:
        """Raise a StoreError (saying why and the fix) when a rotation must not write this store."""
        ...

    def check_unchanged(self, token: str) -> None:
        """Raise when what rotation `token` pinned at its start has changed since (a file swapped for a link):
        called before anything is read through the store's path, so a swapped target is refused, never read."""
        ...


@runtime_checkable
class SecretStore(Protocol):
    """One credential's location in one secret store."""

    name: str
    """The store's name in rotator.toml; used in messages."""

    def describe(self) -> str:
        """Where the secret lives (a path, an ARN, a Vault path): for messages, never a secret."""
        ...

    def read(self, stage: Stage) -> StoredKey | None:
        """The key at `stage`, or None when that stage is empty.

        Reading CURRENT reads what applications read (the dotenv file, AWSCURRENT, the latest KV version).
        Raises StoreNotFound when the secret itself does not exist, StoreCorrupt when it cannot be parsed.
        """
        ...

    def put_pending(self, key: StoredKey) -> Staged:
        """Store `key` as PENDING under `key.token`. Calling again with the same token and key does nothing,
        also when that token has already been promoted to CURRENT (a resumed deploy calls it again).

        A PENDING of another token is replaced (that rotation was abandoned: the engine revokes its key).
        The same token with a different key raises StoreConflict. Returns what changed.
        """
        ...

    def promote(self, token: str) -> Promotion:
        """Atomically: PENDING(token) becomes CURRENT, the old CURRENT becomes PREVIOUS, PENDING empties.

        Idempotent: when CURRENT already carries `token`, it only makes sure readers see it.
        Raises StoreConflict when neither PENDING nor CURRENT carries `token`. Returns what changed.
        """
        ...

    def restore_previous(self, token: str) -> Rollback:
        """Rollback: when CURRENT carries `token`, PREVIOUS becomes CURRENT again and PREVIOUS empties.

        A PENDING carrying `token` (staged in a target, never promoted) is dropped. CURRENT is left alone when
        it does not carry `token`. CURRENT carrying `token` with PREVIOUS empty raises StoreConflict.
        Returns what changed.
        """
        ...

    def clear_previous(self, token: str) -> Cleared:
        """Forget PREVIOUS (its key has been revoked at Bluum) when CURRENT carries `token`; otherwise, or when it is
        empty, nothing changes. Returns what changed."""
        ...

    def close(self) -> None:
        """Let go of connections, descriptors and any lease this handle still holds."""
        ...


StoreFactory = Callable[..., SecretStore]

BUILT_IN_STORES: dict[str, str] = {
    "env": "backends.env:EnvStore",
    "vault": "backends.vault:VaultStore",
    "aws": "backends.aws:AwsStore",
    "doppler": "backends.doppler:DopplerStore",
}
"""Store types that ship with bluum-rotator. Listed here, not only as entry points, so they win over any
plug-in claiming the same name (entry points come in sys.path order) and so they work where no package
metadata is installed (a Lambda zip)."""


def load_store_factories(needed: Collection[str] | None = None) -> dict[str, StoreFactory]:
    """Store types by name: the built-ins, then every `rotator.backends` entry point, loaded lazily.

    A plug-in that claims a built-in name (or a name an earlier plug-in took) is ignored with a warning.
    `needed`: the types a configuration names. When each is built in, the entry points are not scanned: no plug-in
    can take a built-in name, so the scan could change nothing, and reading package metadata (importlib.metadata,
    zipfile, email) costs a command like `rotator status` about a tenth of its time.
    """
    factories: dict[str, StoreFactory] = {name: _lazy(_importer(target)) for name, target in BUILT_IN_STORES.items()}
    if needed is not None and set(needed) <= factories.keys():
        return factories
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in factories:
            if BUILT_IN_STORES.get(entry.name) != entry.value:
                log.warning(
                    "ignoring store plug-in %r (%s): the name is taken",
                    entry.name,
                    entry.value,
                    extra={"fields": {"store_type": entry.name}},
                )
            continue
        factories[entry.name] = _lazy(entry.load)
    return factories


def _importer(target: str) -> Callable[[], Any]:
    module_name, _, attribute = target.partition(":")

    def load() -> Any:  # noqa: ANN401 - a store class
        return getattr(import_module(module_name), attribute)

    return load


def _lazy(load: Callable[[], Any]) -> StoreFactory:
    def factory(*args: Any, **kwargs: Any) -> SecretStore:  # noqa: ANN401 - plug-in constructors vary
        cls = load()
        store = cls(*args, **kwargs)
        if not isinstance(store, SecretStore):
            raise ConfigError(f"store plug-in {cls!r} does not implement the SecretStore protocol")
        return store

    return factory
