"""Where a credential may travel over plain http: to a loopback address only, unless the deployer says otherwise.

Why its own module: the Vault store's token (and an AppRole secret id) cross the network on every call, so a Vault
address over `http://` to another machine hands them to anyone on the path. The configuration check (before anything
is contacted) and the store itself (which also reads VAULT_ADDR) ask the same question here. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback", "plain_http_problem"]


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1). A name that merely starts with "localhost"
    (`localhost.example.net`) is not."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_problem(url: str, *, allow_plain_http: bool = False) -> str | None:
    """Why `url` must not carry a credential, or None: it is not an http(s) URL with a host, or (unless
    `allow_plain_http`, the deployer's explicit choice) it is plain http to a host off loopback."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return f"{url!r} is not a URL (write e.g. https://vault.example.com:8200)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL with a host (write e.g. https://vault.example.com:8200)"
    if parts.username is not None or parts.password is not None:
        return f"{parts.scheme}://{parts.hostname}: a user or password in the URL is not how Vault logs in; remove it"
    if parts.scheme == "http" and not allow_plain_http and not is_loopback(parts.hostname):
        shown = f"{parts.hostname}:{port}" if port else parts.hostname
        return f"uses plain http to {shown}: the Vault token would cross the network unencrypted"
    return None
