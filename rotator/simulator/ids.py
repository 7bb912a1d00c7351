"""Identifiers and secrets in Bluum's formats, so clients are tested against realistic shapes.

Bluum's examples (`apk_2ahq810t9rgmwgncgcawcm5400`) are a prefix plus 26 lowercase Crockford base32
characters (130 bits). We produce the same shape from the OS random source, and validate path ids with the
same alphabet so a raw UUID or a typo is rejected the way the docs say (400), not treated as "not found".
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())
_BODY = "[0-9a-hjkmnp-tv-z]{26}"

INVESTOR_ID = re.compile(rf"inv_{_BODY}")
API_KEY_ID = re.compile(rf"apk_{_BODY}")
REQUEST_ID = re.compile(rf"req_{_BODY}")


def crockford26() -> str:
    """26 random lowercase Crockford base32 characters (130 bits)."""
    # 17 random bytes = 136 bits; RFC 4648 base32 gives 28 chars, of which the first 26 carry 130 random bits.
    return base64.b32encode(secrets.token_bytes(17)).translate(_FROM_RFC4648)[:26].decode("ascii")


def new_id(prefix: str) -> str:
    """A Bluum-style id such as `apk_…` or `inv_…`."""
    return f"{prefix}_{crockford26()}"


def new_public_key(environment: str) -> str:
    """The Basic-auth user name of a key; the `test`/`live` marker mirrors common API key conventions."""
    return f"pk_{'live' if environment == 'PRODUCTION' else 'test'}_{crockford26()}"


def new_secret(environment: str) -> str:
    """The Basic-auth password: 240 random bits, never containing ':' (which would break Basic auth)."""
    return f"sk_{'live' if environment == 'PRODUCTION' else 'test'}_{secrets.token_urlsafe(30)}"


def new_trace_id() -> str:
    """A W3C-style 32-hex trace id for error bodies."""
    return secrets.token_hex(16)


def stable_id(prefix: str, seed: str) -> str:
    """A deterministic id of the same shape, for fixed catalogue entries that must not change between runs."""
    digest = hashlib.sha256(seed.encode()).digest()[:17]
    return f"{prefix}_{base64.b32encode(digest).translate(_FROM_RFC4648)[:26].decode('ascii')}"
