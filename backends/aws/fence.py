"""Where a rollback in Secrets Manager puts the old key back: a fresh version, so no late label move can undo it.

Why: a label move names the version it takes the label from (`RemoveFromVersionId`), and AWS refuses it once that
version no longer carries the label. A rollback that left AWSCURRENT on the version it was on (the promote's move had
not landed yet), or moved it back there, keeps that condition true: a promote's move that another runner sent before
it was frozen, held on the wire past the take-over, then lands and makes the secret show the new key the rollback has
just revoked (I1). So whenever a rollback keeps or brings back the old key as AWSCURRENT, the key goes into a new
version first, and AWSCURRENT moves there off the version it was on: every late move that names the old version is
refused by the store itself. (The Vault store does the same for the path applications read: a new version, same
fields.)

The new version's id is made from the rotation's token, so a rollback run again after a crash between its calls
(`rotator resume`) finds it and goes on instead of making another: one extra version per rolled-back rotation, never
more (Secrets Manager keeps about 100 versions and may delete unlabeled ones; this never needs an old one back, as the
key it holds is copied).

Pure decisions only; `backends.aws` reads the labels, copies the value and moves the labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from backends.stages import CURRENT_LABEL, PENDING_LABEL, PREVIOUS_LABEL, LabelMove, Labels, holder

__all__ = ["FENCE_LABEL", "FENCE_LABEL_AWS", "Fence", "cleanup", "fence_version", "plan"]

_PREFIX: Final = "rolled-back-"
FENCE_LABEL: Final = "fence"
FENCE_LABEL_AWS: Final = "ROTATOR_ROLLING_BACK"
"""The label the new version is written with (Secrets Manager wants one; AWSPREVIOUS or AWSPENDING would take the
label off the version carrying it, and AWSCURRENT would move unconditionally); taken off once AWSCURRENT is there."""


def fence_version(token: str) -> str:
    """The version id the old key is copied to when rotation `token` is rolled back: 44 characters, within Secrets
    Manager's 32 to 64, the same for every run of that rollback, and never the id of a rotation's own version."""
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Fence:
    """Copy the value of `source` into a new version `version`, move AWSCURRENT onto it off `off`, then put
    AWSPREVIOUS back where it was (AWS moves it to `off` with AWSCURRENT)."""

    source: str
    """The version holding the old key: PREVIOUS when CURRENT carries the rolled-back token, else CURRENT."""
    off: str
    """The version AWSCURRENT is on now."""
    version: str
    previous: str | None
    """Where AWSPREVIOUS belongs afterwards: nowhere when the new key was CURRENT (`restore_previous` empties PREVIOUS),
    else where it was (a rollback before promote leaves it as it was)."""

    def moves(self) -> list[LabelMove]:
        """The label moves once the new version exists, in order; each is planned so a resend finds it done."""
        return [LabelMove(CURRENT_LABEL, self.version, self.off), LabelMove(PREVIOUS_LABEL, self.previous, self.off)]


def plan(labels: Labels, token: str) -> Fence | None:
    """The fence a rollback of `token` needs first, or None (then only the label moves of `moves_to_restore`).

    - CURRENT carries `token` (the promote landed): the old key (PREVIOUS's version) is copied, and CURRENT moves to
      the copy instead of back to the version it came from, which a late resend of the promote's move names.
    - CURRENT is on another version while PENDING carries `token`: the promote's move may still be on the wire,
      naming CURRENT's version; CURRENT's key is copied and moved to, so that move no longer matches.
    - CURRENT is already on the fence (a rollback run again), or nothing of `token` is staged: nothing to do.

    A CURRENT carrying `token` with no other PREVIOUS is left to `moves_to_restore`, which refuses it (no old key).
    A crash between the fence's calls is finished by planning again: the copy is made again as a no-op (same id,
    same value), and the moves look at the labels as they are. Only a crash right after AWSCURRENT moved (before
    AWSPREVIOUS went back) leaves AWSPREVIOUS on the version the old key came from: the same key, never the new one.
    """
    current, previous = holder(labels, CURRENT_LABEL), holder(labels, PREVIOUS_LABEL)
    fence = fence_version(token)
    if current == token:
        if previous is None or previous == token:
            return None
        return Fence(source=previous, off=current, version=fence, previous=None)
    if current is not None and current != fence and holder(labels, PENDING_LABEL) == token:
        kept = None if previous in (token, fence) else previous
        return Fence(source=current, off=current, version=fence, previous=kept)
    return None


def cleanup(labels: Labels, token: str) -> list[LabelMove]:
    """The fence's own label off the fence version, once AWSCURRENT is there (also after a crash in between)."""
    fence = fence_version(token)
    done = CURRENT_LABEL in labels.get(fence, frozenset())
    return [LabelMove(FENCE_LABEL, None, fence)] if done and FENCE_LABEL in labels[fence] else []
