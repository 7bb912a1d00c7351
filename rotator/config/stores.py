"""The `[stores.NAME]` tables: which store types exist, the options of the built-in ones, and where each store writes.

A store's options are handed to its factory (backends/) as keyword arguments, so they are checked here only as far
as the rotator knows them: the built-in types' option names (a typo is caught with a suggestion rather than surfacing
as a TypeError when the store is built), the env type's file paths and prefix, and that no two stores write to one
place. A third-party type's options pass through unchecked. The `reload` and `consumers` arrays are the rotator's, not
the store's (rotator/config/reloads.py, rotator/config/consumers.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from rotator.config.doppler import DOPPLER_OPTIONS, DOPPLER_TYPE, doppler_locations, doppler_options_ok
from rotator.config.tables import Problems, Table, did_you_mean, list_names, named_tables, show
from rotator.core.urls import url_problem

if TYPE_CHECKING:
    from rotator.config.consumers import Consumer
    from rotator.config.reloads import ReloadAction

__all__ = [
    "DEFAULT_STATE_DIR",
    "FILE_PATH_STORE_TYPES",
    "KNOWN_STORE_OPTIONS",
    "RESERVED_STORE_OPTIONS",
    "StoreConfig",
    "parse_stores",
]

FILE_PATH_STORE_TYPES: Final = frozenset({"env"})
"""Store types whose `path` option is a file, resolved against the config file's folder.

Only these: for other types `path` may mean something else entirely (a Vault KV path, for one), so
their options are passed through exactly as written.
"""

KNOWN_STORE_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "env": ("path", "prefix", "reader", "fields", "state_dir", "write_mode"),
        "vault": (
            "path",
            "mount",
            "state_path",
            "url",
            "namespace",
            "ca_cert",
            "timeout",
            "max_attempts",
            "auth",
            "auth_mount",
            "role",
            "token_file",
            "role_id_file",
            "secret_id_file",
            "jwt_file",
            "aws_region",
            "aws_header_value",
            "fields",
            "field_names",
            "allow_insecure_http",
        ),
        "aws": ("secret_id", "region", "ledger_table", "fields", "field_names", "timeout"),
        DOPPLER_TYPE: DOPPLER_OPTIONS,
    }
)
"""Options of built-in store types, so a typo (`prefx`) is caught here with a suggestion instead of surfacing as a
TypeError when the store is built. Third-party types are not listed: their options pass through unchecked.
Keep in step with the constructors in backends/ (the engine supplies `name`, `environment` and `base_url`)."""
DEFAULT_STATE_DIR: Final = "rotator-state"
"""Where file stores keep their stages and record (secrets), relative to rotator.toml: the rotator's folder, never
the application's, so an application's `git add -A` or image build cannot pick the secrets up."""

RESERVED_STORE_OPTIONS: Final = ("name",)
RELOAD_KEY: Final = "reload"
"""reloads.RELOAD_KEY, named here too: a store without reload actions never imports rotator/config/reloads.py."""
CONSUMERS_KEY: Final = "consumers"
"""consumers.CONSUMERS_KEY, likewise: a store without consumers never imports rotator/config/consumers.py."""
"""Keyword arguments the engine passes to every store factory itself: a store's name is its table's name."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """One `[stores.NAME]` table: a place that holds one credential.

    `options` is everything in the table except `type`, handed to the store factory as keyword arguments.
    For file-based types (FILE_PATH_STORE_TYPES) `path` is already an absolute `Path`, resolved against the
    config file's folder, so the daemon and the Lambda find the same file whatever their working directory.
    """

    name: str
    type: str
    options: Mapping[str, Any]
    reload: tuple[ReloadAction, ...] = ()
    """What makes the applications reading this store load a new key (rotator/config/reloads.py); never an option."""
    consumers: tuple[Consumer, ...] = ()
    """The applications reading this store, asked which key they use before the old key is revoked
    (rotator/config/consumers.py); never an option."""


def parse_stores(
    value: object, *, base_dir: Path, store_types: Collection[str], problems: Problems
) -> dict[str, StoreConfig]:
    """Each [stores.NAME] table into a StoreConfig; a table with a problem is left out (the problem recorded)."""
    stores: dict[str, StoreConfig] = {}
    for name, raw in named_tables(value, "stores", problems).items():
        store = _parse_store(name, raw, base_dir=base_dir, store_types=store_types, problems=problems)
        if store is not None:
            stores[name] = store
    _check_same_location(stores, problems)
    return stores


def _parse_store(
    name: str, raw: Mapping[str, Any], *, base_dir: Path, store_types: Collection[str], problems: Problems
) -> StoreConfig | None:
    """One store table; None when it has a problem. Checks stop at a table's first problem of each kind."""
    table = Table(raw, f"stores.{name}", problems)
    store_type = _store_type(table, store_types)
    if store_type is None:
        return None
    known_options = KNOWN_STORE_OPTIONS.get(store_type)
    if known_options is not None:
        before = len(problems.items)
        table.check_keys(("type", *known_options, RELOAD_KEY, CONSUMERS_KEY))
        if len(problems.items) > before:
            return None
    reserved = [key for key in RESERVED_STORE_OPTIONS if key in raw]
    for key in reserved:
        table.problem(key, "is reserved: a store is named by its table, [stores.NAME]", f"remove {key}")
    if reserved:
        return None
    reload = _reload(table, base_dir)
    consumers = _consumers(table, name, base_dir)
    if reload is None or consumers is None:
        return None
    options = {key: option for key, option in raw.items() if key not in ("type", RELOAD_KEY, CONSUMERS_KEY)}
    if store_type in FILE_PATH_STORE_TYPES and not _file_paths(table, name, raw, base_dir, options):
        return None
    if store_type in KNOWN_STORE_OPTIONS and not _fields_ok(table, raw):
        return None
    if store_type == "env" and not (_reader_ok(table, raw) and _prefix_ok(table, raw)):
        return None
    if store_type == "vault" and not _vault_address_ok(table, raw):
        return None
    if store_type == DOPPLER_TYPE and not doppler_options_ok(table, raw):
        return None
    return StoreConfig(
        name=name, type=store_type, options=MappingProxyType(options), reload=reload, consumers=consumers
    )


def _reload(table: Table, base_dir: Path) -> tuple[ReloadAction, ...] | None:
    """The store's reload actions: () without a `reload` key, else what rotator/config/reloads.py makes of it.
    Imported only then: `rotator status` over stores without reloads stays as fast as before they existed."""
    if table.data.get(RELOAD_KEY) is None:
        return ()
    from rotator.config.reloads import parse_reload

    return parse_reload(table, base_dir)


def _consumers(table: Table, name: str, base_dir: Path) -> tuple[Consumer, ...] | None:
    """The store's consumers: () without a `consumers` key, else what rotator/config/consumers.py makes of it
    (imported only then, as reloads)."""
    if table.data.get(CONSUMERS_KEY) is None:
        return ()
    from rotator.config.consumers import parse_consumers

    return parse_consumers(table, name, base_dir)


def _store_type(table: Table, store_types: Collection[str]) -> str | None:
    """`type`, one of the installed store types; None when it is missing or unknown."""
    known_types = sorted(store_types)
    store_type = table.text(
        "type",
        example=f'"{known_types[0] if known_types else "env"}"',
        required=True,
        why=" (which kind of store this is)",
    )
    if store_type is None or store_type in store_types:
        return store_type
    table.problem(
        "type",
        f"names no installed store type{did_you_mean(store_type, known_types)}",
        f"use one of the installed types: {list_names(known_types)}; a third-party store must be installed "
        "in this environment and register itself under the 'rotator.backends' entry-point group",
    )
    return None


def _file_paths(table: Table, name: str, raw: Mapping[str, Any], base_dir: Path, options: dict[str, Any]) -> bool:
    """A file store's `path` and `state_dir`, resolved against the file's folder into `options`; False on a problem."""
    file_path = table.text("path", example=f'"{name}.env"', required=True, why=" (the file this store writes)")
    if file_path is None:
        return False
    resolved = Path(file_path).expanduser()
    options["path"] = resolved if resolved.is_absolute() else (base_dir / resolved).absolute()
    state_dir = table.text("state_dir", example='"/var/lib/bluum-rotator"') if "state_dir" in raw else None
    if "state_dir" in raw and state_dir is None:
        return False
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser()
    options["state_dir"] = state if state.is_absolute() else (base_dir / state).absolute()
    return True


def _prefix_ok(table: Table, raw: Mapping[str, Any]) -> bool:
    """An env store's `prefix` must be able to start an environment variable name (or be empty)."""
    if "prefix" not in raw:
        return True
    prefix = raw["prefix"]
    if isinstance(prefix, str) and (not prefix or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix)):
        return True
    table.problem(
        "prefix",
        "cannot start an environment variable name",
        'use letters, digits and "_", not starting with a digit, e.g. prefix = "BLUUM_" (or "" for none)',
    )
    return False


def _reader_ok(table: Table, raw: Mapping[str, Any]) -> bool:
    """An env store's `reader`, checked here so that a wrong one is named without its text (a secret pasted there
    would otherwise be echoed by the store when it is built)."""
    from backends.dotenv_lines import Reader

    readers = [reader.value for reader in Reader]
    if "reader" not in raw or raw["reader"] in readers:
        return True
    value = raw["reader"]
    hint = did_you_mean(value, readers) if isinstance(value, str) else ""
    table.problem("reader", f"is not one of {', '.join(readers)}{hint}", 'write reader = "dotenv" (the default)')
    return False


def _fields_ok(table: Table, raw: Mapping[str, Any]) -> bool:
    """A built-in store's `fields`: an array of the optional field names, each wrong one named by its position."""
    from backends.key_fields import OPTIONAL_FIELDS

    if "fields" not in raw:
        return True
    value = raw["fields"]
    example = f'write fields = ["{OPTIONAL_FIELDS[0]}"] (any of {", ".join(OPTIONAL_FIELDS)}), or remove it'
    if not isinstance(value, list):
        table.problem("fields", f"expected an array of field names, got {show(value)}", example)
        return False
    wrong = [index for index, field in enumerate(value) if field not in OPTIONAL_FIELDS]
    for index in wrong:
        field = value[index]
        hint = did_you_mean(field, OPTIONAL_FIELDS) if isinstance(field, str) else ""
        table.problem(f"fields[{index}]", f"is not one of {', '.join(OPTIONAL_FIELDS)}{hint}", example)
    return not wrong


def _vault_address_ok(table: Table, raw: Mapping[str, Any]) -> bool:
    """A Vault `url` the token may travel to: https, or http to loopback, or http anywhere when the deployer set
    `allow_insecure_http = true` (VAULT_ADDR, read when the store is built, is checked there the same way)."""
    allow = raw.get("allow_insecure_http", False)
    if not isinstance(allow, bool):
        table.problem("allow_insecure_http", f"{show(allow)} is not true or false", "write allow_insecure_http = true")
        return False
    url = raw.get("url")
    if url is None:
        return True
    problem = url_problem(url.strip(), allow_plain_http=allow) if isinstance(url, str) else "is not a string"
    if problem is None:
        return True
    table.problem(
        "url",
        problem,
        'use https:// (e.g. url = "https://vault.example.com:8200", with `ca_cert` for a private CA) or a loopback '
        "address; on a network you trust, plain http is allowed with allow_insecure_http = true in this table",
    )
    return False


_SAME_PLACE: Final = {
    "env": "the same file",
    "vault": "the same Vault secret",
    DOPPLER_TYPE: "the same Doppler secrets or stage document",
}
"""How a message names the place two stores share, by store type."""


def _check_same_location(stores: Mapping[str, StoreConfig], problems: Problems) -> None:
    """Two store tables naming one place would hold two credentials in one spot: a store holds one key."""
    seen: dict[str, str] = {}
    for store in stores.values():
        for location in _locations(store):
            earlier = seen.get(location)
            if earlier is None or earlier == store.name:
                seen[location] = store.name
                continue
            same = _SAME_PLACE.get(store.type, "the same type and options")
            problems.add(
                f"stores.{store.name}",
                f"points at the same place as stores.{earlier} ({same})",
                "give each store its own location (env stores: their own file, since the stage sidecar and the lock "
                "are kept per file; Vault stores: their own path and state_path; Doppler stores: their own prefix and "
                "state_secret)",
            )
            break


def _locations(store: StoreConfig) -> list[str]:
    """What identifies where a store writes. An env store's sidecar and lock are per file, whatever the prefix; a
    Vault store writes two KV secrets (the path applications read and its stage document), at the address it would
    use (`url`, else VAULT_ADDR)."""
    options = store.options
    if store.type in FILE_PATH_STORE_TYPES:
        return [f"{store.type}:{options.get('path')}"]
    if store.type == "vault":
        address = str(options.get("url") or os.environ.get("VAULT_ADDR", "")).strip().rstrip("/").lower()
        namespace = str(options.get("namespace") or os.environ.get("VAULT_NAMESPACE", "")).strip("/")
        mount = str(options.get("mount") or "secret").strip("/")
        path = str(options.get("path", "")).strip("/")
        state_path = str(options.get("state_path") or f"bluum-rotator/{path}").strip("/")
        return [f"vault:{address}|{namespace}|{mount}|{where}" for where in (path, state_path)]
    if store.type == DOPPLER_TYPE:
        return doppler_locations(options)
    return [f"{store.type}:{sorted((key, repr(value)) for key, value in options.items())!r}"]
