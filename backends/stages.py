"""The stage rules every store keeps, in one place: pure functions over `Stages` (CURRENT, PENDING, PREVIOUS).

A store reads its stages, asks one of these functions what they become, writes the answer its own way (a sidecar
then a dotenv file, a swap under a mutex, a label move) and logs it with `StageLog`. Nothing here does I/O, and
nothing here reveals a secret: messages and log lines name keys by label and rotations by token only.

The rules (see `backends.base.SecretStore` for the contract they implement):

- `put_pending`: a token any stage already holds with the same key is a no-op; with another key, StoreConflict.
  A PENDING of another token is replaced (that rotation was abandoned: the engine revokes its key).
- `promote`: PENDING(token) becomes CURRENT, what readers saw as CURRENT becomes PREVIOUS (unless it is that same
  key), PENDING empties; a PREVIOUS that was never cleared is dropped (and reported). When CURRENT already carries
  the token nothing moves; when neither PENDING nor CURRENT does, StoreConflict.
- `restore_previous`: a PENDING of the token is dropped; when CURRENT carries the token, PREVIOUS becomes CURRENT
  again and PREVIOUS empties (StoreConflict when PREVIOUS is empty); any other CURRENT is left alone.
- `clear_previous(token)`: PREVIOUS empties, when CURRENT carries `token` (else nothing changes).

Stores whose stages are labels moved one per call (AWS) plan those calls with `moves_to_*` at the end of this
module: each looks at the labels as they are and returns only the calls that remain, so a crash between two
calls is repaired by planning again.

Every StoreConflict names the store, says where (`where`: a path or `describe()`), that nothing was changed, and
what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rotator.core.errors import StoreConflict
from rotator.core.model import StoredKey

__all__ = [
    "Cleared",
    "Promotion",
    "Rollback",
    "StageLog",
    "Staged",
    "Stages",
    "clear_previous",
    "promote",
    "put_pending",
    "require_token",
    "restore_previous",
]


@dataclass(frozen=True, slots=True)
class Stages:
    """The three stages of one credential; None is an empty stage."""

    current: StoredKey | None = None
    pending: StoredKey | None = None
    previous: StoredKey | None = None

    def holder_of(self, token: str) -> StoredKey | None:
        """The key of whichever stage carries `token` (tokens are unique per rotation), PENDING first."""
        for key in (self.pending, self.current, self.previous):
            if key is not None and key.token == token:
                return key
        return None


@dataclass(frozen=True, slots=True)
class Staged:
    """What `put_pending` made of the stages."""

    stages: Stages
    key: StoredKey
    """The key that was asked to be PENDING (it carries the token)."""
    changed: bool
    """False when a stage already held `key` under its token: nothing to write."""
    replaced: StoredKey | None = None
    """The PENDING of another token that `key` replaced: the engine revokes it."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """What `promote` made of the stages."""

    stages: Stages
    key: StoredKey
    """The key CURRENT carries now (and, when nothing changed, already carried)."""
    changed: bool
    """False when CURRENT already carried the token: the stages are as they were."""
    dropped: StoredKey | None = None
    """A PREVIOUS that was never cleared and is now replaced: if it is still active, `rotator sweep` revokes it."""

    @property
    def previous(self) -> StoredKey | None:
        """PREVIOUS after the promotion."""
        return self.stages.previous


@dataclass(frozen=True, slots=True)
class Rollback:
    """What `restore_previous` made of the stages."""

    stages: Stages
    restored: StoredKey | None = None
    """The old PREVIOUS, CURRENT again; None when CURRENT did not carry the token (CURRENT was left alone)."""
    replaced: StoredKey | None = None
    """The CURRENT that `restored` replaced (it carries the token); None when nothing was restored."""
    dropped: StoredKey | None = None
    """The PENDING of the token, dropped (a target staged but never promoted)."""

    @property
    def changed(self) -> bool:
        """Whether the stages differ from before."""
        return self.restored is not None or self.dropped is not None


@dataclass(frozen=True, slots=True)
class Cleared:
    """What `clear_previous` made of the stages."""

    stages: Stages
    cleared: StoredKey | None = None
    """The PREVIOUS that was forgotten; None when it was already empty (nothing changed)."""


def require_token(key: StoredKey) -> str:
    """The rotation token of a key to be staged; ValueError (a caller's bug, not a store state) when it has none."""
    if not key.token:
        raise ValueError(f"put_pending needs a key with a rotation token; {key.label} has none")
    return key.token


def put_pending(stages: Stages, key: StoredKey, *, where: str, store: str) -> Staged:
    """`key` as PENDING under its token; StoreConflict when a stage holds that token with another key."""
    token = require_token(key)
    holder = stages.holder_of(token)
    if holder is not None:
        if holder.same_key(key):
            return Staged(stages, key, changed=False)
        raise StoreConflict(
            f"token {token} already stages {holder.label} in {where}, not {key.label}; "
            "nothing was changed. A token belongs to one rotation: start a new rotation for a new key",
            store=store,
        )
    new = Stages(current=stages.current, pending=key, previous=stages.previous)
    return Staged(new, key, changed=True, replaced=stages.pending)


def promote(stages: Stages, token: str, *, shown: Callable[[], StoredKey | None], where: str, store: str) -> Promotion:
    """PENDING(token) to CURRENT; the key readers saw as CURRENT to PREVIOUS.

    `shown` gives the key readers see as CURRENT (the dotenv file's, or CURRENT with a handle's fallbacks filled in),
    which is what PREVIOUS will hold. It is only called once a promotion is certain, so a store whose reading of it
    can fail reports a conflict first, exactly as before the rules moved here.
    """
    current = stages.current
    if current is not None and current.token == token:
        return Promotion(stages, current, changed=False)
    pending = stages.pending
    if pending is None or pending.token != token:
        raise StoreConflict(
            f"neither PENDING nor CURRENT carries token {token} in {where}; nothing was changed. "
            "That rotation's key was never staged here or was replaced: run `rotator status` to see which "
            "rotation this store belongs to",
            store=store,
        )
    old = shown()
    previous = stages.previous if old is None or old.same_key(pending) else old
    left = stages.previous
    dropped = None if left is None or (previous is not None and left.same_key(previous)) else left
    return Promotion(Stages(current=pending, pending=None, previous=previous), pending, changed=True, dropped=dropped)


def restore_previous(stages: Stages, token: str, *, where: str, store: str) -> Rollback:
    """Roll back the rotation `token`: drop its PENDING, and when CURRENT carries it, bring PREVIOUS back."""
    pending = stages.pending
    dropped = pending if pending is not None and pending.token == token else None
    kept_pending = None if dropped is not None else pending
    current = stages.current
    if current is None or current.token != token:
        return Rollback(Stages(current=current, pending=kept_pending, previous=stages.previous), dropped=dropped)
    restored = stages.previous
    if restored is None:
        raise StoreConflict(
            f"CURRENT carries token {token} but PREVIOUS is empty in {where}, so there is no older "
            "key to restore; nothing was changed. Keep CURRENT, or deploy a working key with a new rotation",
            store=store,
        )
    new = Stages(current=restored, pending=kept_pending, previous=None)
    return Rollback(new, restored=restored, replaced=current, dropped=dropped)


def clear_previous(stages: Stages, token: str) -> Cleared:
    """Forget PREVIOUS (its key has been revoked at Bluum), only for the rotation `token` that made it PREVIOUS:
    CURRENT must carry `token`, so a late call from an older rotation never drops a newer rotation's PREVIOUS."""
    current = stages.current
    if current is None or current.token != token:
        return Cleared(stages)
    return Cleared(Stages(current=current, pending=stages.pending, previous=None), cleared=stages.previous)


class StageLog:
    """The log lines of stage moves, on the store's own logger, with the store's name and `describe()`.

    Keys appear by label and rotations by token; never a secret.
    """

    def __init__(self, log: logging.Logger, store: str, where: str) -> None:
        self._log = log
        self._store = store
        self._where = where

    def staging(self, staged: Staged) -> None:
        """Before writing a `put_pending`: that nothing needs writing, or which abandoned PENDING is replaced."""
        key, token = staged.key, staged.key.token
        if not staged.changed:
            self._log.debug("%s already holds %s under token %s", self._where, key.label, token)
            return
        replaced = staged.replaced
        if replaced is not None:
            self._log.warning(
                "replacing abandoned PENDING %s (token %s) with %s in %s; the engine revokes the abandoned key",
                replaced.label,
                replaced.token,
                key.label,
                self._where,
                extra={"fields": {"store": self._store, "dropped": replaced.label, "token": token}},
            )

    def staged(self, staged: Staged) -> None:
        """After writing a `put_pending` that changed something."""
        key = staged.key
        self._log.info(
            "staged %s as PENDING in %s",
            key.label,
            self._where,
            extra={"fields": {"store": self._store, "key": key.label, "token": key.token}},
        )

    def reprojected(self, why: str, key: StoredKey) -> None:
        """`why` found readers still seeing an older key than the stage document's CURRENT, and showed `key` again."""
        self._log.info(
            "%s: re-projected %s into %s (an earlier call stopped between the sidecar and the dotenv file)",
            why,
            key.label,
            self._where,
            extra={"fields": {"store": self._store, "key": key.label}},
        )

    def already_current(self, why: str, key: StoredKey) -> None:
        """`why` (the call) found `key` already CURRENT where readers look: nothing to write."""
        self._log.debug("%s: %s is already current in %s", why, key.label, self._where)

    def promoting(self, promotion: Promotion) -> None:
        """Before writing a promotion: the never-cleared PREVIOUS it drops, if any."""
        dropped = promotion.dropped
        if dropped is None:
            return
        self._log.warning(
            "PREVIOUS %s in %s was never cleared and is now replaced; if it is still active at Bluum, "
            "`rotator sweep` revokes it",
            dropped.label,
            self._where,
            extra={"fields": {"store": self._store, "dropped": dropped.label}},
        )

    def promoted(self, promotion: Promotion, token: str) -> None:
        """After writing a promotion."""
        key, previous = promotion.key, promotion.previous
        self._log.info(
            "promoted %s to CURRENT in %s; PREVIOUS is %s",
            key.label,
            self._where,
            previous.label if previous else "empty",
            extra={
                "fields": {
                    "store": self._store,
                    "key": key.label,
                    "token": token,
                    "previous": previous.label if previous else None,
                }
            },
        )

    def rolled_back(self, rollback: Rollback, token: str) -> None:
        """After writing a rollback: the key restored, or else the abandoned PENDING dropped (or nothing at all)."""
        restored, replaced, dropped = rollback.restored, rollback.replaced, rollback.dropped
        if restored is not None and replaced is not None:
            self._log.info(
                "restored %s as CURRENT in %s, replacing %s",
                restored.label,
                self._where,
                replaced.label,
                extra={
                    "fields": {"store": self._store, "key": restored.label, "replaced": replaced.label, "token": token}
                },
            )
        elif dropped is not None:
            self._log.info(
                "dropped PENDING %s of an abandoned rotation from %s",
                dropped.label,
                self._where,
                extra={"fields": {"store": self._store, "key": dropped.label, "token": token}},
            )

    def cleared(self, cleared: Cleared) -> None:
        """After writing a `clear_previous` that forgot a key."""
        key = cleared.cleared
        if key is None:
            return
        self._log.info(
            "cleared PREVIOUS %s from %s",
            key.label,
            self._where,
            extra={"fields": {"store": self._store, "key": key.label}},
        )


# --------------------------------------------------------------------------------------------------- label moves
#
# Stores whose stages are labels on versions (AWS Secrets Manager: AWSCURRENT, AWSPENDING, AWSPREVIOUS on version
# ids, the rotation token being the version id) cannot move two labels in one call. A promote is two calls (move
# CURRENT, then take PENDING off), and a crash can fall between them. These rules never remember what was done:
# they look at the labels as they are now and say which calls remain, so running them again after a crash finishes
# the move, and running them on a finished move asks for nothing.
#
# One rule of such stores is built in: moving CURRENT off a version puts PREVIOUS on it (and off any other).

CURRENT_LABEL = "current"
PENDING_LABEL = "pending"
PREVIOUS_LABEL = "previous"


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One call: put `label` on `to` (None: on no version) and take it off `off` (None: from no version)."""

    label: str
    to: str | None
    off: str | None


Labels = dict[str, frozenset[str]]
"""Version id → the stage labels it carries."""


def holder(labels: Labels, label: str) -> str | None:
    """The version carrying `label`, or None. More than one is a broken store: StoreConflict."""
    found = [version for version, carried in labels.items() if label in carried]
    if len(found) > 1:
        raise StoreConflict(
            f"label {label} is on {len(found)} versions ({', '.join(sorted(found))}); repair it by hand"
        )
    return found[0] if found else None


def moves_to_stage(labels: Labels, token: str) -> list[LabelMove]:
    """PENDING onto version `token` (which the caller has written), off any other version."""
    pending = holder(labels, PENDING_LABEL)
    return [] if pending == token else [LabelMove(PENDING_LABEL, token, pending)]


def moves_to_promote(labels: Labels, token: str, *, where: str, store: str) -> list[LabelMove]:
    """CURRENT onto `token` (its old version becomes PREVIOUS by the store's own rule), then PENDING off `token`."""
    current, pending = holder(labels, CURRENT_LABEL), holder(labels, PENDING_LABEL)
    if current != token and pending != token:
        raise StoreConflict(
            f"neither PENDING nor CURRENT carries token {token} in {where}; nothing was changed. That rotation's key "
            "was never staged here or was replaced: run `rotator status` to see which rotation this store belongs to",
            store=store,
        )
    moves = [] if current == token else [LabelMove(CURRENT_LABEL, token, current)]
    if pending == token:
        moves.append(LabelMove(PENDING_LABEL, None, token))
    return moves


def moves_to_restore(labels: Labels, token: str, *, where: str, store: str) -> list[LabelMove]:
    """Roll back `token`: CURRENT back onto PREVIOUS's version, then the PREVIOUS that this put on `token` (and any
    PENDING of `token`) taken off. A CURRENT of another token is left alone."""
    current, previous = holder(labels, CURRENT_LABEL), holder(labels, PREVIOUS_LABEL)
    moves = []
    if current == token:
        if previous is None or previous == token:
            raise StoreConflict(
                f"CURRENT carries token {token} but no other version is PREVIOUS in {where}, so there is no older key "
                "to restore; nothing was changed. Keep CURRENT, or deploy a working key with a new rotation",
                store=store,
            )
        moves.append(LabelMove(CURRENT_LABEL, previous, token))
        previous = token  # the store's rule: the version CURRENT left is PREVIOUS now
    if previous == token:
        moves.append(LabelMove(PREVIOUS_LABEL, None, token))
    if holder(labels, PENDING_LABEL) == token:
        moves.append(LabelMove(PENDING_LABEL, None, token))
    return moves


def moves_to_clear(labels: Labels, token: str) -> list[LabelMove]:
    """PREVIOUS off its version once its key is revoked, when CURRENT carries `token` (as `clear_previous`)."""
    previous = holder(labels, PREVIOUS_LABEL)
    if holder(labels, CURRENT_LABEL) != token or previous is None or previous == token:
        return []
    return [LabelMove(PREVIOUS_LABEL, None, previous)]
