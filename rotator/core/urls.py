"""The one rule for every URL in rotator.toml that the rotator sends something to: a webhook's `url`, an SNS
`endpoint_url`, a reload action's `url`.

Why a parser and not a prefix: `http://localhost@203.0.113.9/` starts with `http://localhost` and goes to
203.0.113.9, `http://localhost.example.net/` is a host anyone can register, `https://` has no host at all and
port 99999 does not exist; each passed the old prefix check. So the URL is split and each part judged on its own,
and the written text must be exactly what was judged: no whitespace, control characters or backslashes (parsers
disagree on those, so the client might reach another host than the one checked), and a network location that is
nothing but a host and a port.

The rule: http or https; a host (a DNS name, an IPv4 address or a bracketed IPv6 address); no user name or password
(a URL is named in logs and the history); a port from 1 to 65535 when one is written; plain http only to this
machine: 127.0.0.0/8, ::1, or the name `localhost` exactly. Events and reload calls can carry key ids, reasons and
tokens in the path, so they never cross a network in clear text.

Pure: no I/O, no name resolution (a name is judged as written; `localhost` is the only name taken as loopback).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

__all__ = ["LOOPBACK_HINT", "is_loopback_host", "url_problem"]

LOOPBACK_HINT: Final = "plain http only to this machine: 127.0.0.1 (any 127.x.y.z), [::1] or localhost"
"""How a fix names the loopback exception."""

_HOST_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\.?")
"""A DNS name or an IPv4 address as written (a final dot allowed); nothing a parser could read two ways."""
_PORT: Final = re.compile(r"[0-9]{1,5}")
_FORBIDDEN: Final = re.compile(r"[\s\\\x00-\x1f\x7f]")


def url_problem(value: object, *, allow_plain_http: bool = False) -> str | None:
    """What is wrong with `value` as a URL to send to, in words that never repeat it (it may hold a token: only the
    host of a well-formed URL is named); None when it passes. The caller adds the key path and the fix.

    `allow_plain_http`: the deployer's explicit choice of plain http off loopback (a Vault store's
    `allow_insecure_http`); every other rule still holds."""
    if not isinstance(value, str) or not value:
        return "is not a URL"
    if _FORBIDDEN.search(value):
        return "contains whitespace, a control character or a backslash"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if "@" in parts.netloc:
        return "has a user or password before '@' (it would be shown in logs and the history)"
    host, port = _split_netloc(parts)
    if host is None:
        return (
            "is not an http:// or https:// URL with a host: after '//' comes host[:port], the host a DNS name, an "
            "IPv4 address or a bracketed IPv6 address"
        )
    if port is not None and not 1 <= port <= 65535:
        return "is not a URL: its port is outside 1 to 65535"
    if parts.scheme == "http" and not allow_plain_http and not is_loopback_host(host):
        shown = f"{host}:{port}" if port is not None else host
        return (
            f"uses plain http to {shown}, which is not this machine: what is sent there would cross the network "
            "unencrypted"
        )
    return None


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the name `localhost` (any case, or the absolute `localhost.`): this machine,
    as written. A name that merely starts with "localhost" (`localhost.example.net`) is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_netloc(parts: SplitResult) -> tuple[str | None, int | None]:
    """The host and port of the network location, or (None, None) when it is anything but `host[:port]`."""
    netloc = parts.netloc
    if netloc.startswith("["):
        inner, bracket, rest = netloc[1:].partition("]")
        if not bracket or not _is_ipv6(inner):
            return None, None
        host = f"[{inner}]"
    else:
        host, _, _ = netloc.partition(":")
        rest = netloc[len(host) :]
        if not _HOST_NAME.fullmatch(host):
            return None, None
    if not rest:
        return host, None
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]):
        return None, None
    return host, int(rest[1:])


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False
