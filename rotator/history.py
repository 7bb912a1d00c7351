"""The rotation history: an append-only record, per credential, of every rotation's steps and how they ended.

Why it exists beside the rotation record: the record is one document that each rotation overwrites (an
emergency's reason was gone at the next rotation), while an audit needs what happened, when, to which keys, by
whom and why, kept for as long as Bluum asks (at least 30 days). It subscribes to the event bus; it never holds a
secret (events carry key ids and labels only).

One JSON object per line in `<dir>/<credential>.jsonl` (0600, in a 0700 folder), appended under `flock` on a
separate `<credential>.lock` (never renamed, so pruning cannot split the lock) so two runners on one host never
interleave a line. Entries older than `keep` are dropped when a rotation starts; a failed prune never costs the
entry. A last line left torn by a crash is closed before the next one is appended.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from rotator.atomicfile import atomic_write_text
from rotator.errors import StoreDenied, StoreError
from rotator.events import OBSERVATIONS, EventKind, RotationEvent
from rotator.state_files import check_state_folder, explain_denied, refuse_own_file

log = logging.getLogger("rotator.history")

FILE_MODE = 0o600
DIR_MODE = 0o700
HISTORY_SETTING = "[history] dir in rotator.toml"


class HistoryLog:
    """Appends events to, and reads, the history files in one folder."""

    def __init__(self, folder: Path, *, keep: timedelta) -> None:
        self.folder = folder
        self.keep = keep

    def path(self, credential: str) -> Path:
        """The history file of `credential` (names are restricted to [A-Za-z0-9_-] by the configuration)."""
        return self.folder / f"{credential}.jsonl"

    def __call__(self, event: RotationEvent) -> None:
        """The bus subscriber: one line per event (progress of a wait is not history, nor what a tick observes)."""
        if event.kind is EventKind.PROGRESS or event.kind in OBSERVATIONS:
            return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.at)),
            "at": round(event.at, 3),
            "credential": event.credential,
            "token": event.token,
            "event": event.kind.value,
            "step": event.step,
            "message": event.message,
            "old_key": event.old_key,
            "new_key": event.new_key,
            "reason": event.reason,
            "actor": event.actor,
            "seconds": None if event.seconds is None else round(event.seconds, 3),
        }
        line = json.dumps({k: v for k, v in entry.items() if v is not None}, sort_keys=False) + "\n"
        with self._locked(event.credential) as path:
            if event.kind in (EventKind.STARTED, EventKind.RESUMED):
                try:
                    self._prune(path, now=event.at)
                except (OSError, ValueError) as exc:
                    log.warning("could not prune %s (%s); the entry is appended anyway", path, type(exc).__name__)
            with path.open("a+b") as handle:
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":  # a line torn by a crash: close it so the new one stands alone
                        line = "\n" + line
                handle.write(line.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())

    def check(self, credential: str) -> None:
        """Refuse (StoreDenied, exit 2) before a rotation starts a history folder or file that another user could
        swap, or that this user cannot write (a `sudo rotator ...` run leaves root's behind): named, with its owner
        and the `chown` that fixes it (`rotator.state_files`)."""
        check_state_folder(self.folder, setting=HISTORY_SETTING)
        for path in (self.path(credential), self._lock_path(credential)):
            refuse_own_file(path)

    def read(self, credential: str) -> list[dict[str, Any]]:
        """Every entry of `credential`, oldest first; a line that is not JSON is reported and skipped."""
        path = self.path(credential)
        self.check(credential)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise StoreDenied(explain_denied(path, "reading", ours=self.folder)) from exc
        except OSError as exc:
            raise StoreError(f"cannot read the history {path}: {exc.strerror}") from exc
        entries = []
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("skipping line %d of %s: not JSON", number, path)
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def _lock_path(self, credential: str) -> Path:
        return self.path(credential).with_suffix(".lock")

    @contextmanager
    def _locked(self, credential: str) -> Iterator[Path]:
        path = self.path(credential)
        self.check(credential)
        try:
            self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=FILE_MODE)
            fd = os.open(self._lock_path(credential), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except PermissionError as exc:
            raise StoreDenied(explain_denied(path, "writing", ours=self.folder)) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot write the history {path}: {exc.strerror}. Fix `[history] dir` in rotator.toml or the "
                "folder's permissions"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            os.close(fd)

    def _prune(self, path: Path, *, now: float) -> None:
        """Drop entries older than `keep` (atomically: a crash leaves the old file or the new one)."""
        cutoff = now - self.keep.total_seconds()
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _at(line) >= cutoff]
        if len(kept) != len(lines):
            atomic_write_text(path, "".join(kept))


def _at(line: str) -> float:
    """The time of an entry; a line that cannot be read is kept (never lose what cannot be judged)."""
    try:
        value = json.loads(line).get("at")
    except (ValueError, AttributeError):
        return float("inf")
    return float(value) if isinstance(value, int | float) else float("inf")
