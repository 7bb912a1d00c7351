"""The rotation history: an append-only record, per credential, of every rotation's steps and how they ended.

Why it exists beside the rotation record: the record is one document that each rotation overwrites (an
emergency's reason was gone at the next rotation), while an audit needs what happened, when, to which keys, by
whom and why, kept for as long as Bluum asks (at least 30 days). It subscribes to the event bus; it never holds a
secret (events carry key ids and labels only).

One JSON object per line in `<dir>/<credential>.jsonl` (0600, in a 0700 folder), appended under `flock` on a
separate `<credential>.lock` (never renamed, so pruning cannot split the lock) so two runners on one host never
interleave a line. Entries older than `keep` are dropped when a rotation starts; a failed prune never costs the
entry. A last line left torn by a crash is closed before the next one is appended. A damaged line (a byte that is not
UTF-8, text that is not JSON) is skipped and reported by line number when the history is read, and kept as it is:
it stops neither the appending nor the pruning of the others.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rotator.core.atomicfile import atomic_write_text
from rotator.core.errors import StoreDenied, StoreError
from rotator.core.events import OBSERVATIONS, EventKind, RotationEvent
from rotator.core.file_lock import lock_within
from rotator.core.state_files import check_state_folder, explain_denied, refuse_own_file
from rotator.core.timestamps import format_timestamp

log = logging.getLogger("rotator.history")

FILE_MODE = 0o600
DIR_MODE = 0o700
LOCK_WAIT = 5.0
"""Seconds an append waits for the history lock before it appends without it (a frozen holder must not block)."""
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
            "time": format_timestamp(event.at),
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
        with self._locked(event.credential) as (path, alone):
            if alone and event.kind in (EventKind.STARTED, EventKind.RESUMED):
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
        and the `chown` that fixes it (`rotator.core.state_files`)."""
        check_state_folder(self.folder, setting=HISTORY_SETTING)
        for path in (self.path(credential), self._lock_path(credential)):
            refuse_own_file(path)

    def read(self, credential: str) -> list[dict[str, Any]]:
        """Every entry of `credential`, oldest first; a damaged line is logged and skipped (`read_checked`)."""
        return self.read_checked(credential).entries

    def read_checked(self, credential: str) -> HistoryRead:
        """Every entry of `credential`, oldest first, and the numbers of the lines that are not one: not UTF-8 (a
        disk error, an editor, a file from elsewhere), not JSON, or not a JSON object. Each line is judged alone, so
        one bad byte costs one line, never the rest of the record."""
        path = self.path(credential)
        self.check(credential)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return HistoryRead([], ())
        except PermissionError as exc:
            raise StoreDenied(explain_denied(path, "reading", ours=self.folder)) from exc
        except OSError as exc:
            raise StoreError(f"cannot read the history {path}: {exc.strerror}") from exc
        entries: list[dict[str, Any]] = []
        damaged: list[int] = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            entry = _entry(line)
            if entry is None:
                damaged.append(number)
                continue
            entries.append(entry)
        if damaged:
            log.warning(
                "skipped %d damaged line(s) of %s (not a UTF-8 JSON entry): %s",
                len(damaged),
                path,
                _numbers(damaged),
                extra={"fields": {"credential": credential, "damaged_lines": len(damaged)}},
            )
        return HistoryRead(entries, tuple(damaged))

    def _lock_path(self, credential: str) -> Path:
        return self.path(credential).with_suffix(".lock")

    @contextmanager
    def _locked(self, credential: str) -> Iterator[tuple[Path, bool]]:
        """The history file, and whether this process holds its lock. The lock only keeps a prune from dropping a
        line appended meanwhile, so it is waited for LOCK_WAIT seconds at most: a holder that is frozen (SIGSTOP, a
        paused VM) must never stop another runner's rotation. Without the lock the line is still appended (one
        O_APPEND write) and only the prune is skipped."""
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
            alone = lock_within(fd, LOCK_WAIT)
            if not alone:
                log.warning(
                    "the history lock %s is held by another process for over %.0f s (a stopped runner?); "
                    "the entry is appended without it and old entries are pruned next time",
                    self._lock_path(credential),
                    LOCK_WAIT,
                )
            yield path, alone
        finally:
            os.close(fd)

    def _prune(self, path: Path, *, now: float) -> None:
        """Drop entries older than `keep` (atomically: a crash leaves the old file or the new one).

        Bytes, not text: a line that is not UTF-8 is kept exactly as it is (never lose what cannot be judged) and
        must not stop the pruning of the others. Latin-1 maps each byte to one character and back, so the kept
        lines are written back byte for byte."""
        cutoff = now - self.keep.total_seconds()
        lines = path.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if _at(line) >= cutoff]
        if len(kept) != len(lines):
            atomic_write_text(path, b"".join(kept).decode("latin-1"), encoding="latin-1")


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What `read_checked` found: the entries, and the line numbers (from 1) of the damaged lines it skipped."""

    entries: list[dict[str, Any]]
    damaged: tuple[int, ...]

    def damage_report(self, path: Path) -> str | None:
        """One line for stderr naming the damaged lines, or None when there were none."""
        if not self.damaged:
            return None
        return (
            f"warning: {path}: skipped {len(self.damaged)} damaged line(s) (not a UTF-8 JSON entry): "
            f"{_numbers(self.damaged)}. They stay in the file as they are; the other entries are shown, new ones "
            "are appended and old ones pruned as usual"
        )


_TEXT_FIELDS = ("time", "credential", "token", "event", "step", "message", "old_key", "new_key", "reason", "actor")
_NUMBER_FIELDS = ("at", "seconds")


def _entry(line: bytes) -> dict[str, Any] | None:
    """The entry on one line, or None when the line is not UTF-8 JSON holding an object whose fields are an entry's
    (text where an entry has text, a number where it has one: a hand edit's `"event": null` is damage, not an entry
    for `rotator history` to trip over)."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return None
    if not isinstance(entry, dict):
        return None
    if any(key in entry and not isinstance(entry[key], str) for key in _TEXT_FIELDS):
        return None
    if any(key in entry and not _is_number(entry[key]) for key in _NUMBER_FIELDS):
        return None
    return entry


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(numbers: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return f"line {shown}" if len(numbers) == 1 else f"lines {shown}" + (", ..." if len(numbers) > limit else "")


def _at(line: bytes) -> float:
    """The time of an entry; a line that cannot be read is kept (never lose what cannot be judged)."""
    entry = _entry(line)
    value = None if entry is None else entry.get("at")
    return float(value) if isinstance(value, int | float) and _is_number(value) else float("inf")
