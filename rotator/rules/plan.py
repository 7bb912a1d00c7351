"""What `rotator plan` decides without I/O: whether a paying key's rate budget can rotate its fleet inside its windows,
and the words for a key's age and what is due.

The budget rule: a fresh rotation costs the paying (manager) key at least CALLS_PER_ROTATION calls (list, create,
revoke: README "Many credentials at once"), and Bluum allows that key `rate` calls a second. So one window lets at most
`window * rate / CALLS_PER_ROTATION` rotations start and finish their calls; a fleet whose starts in one window (all
of them, or `starts_per_window`) need more is too big for its window. With a cap, the windows of one rotation period
(`rotate_every`) must also hold the whole fleet, or keys fall overdue. Both are lower bounds (propagation waits and
retries come on top), so a fleet they pass may still be tight; one they fail cannot fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from rotator.core.durations import format_duration
from rotator.core.findings import Finding, Severity
from rotator.rules import windows
from rotator.rules.windows import Schedule

if TYPE_CHECKING:
    from rotator.rules.pause import Pause
    from rotator.rules.record import RotationRecord

__all__ = ["CALLS_PER_ROTATION", "FleetFit", "age_findings", "fleet_fit", "windows_in"]

CALLS_PER_ROTATION: Final = 3
_MOST_WINDOWS: Final = 100_000
"""A bound on the windows counted in one period (an every-minute cron over 90 days is 129,600)."""


@dataclass(frozen=True, slots=True)
class FleetFit:
    """Why one paying key's fleet does not fit its windows, and the fix."""

    problem: str
    fix: str


def fleet_fit(
    payer: str, count: int, *, rate: float, schedule: Schedule, rotate_every: float, now: float
) -> FleetFit | None:
    """None when `count` rotations paid by `payer` fit: each window's starts within the window's seconds of budget,
    and, under a cap, every key once per `rotate_every`."""
    if count <= 0 or rate <= 0:
        return None
    window = _window_seconds(schedule)
    if window is None:
        return None
    starts = min(count, schedule.starts_per_window or count)
    needed = starts * CALLS_PER_ROTATION / rate
    fit = max(1, math.floor(window * rate / CALLS_PER_ROTATION))
    if needed > window:
        return FleetFit(
            f"{starts} rotations in one window of {format_duration(window)} need at least "
            f"{format_duration(needed)} of {payer}'s budget ({CALLS_PER_ROTATION} calls each at {rate:g} "
            "calls/s): the fleet is too big for its window",
            f"set starts_per_window = {fit} in [windows] (the rest go in later windows), make the allow window longer, "
            "or split the fleet over more paying keys",
        )
    if schedule.starts_per_window is None:
        return None
    wanted = math.ceil(count / schedule.starts_per_window)
    have = windows_in(schedule, now, rotate_every, enough=wanted)
    if have < wanted:
        per = math.ceil(count / max(have, 1))
        return FleetFit(
            f"{count} keys paid by {payer} at {schedule.starts_per_window} starts per window need {wanted} windows, "
            f"but one rotation period ({format_duration(rotate_every)}) holds {have}: keys would fall overdue",
            f"raise starts_per_window to {per} (if the window's budget allows: at most {fit}), or open more windows",
        )
    return None


def _window_seconds(schedule: Schedule) -> float | None:
    """How long the shortest window the starts must fit in lasts: an allow window, else the cap's slot; None when
    starts are not confined to windows at all."""
    if schedule.allow:
        return min(window.duration for window in schedule.allow)
    if schedule.starts_per_window is not None:
        return schedule.cap_window
    return None


def windows_in(schedule: Schedule, since: float, span: float, *, enough: int = _MOST_WINDOWS) -> int:
    """How many windows open in [since, since + span) (allow-window openings; without allow windows, cap slots),
    counting no further than `enough`. Deny windows are not subtracted: the count is an upper bound."""
    if not schedule.allow:
        return min(enough, int(span // schedule.cap_window))
    count = 0
    for window in schedule.allow:
        moment = since
        while count < min(enough, _MOST_WINDOWS):
            fire = windows._fire_after(window, moment)  # the rules' own cron walk, shared
            if fire is None or fire >= since + span:
                break
            count += 1
            moment = fire
    return count


def age_findings(
    label: str | None,
    record: RotationRecord | None,
    pause: Pause | None,
    *,
    now: float,
    rotate_every: float,
    expiry_lead: float,
    name: str,
) -> list[Finding]:
    """The key's age and what is due, an unfinished rotation, a pause: what a rotation would start from (all
    information: none of it stops a rotation that a person starts)."""
    from rotator.core.timestamps import format_timestamp
    from rotator.rules.pause import in_force
    from rotator.rules.record import as_new_key

    part = "schedule"
    since = record.current_since if record is not None else None
    seen = as_new_key(record, label)  # in the overlap: the new key's age and due date, not the old key's
    due = windows.next_due(seen or record, timedelta(seconds=rotate_every), expiry_lead)
    old_age = None if seen is None or since is None else f"{format_duration(now - since, coarse=True)} old"
    since = since if seen is None else seen.current_since
    age = "age unknown (seeded by hand)" if since is None else f"{format_duration(now - since, coarse=True)} old"
    when = "no due date until its age is counted" if due is None else f"due {format_timestamp(due)}"
    if due is not None and now >= due:
        when = f"due now (since {format_timestamp(due)})"
    found = [Finding(part, f"current key {label or '(none)'}: {age}, {when}", "", Severity.INFO)]
    if record is not None and not record.phase.terminal:
        found.append(_unfinished(record, old_age if seen is not None else None, now=now, name=name))
    held = in_force(pause, now)
    if held is not None:
        fix = f"`rotator unpause {name}` lets the scheduler rotate it"
        found.append(Finding(part, held.describe(), fix, Severity.INFO))
    return found


def _unfinished(record: RotationRecord, old_age: str | None, *, now: float, name: str) -> Finding:
    """An unfinished rotation; in the overlap (`old_age` given), the old key that is still active and, in a grace
    window, when it is revoked: `rotator resume` does nothing before then, `--now` revokes it at once."""
    from rotator.core.timestamps import format_timestamp

    problem = f"rotation {record.token[:8]} is unfinished at {record.phase.value}"
    fix = f"`rotator resume {name}`"
    if old_age is not None:
        problem += f": the old key {record.old_key_label} ({old_age}) is still active at Bluum"
        if record.revoke_after is not None and now < record.revoke_after:
            ends = format_timestamp(record.revoke_after)
            problem += f" until the grace window ends at {ends}"
            fix = f"`rotator resume {name}` after {ends} (or the next scheduled run) revokes it; `--now` at once"
    return Finding("schedule", f"{problem}; a new rotation waits for it", fix, Severity.INFO)
