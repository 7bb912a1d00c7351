"""The history file: entries kept for `keep`, a torn line never swallows the next one, pruning never loses one."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from rotator.core.events import EventKind, RotationEvent
from rotator.notify.history import HistoryLog

DAY = 86400.0


def event(kind: EventKind, at: float, message: str = "m") -> RotationEvent:
    return RotationEvent(kind=kind, credential="trading", step="start", message=message, token="t" * 32, at=at)


def test_entries_older_than_keep_go_when_a_rotation_starts(tmp_path: Path):
    history = HistoryLog(tmp_path, keep=timedelta(days=30))
    history(event(EventKind.STARTED, 0.0, "old"))
    history(event(EventKind.COMPLETED, 1.0, "old end"))
    history(event(EventKind.STARTED, 40 * DAY, "new"))
    assert [e["message"] for e in history.read("trading")] == ["new"]
    assert oct(history.path("trading").stat().st_mode & 0o777) == "0o600"


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_entry(tmp_path: Path):
    history = HistoryLog(tmp_path, keep=timedelta(days=30))
    history(event(EventKind.STARTED, 1.0, "first"))
    with history.path("trading").open("a") as handle:
        handle.write('{"message": "torn')  # the process died mid-line
    history(event(EventKind.COMPLETED, 2.0, "after the crash"))
    assert [e["message"] for e in history.read("trading")] == ["first", "after the crash"]


def test_a_prune_that_fails_still_appends(tmp_path: Path):
    history = HistoryLog(tmp_path, keep=timedelta(days=30))
    history.path("trading").parent.mkdir(parents=True, exist_ok=True)
    history.path("trading").write_bytes(b'{"at": 1, "message": "kept"}\n\xff\xfe not utf-8\n')
    history(event(EventKind.STARTED, 40 * DAY, "new"))
    lines = history.path("trading").read_bytes().splitlines()
    assert json.loads(lines[-1])["message"] == "new"
