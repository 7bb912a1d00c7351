"""The fields applications read in a secret (a Vault KV path, an AWS secret's JSON), and how a key maps onto them.

Why a unit of its own: what a Vault Agent template, the CSI provider or External Secrets Operator reads is a flat map
of fields, and teams name them their own way (`api_key` or `BLUUM_API_KEY`) and keep other secrets beside them.
Reading a key out of such a map and writing one into it (keeping every field that is not ours, adding optional
fields only when asked) is the same rule for every read and write, and deserves tests without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from rotator.core.errors import ConfigError, StoreCorrupt, StoreNotFound
from rotator.core.model import Environment, StoredKey
from rotator.core.secret import Secret

__all__ = ["FIELDS", "OPTIONAL_FIELDS", "FieldMap"]

FIELDS: Final = ("api_key", "api_secret", "key_id", "environment", "base_url")
OPTIONAL_FIELDS: Final = ("key_id", "environment", "base_url")
"""Fields added to the secret only when the store's `fields` option names them (fields the secret already has are
always kept in step with the key)."""


class FieldMap:
    """Our fields at one path: their names there, which optional ones to add, and the credential's fallbacks."""

    def __init__(
        self,
        store: str,
        *,
        fields: Sequence[str] = (),
        field_names: Mapping[str, str] | None = None,
        environment: Environment | None = None,
        base_url: str | None = None,
        fix: str = "fix it with `bao kv patch`",
    ) -> None:
        """`fix`: how a person mends a field that is not a usable string where this store keeps it."""
        self._store = store
        self._fix = fix
        self._extra = _checked_fields(store, fields)
        self._names = _checked_field_names(store, field_names)
        self._environment = Environment(environment) if environment is not None else None
        self._base_url = base_url

    def ours(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Only our fields of `data` (to tell a change to the key from a change to the other secrets beside it)."""
        return {self._names[field]: data.get(self._names[field]) for field in FIELDS}

    def key_from(self, data: Mapping[str, Any], where: str) -> StoredKey:
        """The key `data` holds. StoreNotFound when it holds neither key nor secret yet; StoreCorrupt when a field of
        ours is not a usable string."""
        api_key, api_secret = self._names["api_key"], self._names["api_secret"]
        if api_key not in data and api_secret not in data:
            raise StoreNotFound(
                f"{where} has no {api_key} or {api_secret} field yet: put the key applications use there, or give "
                "the credential its first key with `rotator enroll`",
                store=self._store,
            )

        def text(field: str, *, required: bool) -> str | None:
            value = data.get(self._names[field])
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise StoreCorrupt(
                    f"{where}: field {self._names[field]!r} must be a non-empty string: {self._fix}",
                    store=self._store,
                )
            return value

        environment = self._environment
        named = text("environment", required=False)
        if named is not None:
            try:
                environment = Environment.from_bluum(named)
            except ValueError:
                raise StoreCorrupt(
                    f"{where}: field {self._names['environment']!r} must be sandbox or production: fix the value",
                    store=self._store,
                ) from None
        return StoredKey(
            api_key=text("api_key", required=True) or "",
            api_secret=Secret(text("api_secret", required=True) or ""),
            key_id=text("key_id", required=False),
            environment=environment,
            base_url=text("base_url", required=False) or self._base_url,
        )

    def wanted(self, key: StoredKey, base: Mapping[str, Any]) -> dict[str, Any]:
        """`base` (the secret's other fields kept) with our fields showing `key`; a field the key lacks is removed."""
        environment = key.environment or self._environment
        values: dict[str, str | None] = {
            "api_key": key.api_key,
            "api_secret": key.api_secret.reveal(),
            "key_id": key.key_id,
            "environment": environment.value if environment is not None else None,
            "base_url": key.base_url or self._base_url,
        }
        wanted = dict(base)
        for field, value in values.items():
            name = self._names[field]
            if field in OPTIONAL_FIELDS and field not in self._extra and name not in base:
                continue
            if value is None:
                wanted.pop(name, None)
            else:
                wanted[name] = value
        return wanted


def _checked_fields(store: str, fields: Sequence[str]) -> frozenset[str]:
    if isinstance(fields, str) or any(f not in OPTIONAL_FIELDS for f in fields):  # what was written is not echoed
        raise ConfigError(
            f"store {store!r}: fields may name only {', '.join(OPTIONAL_FIELDS)} (API key and secret are always "
            "written), as an array"
        )
    return frozenset(fields)


def _checked_field_names(store: str, field_names: Mapping[str, str] | None) -> dict[str, str]:
    names = {field: field for field in FIELDS}
    if field_names is None:
        return names
    if not isinstance(field_names, Mapping):
        raise ConfigError(f'store {store!r}: field_names must be a table, e.g. field_names = {{ api_key = "KEY" }}')
    for field, name in field_names.items():
        if field not in FIELDS:
            raise ConfigError(f"store {store!r}: field_names may rename {', '.join(FIELDS)}, not {field!r}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"store {store!r}: field_names.{field} must be a non-empty field name")
        names[field] = name
    if len(set(names.values())) != len(names):
        raise ConfigError(f"store {store!r}: field_names gives two fields the same name; give each its own")
    return names
