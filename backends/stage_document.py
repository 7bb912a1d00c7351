"""The stage document: one credential's stages, their tokens and its rotation record, as one JSON object.

Why shared: the env store keeps it in a sidecar file and the Vault store as the data of a KV v2 secret beside the
one applications read. Both must write the same fields and name a hand-edited or truncated document precisely, so
the format and its checking live here once. The format (secrets in the three stages, none in the record)::

    {
      "version": 1,
      "updated_at": "2025-01-31T12:00:00Z",
      "current":  {"api_key": "...", "api_secret": "...", "key_id": "apk_...", "environment": "sandbox",
                   "base_url": "https://...", "token": "rot-..."} | null,
      "pending":  {... same shape, "token" required ...} | null,
      "previous": {... same shape ...} | null,
      "rolled_back_token": "rot-..." | null,   # the token the last restore_previous undid (lets a retry repair)
      "record": {... the rotation record, no secrets ...} | null,
      "record_version": 7                      # compare-and-set counter of the record (absent: 0)
    }

A store may keep fields of its own beside these (the Vault store keeps its lease there); the reader ignores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Final, Self

from backends.stages import Stages
from rotator.core.errors import StoreCorrupt
from rotator.core.model import Environment, StoredKey
from rotator.core.secret import Secret
from rotator.core.timestamps import format_timestamp

__all__ = ["DOCUMENT_VERSION", "DocumentReader", "StageDocument"]

DOCUMENT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class StageDocument:
    """The parsed document: stages with their secrets and tokens, and the rotation record."""

    current: StoredKey | None = None
    pending: StoredKey | None = None
    previous: StoredKey | None = None
    rolled_back_token: str | None = None
    record: dict[str, Any] | None = None
    record_version: int = 0

    @property
    def stages(self) -> Stages:
        """The three stages, for the rules in `backends.stages`."""
        return Stages(current=self.current, pending=self.pending, previous=self.previous)

    def with_stages(self, moved: Stages, *, rolled_back_token: str | None) -> Self:
        """This document with the stages `moved` (and `rolled_back_token`), keeping the record and, in a subclass,
        whatever a store keeps beside them."""
        return replace(
            self,
            current=moved.current,
            pending=moved.pending,
            previous=moved.previous,
            rolled_back_token=rolled_back_token,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object to store; the only place the stages' secrets are revealed for it."""
        return {
            "version": DOCUMENT_VERSION,
            "updated_at": format_timestamp(),
            "current": _key_to_json(self.current),
            "pending": _key_to_json(self.pending),
            "previous": _key_to_json(self.previous),
            "rolled_back_token": self.rolled_back_token,
            "record": self.record,
            "record_version": self.record_version,
        }

    def to_json(self) -> str:
        """`to_dict` as indented JSON text, for a file."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _key_to_json(key: StoredKey | None) -> dict[str, str | None] | None:
    if key is None:
        return None
    return {
        "api_key": key.api_key,
        "api_secret": key.api_secret.reveal(),
        "key_id": key.key_id,
        "environment": key.environment.value if key.environment is not None else None,
        "base_url": key.base_url,
        "token": key.token,
    }


class DocumentReader:
    """Validates a document field by field, so a hand-edited or truncated one is named precisely.

    `where` names the document in messages (a file path, a Vault path) and `fix` says what to do about a broken one.
    """

    def __init__(self, where: str, store: str, fix: str) -> None:
        self._where = where
        self._store = store
        self._fix = fix

    def parse_bytes(self, data: bytes) -> StageDocument:
        """A document kept as a file."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise self._corrupt("(whole file)", f"is not UTF-8 (bad byte at offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise self._corrupt("(whole file)", f"is not JSON ({exc.msg} at {where})") from None
        if not isinstance(raw, dict):
            raise self._corrupt("(whole file)", "must be a JSON object")
        return self.parse(raw)

    def parse(self, raw: object) -> StageDocument:
        """A document already decoded from JSON (a KV secret's data)."""
        if not isinstance(raw, dict):
            raise self._corrupt("(whole document)", "must be a JSON object")
        self._check_version(raw.get("version"))
        return StageDocument(
            current=self._key(raw, "current", token_required=False),
            pending=self._key(raw, "pending", token_required=True),
            previous=self._key(raw, "previous", token_required=False),
            rolled_back_token=self._optional_str(raw, "rolled_back_token"),
            record=self._record(raw),
            record_version=self._count(raw, "record_version"),
        )

    def _check_version(self, version: object) -> None:
        if version == DOCUMENT_VERSION:
            return
        if isinstance(version, int) and not isinstance(version, bool) and version > DOCUMENT_VERSION:
            raise StoreCorrupt(
                f"{self._where}: field `version` is {version}, written by a newer rotator: upgrade bluum-rotator",
                store=self._store,
            )
        raise self._corrupt("version", f"must be {DOCUMENT_VERSION}")

    def _count(self, raw: dict[str, Any], field: str) -> int:
        value = raw.get(field, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._corrupt(field, "must be a whole number, 0 or more")
        return value

    def _key(self, raw: dict[str, Any], stage: str, *, token_required: bool) -> StoredKey | None:
        value = raw.get(stage)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._corrupt(stage, "must be an object or null")
        api_key = self._required_str(value, f"{stage}.api_key")
        api_secret = self._required_str(value, f"{stage}.api_secret")
        token = self._optional_str(value, "token", where=f"{stage}.token")
        if token_required and token is None:
            raise self._corrupt(f"{stage}.token", "must be a non-empty string (PENDING always carries its token)")
        return StoredKey(
            api_key=api_key,
            api_secret=Secret(api_secret),
            key_id=self._optional_str(value, "key_id", where=f"{stage}.key_id"),
            environment=self._environment(value, f"{stage}.environment"),
            base_url=self._optional_str(value, "base_url", where=f"{stage}.base_url"),
            token=token,
        )

    def _environment(self, value: dict[str, Any], where: str) -> Environment | None:
        name = self._optional_str(value, "environment", where=where)
        if name is None:
            return None
        try:
            return Environment(name)
        except ValueError:
            raise self._corrupt(where, "must be sandbox, production or null") from None

    def _required_str(self, value: dict[str, Any], where: str) -> str:
        item = value.get(where.rsplit(".", 1)[-1])
        if not isinstance(item, str) or not item:
            raise self._corrupt(where, "must be a non-empty string")
        return item

    def _optional_str(self, value: dict[str, Any], field: str, *, where: str | None = None) -> str | None:
        item = value.get(field)
        if item is None:
            return None
        if not isinstance(item, str) or not item:
            raise self._corrupt(where or field, "must be a non-empty string or null")
        return item

    def _record(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        record = raw.get("record")
        if record is not None and not isinstance(record, dict):
            raise self._corrupt("record", "must be an object or null")
        return record

    def _corrupt(self, field: str, problem: str) -> StoreCorrupt:
        return StoreCorrupt(f"{self._where}: field `{field}` {problem}: {self._fix}", store=self._store)
