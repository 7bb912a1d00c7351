"""A `[stores.NAME]` table of type "doppler": its options, checked, and the rule that Doppler is never a primary.

Why a module of its own: the Doppler store's options (project, config, the variable holding the token, where its
stages live) are checked once here, with the fix in each message, and the one rule that spans two tables (a
credential's `store` may not be a Doppler store) is stated where Doppler's other rules are. The store itself
(`backends.doppler`) checks the same values when it is built; this module only makes `rotator check` and every
command name all of a file's problems at once, without importing httpx.

Why never a primary: the primary holds the rotation record and the lease (`backends.ledger`), which need a
compare-and-set that two runners cannot both win. Doppler offers none (an update sets values, whoever wrote last
wins), so a Doppler store is only ever a deploy target, written under the lease its credential's primary holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

from rotator.config.tables import Problems, Table, show
from rotator.core.urls import url_problem


class _Credential(Protocol):
    """What the primary rule reads of a `CredentialConfig` (a Protocol: rotator/config/stores.py imports this
    module, so naming its classes here would make a circle)."""

    @property
    def store(self) -> str: ...


class _Store(Protocol):
    @property
    def type(self) -> str: ...


__all__ = ["DOPPLER_OPTIONS", "DOPPLER_TYPE", "check_doppler_primaries", "doppler_locations", "doppler_options_ok"]

DOPPLER_TYPE: Final = "doppler"
DOPPLER_OPTIONS: Final = (
    "project",
    "config",
    "token_env",
    "url",
    "state_config",
    "state_secret",
    "prefix",
    "fields",
    "field_names",
    "timeout",
    "max_attempts",
    "allow_insecure_http",
)
"""The options of a Doppler store's table (`backends.doppler.store.DopplerStore`'s keyword arguments)."""

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]*")
_PREFIX: Final = re.compile(r"[A-Z_][A-Z0-9_]*|")
_DOPPLER_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
_TOKEN_LOOK: Final = re.compile(r"dp\.(st|pt|sa|ct|said)\.", re.IGNORECASE)


def doppler_options_ok(table: Table, raw: Mapping[str, Any]) -> bool:
    """Every option of a Doppler store's table; False (each problem recorded) when one is wrong."""
    before = len(table.problems.items)
    for key in ("project", "config"):
        value = table.text(key, example=f'"{"backend" if key == "project" else "prd"}"', required=True)
        if value is not None and not _DOPPLER_NAME.fullmatch(value):
            table.problem(key, "is not a Doppler name", f'write the {key} as Doppler shows it, e.g. {key} = "prd"')
    if "state_config" in raw:
        value = table.text("state_config", example='"prd_rotator"')
        if value is not None and not _DOPPLER_NAME.fullmatch(value):
            table.problem("state_config", "is not a Doppler config name", 'e.g. state_config = "prd_rotator"')
    _token_env_ok(table, raw)
    _names_ok(table, raw)
    _url_ok(table, raw)
    if "timeout" in raw:
        table.positive_number("timeout", 10.0, example="10")
    if "max_attempts" in raw:
        table.count("max_attempts", 5, limit=20, example="5")
    return len(table.problems.items) == before


def _token_env_ok(table: Table, raw: Mapping[str, Any]) -> None:
    """`token_env` names an environment variable; a token pasted there is refused and never echoed."""
    if "token_env" not in raw:
        return
    value = raw["token_env"]
    if isinstance(value, str) and _TOKEN_LOOK.match(value):
        table.problem(
            "token_env",
            "holds a Doppler token, not the name of a variable (the token was not shown)",
            "revoke that token (it is in a file now), put a new one in a variable and write "
            'token_env = "DOPPLER_TOKEN"',
        )
        return
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        table.problem("token_env", "is not an environment variable name", 'write token_env = "DOPPLER_TOKEN"')


def _names_ok(table: Table, raw: Mapping[str, Any]) -> None:
    if "state_secret" in raw:
        value = raw["state_secret"]
        if not isinstance(value, str) or not _SECRET_NAME.fullmatch(value):
            table.problem(
                "state_secret",
                f"{show(value)} is not a Doppler secret name (uppercase letters, digits, underscores)",
                'write state_secret = "BLUUM_ROTATOR_STATE"',
            )
    if "prefix" in raw:
        value = raw["prefix"]
        if not isinstance(value, str) or not _PREFIX.fullmatch(value):
            table.problem(
                "prefix",
                "cannot start a Doppler secret name (uppercase letters, digits, underscores, no digit first)",
                'write prefix = "BLUUM_" (or "" for none)',
            )


def _url_ok(table: Table, raw: Mapping[str, Any]) -> None:
    allow = raw.get("allow_insecure_http", False)
    if not isinstance(allow, bool):
        table.problem("allow_insecure_http", f"{show(allow)} is not true or false", "write allow_insecure_http = true")
        return
    if "url" not in raw:
        return
    url = raw["url"]
    problem = url_problem(url.strip(), allow_plain_http=allow) if isinstance(url, str) else "is not a string"
    if problem is not None:
        table.problem("url", problem, "remove url (Doppler's API is https://api.doppler.com) or use https://")


def doppler_locations(options: Mapping[str, Any]) -> list[str]:
    """What a Doppler store writes: its secrets in `config` (by prefix) and its stage document (`state_secret` in
    `state_config`). Two stores sharing either would overwrite each other's key or stages."""
    url = str(options.get("url") or "https://api.doppler.com").strip().rstrip("/").lower()
    project, config = options.get("project"), options.get("config")
    state = f"{options.get('state_config') or config}|{options.get('state_secret') or 'BLUUM_ROTATOR_STATE'}"
    prefix = options.get("prefix", "BLUUM_")
    return [f"doppler:{url}|{project}|{config}|fields:{prefix}", f"doppler:{url}|{project}|state:{state}"]


def check_doppler_primaries(
    credentials: Mapping[str, _Credential], stores: Mapping[str, _Store], problems: Problems
) -> None:
    """A credential whose primary (`store`) is a Doppler store is refused, with the fix."""
    for name, cred in credentials.items():
        store = stores.get(cred.store)
        if store is None or store.type != DOPPLER_TYPE:
            continue
        problems.add(
            f"credentials.{name}.store",
            f"names the Doppler store {cred.store!r}; Doppler has no compare-and-set, so it cannot hold the rotation "
            "record and lease a primary holds",
            f'make a dotenv, Vault or AWS store the primary (store = "...") and list {cred.store!r} in '
            f'also_deploy_to = ["{cred.store}"]',
        )
