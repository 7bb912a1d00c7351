"""How a Vault store reaches Vault: the connection options of its table, checked, and the session built from them.

Why apart from the store: half of a Vault store's options (address, namespace, CA, timeout, retries, and the nine of
its login) say how to reach Vault, not which secret to keep. They are checked together, in one order, and turned into
one `VaultSession`; the store (`backends.vault.store`) keeps to its path, its fields and its stages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypedDict

import hvac

from backends.vault.auth import VaultAuth, VaultSession
from backends.vault.retry import DEFAULT_MAX_ATTEMPTS, VaultRetry
from rotator.core.errors import ConfigError
from rotator.core.urls import url_problem

__all__ = ["DEFAULT_TIMEOUT", "ConnectionOptions", "connect", "namespace_of", "retry_of"]

DEFAULT_TIMEOUT: Final = 10.0


class ConnectionOptions(TypedDict, total=False):
    """The options of a Vault store's table that say how to reach and log in to Vault (all optional).

    `url` falls back to VAULT_ADDR, `namespace` to VAULT_NAMESPACE, `ca_cert` to VAULT_CACERT; `timeout` is in
    seconds (10 by default); `max_attempts` counts the attempts at one call (`backends.vault.retry`, 6 by default);
    `auth` is token (the default), approle, kubernetes or aws, with the options of that method
    (`backends.vault.auth`); `allow_insecure_http` lets a deployer choose plain http on a network they trust.
    """

    url: str | None
    namespace: str | None
    ca_cert: str | None
    timeout: float
    max_attempts: int
    auth: str | None
    auth_mount: str | None
    role: str | None
    token_file: str | None
    role_id_file: str | None
    secret_id_file: str | None
    jwt_file: str | None
    aws_region: str | None
    aws_header_value: str | None
    allow_insecure_http: bool


def namespace_of(options: ConnectionOptions, environ: Mapping[str, str]) -> str | None:
    """The Vault namespace: the option, else VAULT_NAMESPACE, else none."""
    return options.get("namespace") or environ.get("VAULT_NAMESPACE") or None


def connect(
    store: str,
    options: ConnectionOptions,
    *,
    environ: Mapping[str, str],
    client: hvac.Client | None,
    monotonic: Callable[[], float],
) -> VaultSession:
    """The session of store `store`, its options checked first: ConfigError naming the option and the fix (an
    option's text is never echoed). `client`, an hvac client already logged in, stands in for the address."""
    unknown = sorted(set(options) - ConnectionOptions.__optional_keys__)
    if unknown:  # as Python itself says it for a keyword the constructor does not take
        raise TypeError(f"VaultStore() got an unexpected keyword argument {unknown[0]!r}")
    url = options.get("url")
    address = url or environ.get("VAULT_ADDR", "")
    if client is None and not address:
        raise ConfigError(
            f"store {store!r}: no Vault address: set `url` in the store's table, or the VAULT_ADDR environment "
            'variable (e.g. url = "https://vault.example.com:8200")'
        )
    if address:
        _check_address(store, address, "url" if url else "VAULT_ADDR", options.get("allow_insecure_http", False))
    try:
        seconds = float(options.get("timeout", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        raise ConfigError(f"store {store!r}: timeout must be a number of seconds, e.g. timeout = 10") from None
    return VaultSession(
        store=store,
        url=address or str(getattr(client, "url", "")),
        auth=VaultAuth.from_options(store, options),
        namespace=namespace_of(options, environ),
        ca_cert=options.get("ca_cert") or environ.get("VAULT_CACERT") or None,
        timeout=seconds,
        environ=environ,
        client=client,
        monotonic=monotonic,
    )


def retry_of(store: str, options: ConnectionOptions) -> VaultRetry:
    """The retries of every call (`max_attempts`: a whole number, 1 for none, DEFAULT_MAX_ATTEMPTS by default).

    Fewer attempts end a call on a Vault that is gone sooner (the six by default wait about 3 s in all), and let a
    storm's hiccup end more rotations."""
    value = options.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"store {store!r}: max_attempts must be a whole number of attempts, 1 or more (got {value!r}); write "
            f"max_attempts = {DEFAULT_MAX_ATTEMPTS} (the default), or 1 for no retries"
        )
    return VaultRetry(max_attempts=value)


def _check_address(store: str, address: str, source: str, allow_insecure_http: object) -> None:
    """Refuse an address the token must not travel to (`rotator.core.urls`): ConfigError naming where it came from
    (`url` or VAULT_ADDR) and the fix. `allow_insecure_http = true` lets a deployer choose plain http on a network
    they trust; an address that is not a URL is refused either way."""
    if not isinstance(allow_insecure_http, bool):
        raise ConfigError(f"store {store!r}: allow_insecure_http must be true or false")
    problem = url_problem(address.strip(), allow_plain_http=allow_insecure_http)
    if problem is None:
        return
    raise ConfigError(
        f"store {store!r}: {source} {problem}. Fix: use https:// (with `ca_cert` for a private CA), a loopback "
        "address, or, if this network is trusted, set allow_insecure_http = true in the store's table"
    )
