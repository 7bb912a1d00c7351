"""Leak reports (docs/leak-reports.md): whether a signed report is authentic, fresh and well formed, and which
credential it names. Pure decisions: the daemon's route (rotator/daemon/leak.py) reads the request, the clock and the
stores, and acts on what these functions decide.

The signature is the one the rotator's own webhooks carry (rotator/notify/webhook.py), so whoever already verifies
those can sign these: `X-Rotator-Timestamp: <unix seconds>` and `X-Rotator-Signature: sha256=<hex>`, the HMAC-SHA256
under the configured key of `"<timestamp>.<body>"`. The timestamp is inside the signed text, so an old report cannot
be re-dated; within the tolerance a signature is accepted once (the caller remembers what it saw).

Why the order of the checks matters: everything before the signature is decided from the request alone and costs
nothing, so an unauthenticated flood never reaches a store; the body is parsed only once the signature holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from rotator.attest import FINGERPRINT_PATTERN, fingerprint
from rotator.rules.record import OLD_KEY_ACTIVE, RotationRecord

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Refusal",
    "Report",
    "check_signature",
    "malformed_detail",
    "match_current",
    "match_previous",
    "parse_report",
    "previous_in_grace",
    "reason_text",
    "sign",
]

TIMESTAMP_HEADER: Final = "X-Rotator-Timestamp"
SIGNATURE_HEADER: Final = "X-Rotator-Signature"
_SIGNATURE: Final = re.compile(r"sha256=([0-9a-f]{64})")
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9._:@/-]{1,64}")
"""What a report's optional `id` and `source` may hold: they go into the rotation's reason, so no free text."""
_MAX_PUBLIC_KEY: Final = 256


class Refusal(StrEnum):
    """Why a report changed nothing: the `reason` label of `bluum_rotator_leak_reports_refused_total`."""

    WRONG_METHOD = "wrong_method"
    WRONG_CONTENT_TYPE = "wrong_content_type"
    TOO_LARGE = "too_large"
    NO_SIGNATURE = "no_signature"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    AMBIGUOUS_KEY = "ambiguous_key"
    STORE_UNREADABLE = "store_unreadable"
    NEEDS_PERSON = "needs_person"
    NO_SECRET = "no_secret"  # noqa: S105 - a reason label: the key's variable is empty

    @property
    def status(self) -> int:
        """The HTTP status the route answers with."""
        return _STATUS[self]


_STATUS: Final = {
    Refusal.WRONG_METHOD: 405,
    Refusal.WRONG_CONTENT_TYPE: 415,
    Refusal.TOO_LARGE: 413,
    Refusal.NO_SIGNATURE: 401,
    Refusal.BAD_TIMESTAMP: 401,
    Refusal.STALE_TIMESTAMP: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.REPLAY: 401,
    Refusal.MALFORMED: 422,
    Refusal.UNKNOWN_KEY: 422,
    Refusal.AMBIGUOUS_KEY: 422,
    Refusal.STORE_UNREADABLE: 503,
    Refusal.NEEDS_PERSON: 409,
    Refusal.NO_SECRET: 503,
}


@dataclass(frozen=True, slots=True)
class Report:
    """An authentic report: the fingerprint of the leaked public key (computed when the body gave the key itself),
    and the reporter's own id and source when it gave them."""

    fingerprint: str
    reporter_id: str | None = None
    source: str | None = None


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 under `key` of `"<timestamp>.<body>"` (what a reporter sends)."""
    return "sha256=" + hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def check_signature(
    key: bytes, timestamp: str | None, signature: str | None, body: bytes, *, now: float, tolerance: float
) -> Refusal | None:
    """None when `signature` is the HMAC of `timestamp` and `body` under `key` and the timestamp is within
    `tolerance` seconds of `now` (either way); else why not. The digests are compared in constant time."""
    if not timestamp or not signature:
        return Refusal.NO_SIGNATURE
    if not _TIMESTAMP.fullmatch(timestamp.strip()):
        return Refusal.BAD_TIMESTAMP
    stamp = int(timestamp.strip())
    if abs(now - stamp) > tolerance:
        return Refusal.STALE_TIMESTAMP
    given = _SIGNATURE.fullmatch(signature.strip())
    expected = sign(key, stamp, body)[len("sha256=") :]
    if given is None or not hmac.compare_digest(given.group(1), expected):
        return Refusal.BAD_SIGNATURE
    return None


def parse_report(body: bytes) -> Report | Refusal:
    """A JSON object with exactly one of `public_key` (the leaked key's public half, its Basic-auth user name) or
    `fingerprint` ("sha256:" + 16 hex digits, rotator.attest.fingerprint), and optionally `id` and `source` (short
    tokens); other members are ignored. Anything else is MALFORMED (`malformed_detail` says which rule)."""
    parsed = _parse(body)
    return Refusal.MALFORMED if isinstance(parsed, str) else parsed


def malformed_detail(body: bytes) -> str | None:
    """Which rule a MALFORMED report broke, naming the member and the rule, never a value (a sender who pasted a
    secret must not see it echoed, nor the log keep it); None for a well-formed report."""
    parsed = _parse(body)
    return parsed if isinstance(parsed, str) else None


def _parse(body: bytes) -> Report | str:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        return "the body is not JSON in UTF-8"
    if not isinstance(data, dict):
        return "the body is not a JSON object"
    public_key, given = data.get("public_key"), data.get("fingerprint")
    if (public_key is None) == (given is None):
        return "give exactly one of public_key or fingerprint"
    if public_key is not None:
        if not isinstance(public_key, str) or not public_key.strip() or len(public_key) > _MAX_PUBLIC_KEY:
            return f"public_key must be a non-blank string of at most {_MAX_PUBLIC_KEY} characters (the public half)"
        found = fingerprint(public_key)
    elif isinstance(given, str) and FINGERPRINT_PATTERN.fullmatch(given):
        found = given
    else:
        return 'fingerprint must be "sha256:" and 16 lower-case hex digits'
    tokens = []
    for member in ("id", "source"):
        value = data.get(member)
        if value is not None and not (isinstance(value, str) and _TOKEN.fullmatch(value)):
            return f"{member} must be 1 to 64 of A-Z a-z 0-9 . _ : @ / - (no spaces), or left out"
        tokens.append(value)
    return Report(found, tokens[0], tokens[1])


def _holders(report: Report, keys: Mapping[str, str | None]) -> list[str]:
    return [
        name
        for name, key in keys.items()
        if key and key.strip() and hmac.compare_digest(fingerprint(key), report.fingerprint)
    ]


def match_current(report: Report, currents: Mapping[str, str | None], unreadable: int = 0) -> str | Refusal:
    """The one credential whose current public key (`currents`: name -> public key, None when its store holds none)
    has the report's fingerprint. Two: AMBIGUOUS_KEY (rotating either would be a guess). None: UNKNOWN_KEY, or
    STORE_UNREADABLE when `unreadable` credentials could not be read (the key may be theirs)."""
    names = _holders(report, currents)
    if len(names) == 1:
        return names[0]
    if len(names) > 1:
        return Refusal.AMBIGUOUS_KEY
    return Refusal.STORE_UNREADABLE if unreadable else Refusal.UNKNOWN_KEY


def previous_in_grace(record: RotationRecord | None) -> str | None:
    """The public key of the old key of `record`'s rotation while it is PREVIOUS and may still work (the rotation
    deployed the new key and has not finished revoking the old one); None otherwise. The record names the key as
    Bluum listed it when the rotation started, so a store edited since cannot point a report at another key (I8)."""
    if record is None or record.phase not in OLD_KEY_ACTIVE or not record.old_public_key:
        return None
    return record.old_public_key


def match_previous(report: Report, olds: Mapping[str, str | None]) -> str | Refusal | None:
    """The one credential whose old key, still in its grace window (`olds`: name -> `previous_in_grace`), has the
    report's fingerprint; AMBIGUOUS_KEY for two; None for none (the caller's answer for a key no one holds stands)."""
    names = _holders(report, olds)
    if len(names) > 1:
        return Refusal.AMBIGUOUS_KEY
    return names[0] if names else None


def reason_text(report: Report, report_id: str) -> str:
    """The emergency rotation's reason: which report, which key (by fingerprint) and what the reporter said it is."""
    parts = [f"leak report {report_id}", f"key {report.fingerprint}"]
    if report.source:
        parts.append(f"source {report.source}")
    if report.reporter_id:
        parts.append(f"reporter id {report.reporter_id}")
    return ", ".join(parts)
