"""Redirects from Vault are followed only within the address it was reached at: the token never goes elsewhere.

Why: hvac sends every request through a requests session that follows redirects, and requests strips only the
`Authorization` header when a redirect changes host, not Vault's own `X-Vault-Token` (nor a login's request body,
which holds an AppRole secret id). A review saw a 307 to another host receive the token. So a response hook refuses
any redirect whose origin (scheme, host, port) differs from the request's, before anything is sent there; a redirect
on the same origin (a path that moved) is still followed. A Vault standby that redirects clients to the active node is
another origin: point `url` at the active node or at the address that forwards to it.

A redirect that is followed sends the write again, to the new path: a request that leaves anew, so it asks the lease
guard of the command first, as the store asked before the original (`rotator.core.lease_clock`, issue 17). A runner that
lost its lease while the redirect was on its way back sends nothing more; a redirected read changes nothing and is
followed as before.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import requests

__all__ = ["RedirectRefused", "refuse_redirects_elsewhere"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class RedirectRefused(requests.exceptions.RequestException):
    """Vault answered with a redirect to another origin; `target` is that origin (scheme://host:port, no path)."""

    def __init__(self, target: str) -> None:
        super().__init__(f"redirected to {target}")
        self.target = target


def refuse_redirects_elsewhere(session: requests.Session) -> None:
    """Make `session` raise RedirectRefused instead of following a redirect to another origin."""
    hooks = session.hooks.setdefault("response", [])
    if _refuse_elsewhere not in hooks:
        hooks.append(_refuse_elsewhere)


def _refuse_elsewhere(response: requests.Response, *args: object, **kwargs: object) -> None:
    if not response.is_redirect:
        return
    target = urljoin(response.url, response.headers.get("location", ""))
    if _origin(target) != _origin(response.url):
        response.close()
        raise RedirectRefused(_shown(target))
    if response.request.method not in _READS:
        from rotator.core.lease_clock import before_request  # here, as in backends.vault.kv: imported late

        try:
            before_request(0.0)  # the followed write leaves now: the same check as before the original
        except BaseException:
            response.close()
            raise


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _shown(url: str) -> str:
    """scheme://host[:port] of `url`: where it points, without a path or query that might carry anything."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
