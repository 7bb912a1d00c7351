"""When a scheduled rotation may start: allow and deny windows, a key's expiry, and a cap per paying key.

Pure: every function is handed `now` (unix seconds) and what the ledger showed; nothing here reads a clock or a store,
so the unit tests walk DST changes, windows across midnight and a deny window inside an allow window exactly.

- A window is a cron expression (when it opens, in a named IANA time zone, so "02:00 in Europe/Berlin" stays 02:00
  local across daylight-saving changes) plus a duration (how long it stays open, in elapsed time). A fire that a DST
  change skips (02:30 on the spring-forward night) happens at the first minute after the gap, as cron does.
- A scheduled start happens only inside an allow window (when any is configured) and never inside a deny window.
  A rotation that started inside may run past the window's end: windows gate starts, not steps.
- A key that Bluum lists with an expiry is due `expiry_lead` before it expires, whatever `rotate_every` says
  (`due_for_expiry`).
- At most `starts_per_window` scheduled starts per paying key (the manager key whose rate budget the rotations
  spend) in one window, so a fleet that all became due together spreads over several windows instead of bursting.
  The window the cap counts in is the open allow-window occurrence; without allow windows, a fixed slot of
  `cap_window` (aligned to the epoch, so every runner agrees on where a slot starts).
- An emergency and a person's `rotate` are not gated by any of this (the callers say so).

The cron expressions are parsed by cronsim (healthchecks.io's parser: 5 fields, `L`, `#`, `W`, DST handled as cron
does, typed, no dependencies); it is imported here only, and this module only by a credential that has windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from zoneinfo import ZoneInfo

    from rotator.rules.record import RotationRecord

__all__ = [
    "DEFAULT_CAP_WINDOW",
    "DEFAULT_EXPIRY_LEAD",
    "SEARCH_HORIZON",
    "Gate",
    "Schedule",
    "Verdict",
    "Window",
    "cap_window_start",
    "check_schedule",
    "due_for_expiry",
    "expiry_due_at",
    "gate",
    "longest_wait",
    "next_allowed_start",
    "next_due",
    "open_since",
    "reference_time",
]

DEFAULT_EXPIRY_LEAD: Final = timedelta(days=7)
"""How long before Bluum's `expires_at` a key is due: a week leaves room for a missed window or a failed try."""
DEFAULT_CAP_WINDOW: Final = timedelta(hours=1)
"""The slot the cap counts in when no allow window is configured."""
SEARCH_HORIZON: Final = timedelta(days=400)
"""How far ahead `next_allowed_start` looks: past a year, a schedule that has not opened never will."""
_ONE_SECOND: Final = timedelta(seconds=1)
_STEPS: Final = 20_000
"""A bound on the hops of one search (each hop passes a window edge), so a pathological schedule cannot spin."""


@dataclass(frozen=True, slots=True)
class Window:
    """One recurring window: opens at each `cron` fire in `zone`, stays open `duration` seconds (elapsed time)."""

    cron: str
    duration: float
    zone: str = "UTC"

    def describe(self) -> str:
        return f'"{self.cron}" for {_human(self.duration)} ({self.zone})'


@dataclass(frozen=True, slots=True)
class Schedule:
    """A credential's windows, expiry lead time and cap (rotator/config/windows.py builds it)."""

    allow: tuple[Window, ...] = ()
    deny: tuple[Window, ...] = ()
    expiry_lead: float = DEFAULT_EXPIRY_LEAD.total_seconds()
    starts_per_window: int | None = None
    cap_window: float = DEFAULT_CAP_WINDOW.total_seconds()

    @property
    def gated(self) -> bool:
        """Whether anything here can hold a scheduled start back."""
        return bool(self.allow or self.deny or self.starts_per_window)


class Gate(StrEnum):
    """Why a due key waits (or that it may start)."""

    OPEN = "open"
    DENY = "deny window"
    OUTSIDE = "outside allow windows"
    CAP = "cap"
    NEVER = "never opens"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one due key at `now`."""

    gate: Gate
    next_start: float | None
    """When it may start: `now` when open; None when the schedule never opens within SEARCH_HORIZON."""
    why: str = ""
    """In words, for `run-due` and `status` (empty when open)."""
    window_start: float | None = field(default=None)
    """Where the window the cap counts in began (None when no cap)."""

    @property
    def may_start(self) -> bool:
        return self.gate is Gate.OPEN


# ------------------------------------------------------------------------------------------ one window


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo  # here: a configuration without windows (the Lambda's, most) never needs it

    return ZoneInfo(name)


@lru_cache(maxsize=8192)
def _fire_at_or_before(window: Window, moment: float) -> float | None:
    """The latest time `window` opened at or before `moment`."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(moment, _zone(window.zone)) + _ONE_SECOND  # cronsim's reverse skips an exact hit
    return _first(CronSim(window.cron, start, reverse=True), lambda fire: fire <= moment)


@lru_cache(maxsize=8192)
def _fire_after(window: Window, moment: float) -> float | None:
    """The first time `window` opens strictly after `moment`."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(moment, _zone(window.zone))
    return _first(CronSim(window.cron, start), lambda fire: fire > moment)


# Both are pure functions of hashable values: a fleet tick asks about the same windows at the same moment many times.


def _first(fires: Iterator[datetime], wanted: Callable[[float], bool]) -> float | None:
    """The first fire that is on the wanted side of the moment. In the hour a fall-back repeats, cronsim reads a wall
    time as its first occurrence, which can lie on the wrong side of a moment in the second one: skip those."""
    for _, fire in zip(range(4), fires, strict=False):
        if wanted(fire.timestamp()):
            return fire.timestamp()
    return None


def open_since(window: Window, now: float) -> float | None:
    """When the occurrence of `window` that contains `now` opened; None when `now` is outside it. The latest fire is
    enough: a later fire of the same window also ends later."""
    fired = _fire_at_or_before(window, now)
    if fired is None or now >= fired + window.duration:
        return None
    return fired


def _open_until(windows: Iterable[Window], now: float) -> float | None:
    """The latest end of any occurrence among `windows` open at `now`; None when none is."""
    ends = [since + w.duration for w in windows if (since := open_since(w, now)) is not None]
    return max(ends) if ends else None


# ------------------------------------------------------------------------------------------ a schedule


def next_allowed_start(
    schedule: Schedule, now: float, *, horizon: float = SEARCH_HORIZON.total_seconds()
) -> float | None:
    """The first moment at or after `now` that is inside an allow window (if any is configured) and inside no deny
    window; None when there is none within `horizon` (the schedule never opens)."""
    moment = now
    for _ in range(_STEPS):
        if moment > now + horizon:
            return None
        denied_until = _open_until(schedule.deny, moment)
        if denied_until is not None:
            moment = denied_until
            continue
        if not schedule.allow or _open_until(schedule.allow, moment) is not None:
            return moment
        fires = [fire for w in schedule.allow if (fire := _fire_after(w, moment)) is not None]
        if not fires:
            return None
        moment = min(fires)
    return None


def _allowed_until(schedule: Schedule, start: float) -> float:
    """Where the allowed stretch that contains `start` ends: the allow occurrence's end or the next deny opening."""
    end = _open_until(schedule.allow, start) if schedule.allow else start + SEARCH_HORIZON.total_seconds()
    if end is None:  # `start` came from next_allowed_start, so an allow window is open
        return start
    deny_opens = [fire for w in schedule.deny if (fire := _fire_after(w, start)) is not None]
    return min([end, *deny_opens])


def longest_wait(schedule: Schedule, since: float, span: float) -> float | None:
    """The longest stretch in [since, since + span] during which no scheduled start may happen (how long a key that
    fell due at the worst moment waits); None when the schedule never opens in that span."""
    moment, longest = since, 0.0
    for _ in range(_STEPS):
        if moment >= since + span:
            return longest
        start = next_allowed_start(schedule, moment, horizon=span)
        if start is None:
            return None
        longest = max(longest, start - moment)
        moment = max(_allowed_until(schedule, start), start + 60.0)
    return longest


def cap_window_start(schedule: Schedule, now: float) -> float:
    """Where the window the cap counts in began: the earliest opening among the allow occurrences open at `now`, or
    the fixed `cap_window` slot holding `now` when no allow window is configured (or none is open)."""
    opened = [since for w in schedule.allow if (since := open_since(w, now)) is not None]
    if opened:
        return min(opened)
    return now - now % schedule.cap_window


def gate(schedule: Schedule, now: float, starts_in_window: int = 0) -> Verdict:
    """May a due key start a scheduled rotation at `now`? `starts_in_window`: scheduled starts already made by the
    keys sharing its paying key since `cap_window_start(schedule, now)` (only looked at when a cap is set)."""
    for window in schedule.deny:
        since = open_since(window, now)
        if since is not None:
            nxt = next_allowed_start(schedule, now)
            return Verdict(Gate.DENY if nxt else Gate.NEVER, nxt, f"inside deny window {window.describe()}")
    if schedule.allow and _open_until(schedule.allow, now) is None:
        nxt = next_allowed_start(schedule, now)
        names = ", ".join(w.describe() for w in schedule.allow)
        return Verdict(Gate.OUTSIDE if nxt else Gate.NEVER, nxt, f"outside its allow windows ({names})")
    if schedule.starts_per_window is None:
        return Verdict(Gate.OPEN, now)
    window_start = cap_window_start(schedule, now)
    if starts_in_window < schedule.starts_per_window:
        return Verdict(Gate.OPEN, now, window_start=window_start)
    nxt = _next_window(schedule, now)
    return Verdict(
        Gate.CAP,
        nxt,
        f"{starts_in_window} scheduled starts already in this window for its paying key "
        f"(starts_per_window = {schedule.starts_per_window})",
        window_start,
    )


def _next_window(schedule: Schedule, now: float) -> float | None:
    """The first allowed start in the NEXT cap window (the cap of this one is spent)."""
    if schedule.allow:
        end = _open_until(schedule.allow, now)
        return next_allowed_start(schedule, (end if end is not None else now) + 1.0)
    return next_allowed_start(schedule, cap_window_start(schedule, now) + schedule.cap_window)


# ------------------------------------------------------------------------------------------ expiry


def due_for_expiry(expires_at: float | None, lead: float, now: float) -> bool:
    """A key Bluum lists with an expiry is due `lead` seconds before it, whatever its rotation period says."""
    return expires_at is not None and now >= expires_at - lead


def expiry_due_at(expires_at: float | None, lead: float) -> float | None:
    return None if expires_at is None else expires_at - lead


def next_due(record: RotationRecord | None, rotate_every: timedelta, lead: float) -> float | None:
    """When the current key falls due: at the end of its rotation period, or `lead` before Bluum's expiry, whichever
    comes first; None when its age is unknown and it has no expiry (schedule.is_due counts that as due)."""
    from rotator.rules.schedule import next_due as period_due  # not the machine: `rotator status` asks this

    dues = [
        due
        for due in (
            period_due(record.current_since if record else None, rotate_every),
            expiry_due_at(record.expires_at if record else None, lead),
        )
        if due is not None
    ]
    return min(dues) if dues else None


# ------------------------------------------------------------------------------------------ validation


def check_schedule(schedule: Schedule, *, rotate_every: float, reference: float) -> list[tuple[str, str]]:
    """What is wrong with a schedule as (what, fix) pairs, looked at over a year from `reference` (a fixed date: no
    clock read): a schedule that never opens, or whose longest closed stretch outlasts the expiry lead time or the
    rotation period (a key that falls due at the worst moment would expire or run out of policy first)."""
    if not schedule.allow and not schedule.deny:
        return []
    wait = _cached_wait(schedule, reference)
    if wait is None:
        return [
            (
                "no scheduled rotation can ever start: every allow window is covered by a deny window",
                "shorten or move a deny window, or widen an allow window",
            )
        ]
    problems = []
    if wait >= schedule.expiry_lead:
        problems.append(
            (
                f"a due key may wait {_human(wait)} for an allowed start, longer than expiry_lead "
                f"({_human(schedule.expiry_lead)}): a key with an expiry could expire first",
                f'write expiry_lead = "{int(wait // 86400) + 2}d" or more, or open an allow window more often',
            )
        )
    if wait >= rotate_every:
        problems.append(
            (
                f"a due key may wait {_human(wait)} for an allowed start, longer than rotate_every",
                "open an allow window more often than the rotation period",
            )
        )
    return problems


@lru_cache(maxsize=256)
def _cached_wait(schedule: Schedule, reference: float) -> float | None:
    """A fleet shares a handful of schedules: each is walked over its year once."""
    return longest_wait(schedule, reference, timedelta(days=366).total_seconds())


def reference_time() -> float:
    """A fixed start for `check_schedule` (2026-01-05, a Monday): config checks read no clock."""
    return datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def _human(seconds: float) -> str:
    from rotator.core.durations import format_duration

    return format_duration(seconds, coarse=True)
