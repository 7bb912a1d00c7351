"""Where a credential may travel over plain http: to a loopback address only, unless the deployer says otherwise.

Why its own module: the Vault store's token (and an AppRole secret id) cross the network on every call, so a Vault
address over `http://` to another machine hands them to anyone on the path. The configuration check (before anything
is contacted) and the store itself (which also reads VAULT_ADDR) ask the same question here. The URL rule itself is
the one every URL of rotator.toml follows (rotator/config_urls.py); this is the Vault store's face of it. Pure.
"""

from __future__ import annotations

from rotator.config_urls import is_loopback_host, url_problem

__all__ = ["is_loopback", "plain_http_problem"]


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1). A name that merely starts with "localhost"
    (`localhost.example.net`) is not."""
    return is_loopback_host(host)


def plain_http_problem(url: str, *, allow_plain_http: bool = False) -> str | None:
    """Why `url` must not carry a credential, or None (rotator/config_urls.py): not an http(s) URL with a host and a
    valid port, a user or password in it, or (unless `allow_plain_http`, the deployer's explicit choice) plain http
    to a host off loopback. The URL is never repeated, only its host."""
    return url_problem(url.strip(), allow_plain_http=allow_plain_http)
