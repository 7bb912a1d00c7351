"""Where a credential's key is sent: its `base_url` and the paths under it (`check_path`, `api_keys_path`).

I7 at configuration time: a base URL is never a host of the other environment, and credentials never travel over
plain HTTP, except to a loopback address (the local simulator). The paths are relative to the base URL, so a path
that repeats its /v1 or names its own host is caught here rather than as a 404 half-way through a rotation.
"""

from __future__ import annotations

import string
from typing import Final
from urllib.parse import SplitResult, urlsplit

from rotator.config.tables import Table
from rotator.core.model import DEFAULT_API_KEYS_PATH, DEFAULT_BASE_URLS, DEFAULT_CHECK_PATH, Environment
from rotator.core.urls import is_loopback_host

__all__ = [
    "DEFAULT_API_KEYS_PATH",
    "DEFAULT_CHECK_PATH",
    "PRODUCTION_HOSTS",
    "SANDBOX_HOSTS",
    "parse_base_url",
    "parse_paths",
]

SANDBOX_HOSTS: Final = frozenset(
    {"sandbox.api.bluumfinance.com", "test-service.bluumfinance.com", "sandbox.api.bluum.finance"}
)
PRODUCTION_HOSTS: Final = frozenset({"api.bluumfinance.com", "service.bluumfinance.com", "api.bluum.finance"})
"""The three host generations Bluum's docs use (bluum-api.md §3). Any of them may be configured."""


def parse_base_url(table: Table, environment: Environment | None) -> str | None:
    """I7 at configuration time: the base URL must belong to the credential's environment (or be loopback).

    None when it has a problem (recorded on `table`), or when it is absent and the environment is unknown.
    """
    url = table.text("base_url", example='"https://api.bluumfinance.com/v1"')
    if url is None:
        if not table.has("base_url") and environment is not None:
            return DEFAULT_BASE_URLS[environment]
        return None
    url = url.strip()
    parts = urlsplit(url)
    problem = _shape_problem(parts) or _host_problem(parts, environment)
    if problem is not None:
        table.problem("base_url", *problem)
        return None
    return url.rstrip("/")


def _shape_problem(parts: SplitResult) -> tuple[str, str] | None:
    """(what is wrong, the fix) when the URL is not a plain http(s) URL with a host; None when it is."""
    if parts.username is not None or parts.password is not None:
        # Do not echo the URL: the part before '@' may be a key or secret.
        return (
            "contains a user name or password before '@'",
            "remove it; the key pair lives in the credential's stores, never in rotator.toml",
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return (
            "is not an http(s) URL with a host",
            'write a full URL such as base_url = "https://sandbox.api.bluumfinance.com/v1"',
        )
    if parts.query or parts.fragment:
        return (
            "must not have a query (?...) or fragment (#...)",
            "put the query in check_path instead, and end base_url with /v1",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        return "has an invalid port", "use a port number between 1 and 65535"
    return None


def _host_problem(parts: SplitResult, environment: Environment | None) -> tuple[str, str] | None:
    """(what is wrong, the fix) when the host belongs to the other environment (I7), is reached over plain http
    beyond loopback, or is Bluum's without /v1; None when it is fine. `parts` passed `_shape_problem`."""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if environment is Environment.PRODUCTION and host in SANDBOX_HOSTS:
        return (
            f"{host} is Bluum's sandbox, but this credential's environment is production: a sandbox URL must never "
            "be used where a production key belongs (I7)",
            f'use base_url = "{DEFAULT_BASE_URLS[Environment.PRODUCTION]}" (or remove base_url for the default), '
            'or set environment = "sandbox" if this really is a sandbox key',
        )
    if environment is Environment.SANDBOX and host in PRODUCTION_HOSTS:
        return (
            f"{host} is Bluum's production, but this credential's environment is sandbox: a production URL must "
            "never be used where a sandbox key belongs (I7)",
            f'use base_url = "{DEFAULT_BASE_URLS[Environment.SANDBOX]}" (or remove base_url for the default), '
            'or set environment = "production" if this really is a production key',
        )
    if scheme != "https" and not is_loopback_host(host):
        return (
            f"uses plain http to {host}: the API key and secret would cross the network unencrypted",
            "use https://, or a loopback address (127.0.0.1, localhost, [::1]) for the local simulator",
        )
    if (host in SANDBOX_HOSTS or host in PRODUCTION_HOSTS) and parts.path.rstrip("/") != "/v1":
        return (
            "Bluum serves its API under /v1, but this URL's path is something else",
            f'write base_url = "{scheme}://{parts.netloc}/v1"',
        )
    return None


def parse_paths(table: Table, base_url: str | None) -> tuple[str | None, str | None]:
    """`check_path` and `api_keys_path`, each its default when absent and None when it has a problem."""
    check_path: str | None = None
    text = table.text("check_path", example=f'"{DEFAULT_CHECK_PATH}"')
    if text is None:
        if not table.has("check_path"):
            check_path = DEFAULT_CHECK_PATH
    elif _relative_path_ok(table, "check_path", text, base_url):
        check_path = text
    return check_path, _parse_api_keys_path(table, base_url)


def _parse_api_keys_path(table: Table, base_url: str | None) -> str | None:
    api_keys_path = table.text("api_keys_path", example=f'"{DEFAULT_API_KEYS_PATH}"')
    if api_keys_path is None:
        if not table.has("api_keys_path"):
            return DEFAULT_API_KEYS_PATH
        return None
    if not _relative_path_ok(table, "api_keys_path", api_keys_path, base_url):
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(api_keys_path) if name is not None}
    except ValueError:
        fields = {"<unbalanced braces>"}
    if not fields <= {"investor_id"}:
        table.problem(
            "api_keys_path",
            "uses a placeholder other than {investor_id}, the only one filled in",
            f'write api_keys_path = "{DEFAULT_API_KEYS_PATH}"',
        )
        return None
    return api_keys_path


def _relative_path_ok(table: Table, key: str, path: str, base_url: str | None) -> bool:
    """A path relative to base_url: starts with '/', no host, no whitespace, and no second /v1."""
    if not path.startswith("/") or path.startswith("//") or any(char.isspace() for char in path):
        table.problem(
            key,
            "is not a path relative to base_url",
            f"start it with '/' and leave out the host and /v1, e.g. {key} = \"{DEFAULT_CHECK_PATH}\""
            if key == "check_path"
            else f"start it with '/' and leave out the host and /v1, e.g. {key} = \"{DEFAULT_API_KEYS_PATH}\"",
        )
        return False
    if (
        base_url is not None
        and urlsplit(base_url).path.rstrip("/").endswith("/v1")
        and (path == "/v1" or path.startswith(("/v1/", "/v1?")))
    ):
        table.problem(
            key,
            "starts with /v1, but base_url already ends with /v1 (the request would go to /v1/v1/...)",
            f"remove the leading /v1 from {key}",
        )
        return False
    return True
