"""Stage moves for stores that keep their stages in one document and show CURRENT in a copy that readers read.

Why shared: the env store keeps its stages in a sidecar JSON file and shows CURRENT in the dotenv file that
applications read; a Vault KV v2 store keeps its stages in a stage document and shows CURRENT as the latest
version at the path applications read. Both must write the document first and the copy second, and both must
repair a crash between the two writes when the same call is made again. What moves where is `backends.stages`;
this module is the write order, the reading of CURRENT through the copy, and the repair.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, Self, TypeVar

from backends import stages
from backends.stages import StageLog, Stages
from rotator.core.errors import StoreCorrupt, StoreNotFound
from rotator.core.model import Stage, StoredKey


class StageDocument(Protocol):
    """What a store keeps its stages in (plus whatever else it keeps there, such as the rotation record)."""

    @property
    def stages(self) -> Stages: ...

    @property
    def rolled_back_token(self) -> str | None:
        """The token the last `restore_previous` undid: lets a retry of that very restore finish the copy."""
        ...

    def with_stages(self, moved: Stages, *, rolled_back_token: str | None) -> Self:
        """This document with the stages `moved`, everything else kept."""
        ...


D = TypeVar("D", bound=StageDocument)


class ProjectingStore(Protocol[D]):
    """The two places a store writes, as the helper needs them."""

    def load_document(self) -> D:
        """The stage document (an empty one when there is none yet)."""
        ...

    def save_document(self, document: D) -> None:
        """Write the stage document atomically."""
        ...

    def shown(self) -> StoredKey:
        """The key readers see now, as they read it (StoreNotFound when there is nothing to read)."""
        ...

    def check_show(self, key: StoredKey) -> None:
        """Refuse (StoreError), writing nothing, a key the copy could not show faithfully."""
        ...

    def show(self, key: StoredKey) -> bool:
        """Make readers see `key`; refuse (StoreError) before writing anything it cannot show faithfully.
        Returns False when readers already saw it (nothing written)."""
        ...


class Projected:
    """The stage calls of a `SecretStore`, for a store that keeps a document and shows a copy.

    Every mutating call writes the document first and the copy second; calling it again after a crash between the
    two finds the document done and only re-shows the copy.
    """

    def __init__(self, store: ProjectingStore[D], log: StageLog) -> None:
        self._store: ProjectingStore[StageDocument] = store  # type: ignore[assignment]
        self._log = log

    def current(self, document: StageDocument) -> StoredKey:
        """What readers see, tagged with the document's token only when the document holds that same key."""
        return self._tagged(self._store.shown(), document)

    @staticmethod
    def _tagged(key: StoredKey, document: StageDocument) -> StoredKey:
        """`key` as readers see it, with the document's token (and what the copy does not show, such as a key id
        line nobody asked for) when the document holds that same key."""
        held = document.stages.current
        if held is not None and held.same_key(key):
            return replace(
                key,
                token=held.token,
                key_id=key.key_id or held.key_id,
                environment=key.environment or held.environment,
                base_url=key.base_url or held.base_url,
            )
        return key

    def read(self, stage: Stage) -> StoredKey | None:
        """CURRENT through the copy (plus the document's token); PENDING and PREVIOUS from the document."""
        document = self._store.load_document()
        if stage is Stage.CURRENT:
            return self.current(document)
        if stage is Stage.PENDING:
            return document.stages.pending or self._unshown_current(document)
        return document.stages.previous

    def read_stages(self) -> dict[Stage, StoredKey]:
        """Every stage that holds a key, as `read` gives each (a copy that shows nothing: no CURRENT), from one
        reading of the document and of the copy: what a holdings check sees at one moment."""
        try:
            document = self._store.load_document()
        except StoreNotFound:
            return {}
        try:
            shown: StoredKey | None = self._store.shown()
        except StoreNotFound:
            shown = None
        stages = {
            Stage.CURRENT: None if shown is None else self._tagged(shown, document),
            Stage.PENDING: document.stages.pending or self._unshown(document, shown),
            Stage.PREVIOUS: document.stages.previous,
        }
        return {stage: key for stage, key in stages.items() if key is not None}

    def _unshown_current(self, document: StageDocument) -> StoredKey | None:
        """The document's CURRENT while a crashed promote left readers seeing PREVIOUS, else None.

        Readers do not see that key yet, and CURRENT (read through the copy) does not carry its token, so without
        this a resumed rotation could not find its new key by token. Reported as PENDING, it is found, and
        `promote(token)` finishes the copy.
        """
        current, previous = document.stages.current, document.stages.previous
        if current is None or current.token is None or previous is None:
            return None
        try:
            shown = self._store.shown()
        except (StoreNotFound, StoreCorrupt):
            return None  # readers see nothing usable: no key of a crashed promote is hidden there
        # Any other failure (the store cannot be reached) propagates: a holdings check must fail closed.
        return self._unshown(document, shown)

    @staticmethod
    def _unshown(document: StageDocument, shown: StoredKey | None) -> StoredKey | None:
        """The document's CURRENT when readers see (`shown`) its PREVIOUS instead (see `_unshown_current`)."""
        current, previous = document.stages.current, document.stages.previous
        if current is None or current.token is None or previous is None or shown is None:
            return None
        if shown.same_key(previous) and not shown.same_key(current):
            return current
        return None

    def put_pending(self, key: StoredKey, *, where: str, store: str) -> stages.Staged:
        """Stage `key` as PENDING under its token: the document only (readers see nothing yet)."""
        stages.require_token(key)
        document = self._store.load_document()
        staged = stages.put_pending(document.stages, key, where=where, store=store)
        self._log.staging(staged)
        if staged.changed:
            self._store.save_document(document.with_stages(staged.stages, rolled_back_token=document.rolled_back_token))
            self._log.staged(staged)
        return staged

    def promote(self, token: str, *, where: str, store: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT and what readers saw becomes PREVIOUS: the document, then the copy."""
        document = self._store.load_document()
        try:
            seen: StoredKey | None = self._tagged(self._store.shown(), document)  # readable before anything moves
        except StoreNotFound:
            if document.stages.current is not None:
                raise  # readers saw a key before and cannot now: someone removed their copy; do not guess
            seen = None  # a first key (enrollment): nothing was shown yet, nothing becomes PREVIOUS
        promotion = stages.promote(document.stages, token, shown=lambda: seen, where=where, store=store)
        if not promotion.changed:
            self._reshow(promotion.key, why="promote")
            return promotion
        self._log.promoting(promotion)
        self._store.check_show(promotion.key)  # a copy that cannot show it refuses before the document moves
        self._store.save_document(document.with_stages(promotion.stages, rolled_back_token=None))
        self._store.show(promotion.key)
        self._log.promoted(promotion, token)
        return promotion

    def restore_previous(self, token: str, *, where: str, store: str) -> stages.Rollback:
        """Rollback: when CURRENT carries `token`, PREVIOUS is CURRENT again (the document, then the copy).

        When CURRENT does not carry `token`, CURRENT is left alone: a PENDING of `token` is dropped, and a retry of a
        restore of this very token that crashed between the two writes shows the restored key again.
        """
        document = self._store.load_document()
        rollback = stages.restore_previous(document.stages, token, where=where, store=store)
        if rollback.restored is None:
            if rollback.changed:
                moved = document.with_stages(rollback.stages, rolled_back_token=document.rolled_back_token)
                self._store.save_document(moved)
                self._log.rolled_back(rollback, token)
            held = document.stages.current
            if held is not None and document.rolled_back_token == token:
                self._reshow(held, why="restore_previous")
            return rollback
        self._store.check_show(rollback.restored)
        self._store.save_document(document.with_stages(rollback.stages, rolled_back_token=token))
        self._store.show(rollback.restored)
        self._log.rolled_back(rollback, token)
        return rollback

    def clear_previous(self, token: str) -> stages.Cleared:
        """Forget PREVIOUS once its key is revoked (when CURRENT carries `token`); readers never saw it."""
        document = self._store.load_document()
        cleared = stages.clear_previous(document.stages, token)
        if cleared.cleared is not None:
            moved = document.with_stages(cleared.stages, rolled_back_token=document.rolled_back_token)
            self._store.save_document(moved)
            self._log.cleared(cleared)
        return cleared

    def _reshow(self, key: StoredKey, *, why: str) -> None:
        """Make readers see `key` (the document's CURRENT) if they do not already: the crash-repair path."""
        if self._store.show(key):
            self._log.reprojected(why, key)
        else:
            self._log.already_current(why, key)
