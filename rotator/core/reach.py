"""Whether a URL's host resolves and something listens at its port: a TCP connect, no HTTP request.

Why no request: `rotator plan` checks reload URLs before their time, and a reload URL's request IS the reload (it
restarts someone's application). Resolving the name and opening (then closing) a connection proves the name and the
port without asking the application to do anything.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

__all__ = ["unreachable"]


def unreachable(url: str, timeout: float = 2.0) -> str | None:
    """Why nothing could answer at `url` (its host does not resolve, nothing listens), or None when a connection
    opened. Names the host and port only, never the path or query (a token may ride there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "its port is not a number"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"{host} does not resolve ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or type(exc).__name__})"
