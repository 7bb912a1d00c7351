"""A pause: an operator's "don't START new scheduled rotations of this credential" (`rotator pause`).

Why it lives in the ledger (the rotation record's own entry, `PAUSE_KEY`), not on the runner: every runner of a
credential (cron on one host, the daemon on another, the Lambda) reads that credential's ledger before it decides,
and only the ledger is shared by all of them. A pause is written like the record, under the ledger's lease and by
compare-and-set on the version read, so a pause and a rotation's step never overwrite each other; the record keeper
carries it through every record write (`RecordKeeper.write`).

What a pause stops, and what it does not (README "Pausing"):
- the schedulers (run-due, the daemon, the Lambda tick) start no new rotation while it holds (`scheduled_start`);
- a rotation already under way is still finished by resume or the next tick: a half-rotated key (two active keys, a
  new key in some stores only) is worse than one rotation the operator did not want, and stopping mid-way would leave
  exactly that;
- a person's `rotate` and an emergency go on (they are told it is paused): an operator typing the command means it,
  and an emergency must never wait on a flag someone forgot.
A pause `until` a time ends by itself at that time; without one it holds until `rotator unpause`.

Pure: no I/O. The reason is not a secret, but like every record field it is kept out of the stores' secret payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from rotator.core.durations import parse_duration
from rotator.core.errors import ConfigError
from rotator.core.timestamps import format_timestamp

PAUSE_KEY: Final = "pause"
"""The ledger record's entry that holds the pause, beside the rotation record's fields."""

REASON_LIMIT: Final = 500
"""The longest reason kept: a line for status and the history, not a document."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Who paused the credential, when, until when (None: until `rotator unpause`), and why."""

    by: str
    since: float
    reason: str
    until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "since": self.since, "until": self.until, "reason": self.reason}

    @classmethod
    def from_json(cls, data: object) -> Pause | None:
        """The pause kept in a ledger record, or None when there is none (or it cannot be read: a pause that cannot
        be read does not stop a rotation; `status` shows the credential unpaused, and pausing again rewrites it)."""
        if not isinstance(data, dict):
            return None
        by, since, reason, until = data.get("by"), data.get("since"), data.get("reason"), data.get("until")
        if not isinstance(by, str) or not isinstance(reason, str) or not isinstance(since, int | float):
            return None
        if until is not None and not isinstance(until, int | float):
            return None
        return cls(by=by, since=float(since), reason=reason, until=None if until is None else float(until))

    def describe(self) -> str:
        """`paused by B since T until U: REASON`, for status, alerts and the scheduler's line."""
        until = f" until {format_timestamp(self.until)}" if self.until is not None else " until `rotator unpause`"
        return f"paused by {self.by} since {format_timestamp(self.since)}{until}: {self.reason}"


def pause_in(data: dict[str, Any] | None) -> Pause | None:
    """The pause kept in a ledger record dict (as `Ledger.read_record` returns it)."""
    return None if data is None else Pause.from_json(data.get(PAUSE_KEY))


def rotation_part(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rotation record in a ledger record dict: None when the dict holds a pause only (a credential paused
    before its first rotation)."""
    if data is None or set(data) <= {PAUSE_KEY}:
        return None
    return data


def in_force(pause: Pause | None, now: float) -> Pause | None:
    """`pause` while it holds at `now`; None once its `until` has passed (a pause ends by itself)."""
    if pause is None or (pause.until is not None and now >= pause.until):
        return None
    return pause


def scheduled_start(name: str, pause: Pause | None, now: float) -> str | None:
    """The schedulers' check before they START a rotation: why not (the line they report), or None to go on.

    Only starts are asked about: an unfinished rotation is finished whatever the pause (see the module docstring)."""
    held = in_force(pause, now)
    if held is None:
        return None
    return f"{name}: due, but not started: {held.describe()}. `rotator unpause {name}` lets the scheduler rotate it"


def check_reason(reason: str | None) -> str:
    """The reason, stripped; ConfigError (exit 2) when it is missing, blank, or longer than a line."""
    text = (reason or "").strip()
    if not text:
        raise ConfigError("pause needs --reason TEXT (not blank): it is shown in status and kept in the history")
    if len(text) > REASON_LIMIT or "\n" in text or "\r" in text:
        raise ConfigError(f"--reason must be one line of at most {REASON_LIMIT} characters. Nothing was changed")
    return text


def parse_until(text: str, now: float) -> float:
    """`--until`: an ISO 8601 time (a zone, or UTC when none is given) or a duration from now ("6h", "2d", "90s").
    ConfigError (exit 2) for anything else and for a time not in the future."""
    raw = text.strip()
    try:
        until = now + parse_duration(raw).total_seconds()
    except ConfigError:
        try:
            parsed = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
        except ValueError:
            raise ConfigError(
                f"--until {text!r} is neither an ISO 8601 time (2026-12-24T18:00:00Z) nor a duration (6h, 1h30m). "
                "Nothing was changed"
            ) from None
        until = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if until <= now:
        raise ConfigError(
            f"--until {text!r} ({format_timestamp(until)}) is not in the future: a pause must end later than now. "
            "Nothing was changed"
        )
    return until
