"""The env store's sidecar: the stage document (stages, tokens, the rotation record) kept beside nothing public.

Why a file of its own: a dotenv file has no room for stages, so PENDING, PREVIOUS, the rotation token of each stage
and the rotation record live in a JSON file. It is the source of truth for stages; the dotenv file is a projection
of its CURRENT.

It lives in the rotator's own state folder (`state_dir`, by default `rotator-state/` beside rotator.toml; the
configuration passes it in) as `<store name>.json`, never beside the application's file, where a `git add -A` or an
image build would pick its secrets up. A sidecar an older version left beside the file is read until the next write
moves it. A store built without `state_dir` keeps it beside the file (`<file>.rotator.json`).

The sidecar is a stage document (`backends.stage_document`), as a JSON file of mode 0600. It is the rotator's own
secret file, so it is read and written through `rotator.core.state_files`, not like the application's file: the
state folder must be the running user's (or root's) and writable by nobody else, a sidecar of another user is
refused, and each write is a new file of the running user (never keeping the owner of a file found there).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

from backends.env.reports import os_errors
from backends.stage_document import DOCUMENT_VERSION, DocumentReader, StageDocument
from rotator.core.state_files import read_own_file, write_own_file

__all__ = ["SIDECAR_SUFFIX", "SIDECAR_VERSION", "Sidecar"]

log = logging.getLogger("rotator.store.env")

SIDECAR_SUFFIX: Final = ".rotator.json"
SIDECAR_VERSION: Final = DOCUMENT_VERSION

_SIDECAR_FIX: Final = (
    "restore it from a backup, or, if no rotation is under way, delete it (CURRENT in the dotenv file is kept; "
    "then run `rotator sweep` so keys only the sidecar knew get revoked)"
)


class Sidecar:
    """Where the stage document of store `name` (whose dotenv file is `file_path`) is kept, and its reads and writes.

    `where` is how the store is named in messages (`EnvStore.describe`)."""

    def __init__(self, name: str, file_path: Path, state_dir: str | os.PathLike[str] | None, *, where: str) -> None:
        self._name = name
        self._where = where
        beside = file_path.with_name(file_path.name + SIDECAR_SUFFIX)
        self._path = Path(state_dir) / f"{name}.json" if state_dir is not None else beside
        self._legacy = beside if state_dir is not None else None
        """Where an older version kept the sidecar (beside the file): read until the first write moves it."""
        self.setting = f"state_dir of [stores.{name}]"
        """The setting that names the state folder, for messages (`rotator.core.state_files`)."""

    @property
    def path(self) -> Path:
        """The JSON file holding stages, tokens and the rotation record."""
        return self._path

    @property
    def in_state_dir(self) -> bool:
        """True when the sidecar is in the rotator's own state folder (False: beside the file, the folder not ours)."""
        return self._legacy is not None

    @property
    def pin_path(self) -> Path:
        """Where the pin of the rotation under way is kept: beside the sidecar (`backends.env.target`)."""
        return self._path.with_name(self._path.name.removesuffix(".json") + ".pin.json")

    def load(self) -> StageDocument:
        """The sidecar's stages and record; an absent sidecar means no stages yet (a hand-seeded file).

        The state folder and the sidecar are checked first (`rotator.core.state_files`): one another user could read or
        swap, or one this user cannot use, is refused (exit 2) with the owner and the fix, before anything changes.
        """
        path = self._path
        data = read_own_file(path, setting=self.setting, store=self._name, check_folder=self.in_state_dir)
        if data is None and self._legacy is not None:
            path = self._legacy  # state of an older version, beside the file: moved at the next write
            data = read_own_file(path, setting=self.setting, store=self._name, check_folder=False)
        if data is None:
            return StageDocument()
        return DocumentReader(str(path), self._name, _SIDECAR_FIX).parse_bytes(data)

    def save(self, document: StageDocument) -> None:
        """A new file owned by this user, 0600, renamed over the sidecar: never the owner of a file found there."""
        write_own_file(
            self._path,
            document.to_json(),
            setting=self.setting,
            store=self._name,
            check_folder=self.in_state_dir,  # the rotator's own state folder; never the application's
        )
        legacy = self._legacy
        if legacy is not None and legacy.exists():  # the new sidecar is durable: the old one (secrets) goes
            with os_errors(self._name, "removing", legacy):
                legacy.unlink()
            log.info(
                "moved the rotation state of %s from %s to %s, out of the application's folder",
                self._where,
                legacy,
                self._path,
                extra={"fields": {"store": self._name}},
            )
