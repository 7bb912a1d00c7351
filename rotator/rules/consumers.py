"""What consumers' answers mean for the old key (issue 19): pure decisions, no I/O.

A consumer is asked which key it uses (rotator/consumers/ asks; docs/consumer-attestation.md is the protocol). Its
answer is one of five outcomes, and only "new" counts: an unreachable or malformed consumer may well still hold the
old key, so silence is never taken for consent. These functions turn answers into outcomes, pick out the consumers
not yet on the new key, word them for messages and alerts, and space the polls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "FIRST_DELAY",
    "MAX_DELAY",
    "AttestOutcome",
    "Attestation",
    "choices",
    "classify",
    "describe",
    "poll_delay",
    "progress",
    "summary",
    "unmoved",
]

AttestOutcome = Literal["new", "old", "other", "unreachable", "malformed"]
FIRST_DELAY: Final = 1.0
MAX_DELAY: Final = 30.0
"""Polls are 1 s apart at first, then twice as far each time, never more than 30 s: a consumer that reloads in a few
seconds is seen at once, and one that takes minutes is not asked hundreds of times."""


@dataclass(frozen=True, slots=True)
class Attestation:
    """One consumer's answer to one poll. `reported` is the fingerprint it gave (never a key or a secret); `detail`
    says why it is unreachable or malformed ("timed out after 5s", "HTTP 503", "exit 2")."""

    consumer: str
    store: str
    outcome: AttestOutcome
    reported: str | None = None
    detail: str = ""


def classify(reported: str | None, *, new_fingerprint: str, old_fingerprint: str | None) -> AttestOutcome:
    """The outcome of a well-formed answer's fingerprint (None: the answer was malformed)."""
    if reported is None:
        return "malformed"
    if reported == new_fingerprint:
        return "new"
    if old_fingerprint is not None and reported == old_fingerprint:
        return "old"
    return "other"


def unmoved(attestations: Iterable[Attestation]) -> list[Attestation]:
    """Every consumer not on the new key, in the order given: whatever else it said, it may still use the old one."""
    return [attestation for attestation in attestations if attestation.outcome != "new"]


def describe(attestation: Attestation) -> str:
    """One consumer's answer in words for messages, the record and alerts: no key, no secret, only a fingerprint."""
    who = f"{attestation.consumer} (store {attestation.store})"
    what = {
        "new": "reports the new key",
        "old": "reports the old key",
        "other": f"reports another key ({attestation.reported})",
        "unreachable": f"unreachable: {attestation.detail or 'no answer'}",
        "malformed": f"malformed answer: {attestation.detail or 'not a fingerprint'}",
    }[attestation.outcome]
    return f"{who}: {what}"


def summary(attestations: Sequence[Attestation]) -> str:
    """ "2 of 3 consumers report the new key" plus who does not, for a message or `status`."""
    moved = len(attestations) - len(unmoved(attestations))
    text = f"{moved} of {len(attestations)} consumers report the new key"
    rest = [describe(attestation) for attestation in unmoved(attestations)]
    return text + ("; " + "; ".join(rest) if rest else "")


def choices(credential: str) -> str:
    """The three ways on once the grace window ended with consumers not on the new key."""
    return (
        f"Choose: `rotator resume {credential}` keeps waiting (polls again), `rotator rollback {credential}` puts the "
        f"old key back everywhere, or `rotator resume {credential} --revoke-anyway --reason TEXT` revokes the old key "
        "now, and the consumers above break"
    )


def poll_delay(attempt: int) -> float:
    """Seconds to wait after poll number `attempt` (0-based) before the next one."""
    return float(min(MAX_DELAY, FIRST_DELAY * 2**attempt))


def progress(unmoved_lines: Sequence[str], moved_at: float | None, total: int) -> str:
    """For `status`, from the record alone (no poll): how many of the credential's `total` consumers reported the new
    key at the last poll, and who did not."""
    if moved_at is not None:
        return f"{total} of {total} consumers report the new key"
    if not unmoved_lines:
        return f"the {total} consumer(s) have not been asked yet"
    moved = max(0, total - len(unmoved_lines))
    return f"{moved} of {total} consumers report the new key; " + "; ".join(unmoved_lines)
