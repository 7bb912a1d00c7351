"""Durations as people write them in rotator.toml and on the command line: "90d", "1h30m", "60s", "500ms".

Kept apart from config.py so CLI flags (`--grace 0s`) and the daemon can parse and print durations
without loading the whole configuration machinery. Only one spelling is accepted: a number and a unit,
repeated, largest unit first. Bare numbers are refused because "grace = 3600" could mean seconds or
minutes, and a wrong guess there revokes a key an hour early or sixty hours late.
"""

from __future__ import annotations

import re
from datetime import timedelta

from rotator.core.errors import ConfigError

UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
"""Accepted units, largest first. No months or years: their length varies, and Bluum counts days."""

_UNIT_ORDER = list(UNITS)
# "ms" must be tried before "m", or "500ms" would read as 500 minutes followed by a stray "s".
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")

DURATION_HINT = 'write a number and a unit, e.g. "90d", "1h30m", "60s" or "0s" (units: w, d, h, m, s, ms)'
"""The fix, in the words every duration error ends with."""


class InvalidDuration(ConfigError):
    """A duration that does not parse. `reason` says why, without the hint, for callers that add a key path;
    `problem` says it without the text itself, for rotator.toml, whose values are never echoed (a secret pasted
    into `grace` would be printed whole)."""

    def __init__(self, text: object, reason: str, problem: str = "") -> None:
        self.text = text
        self.reason = reason
        self.problem = problem or reason
        super().__init__(f"{reason}: {DURATION_HINT}")


def parse_duration(text: str) -> timedelta:
    """Parse "90d", "1h", "60s", "30m", "1h30m", "1.5s", "0s" into a timedelta.

    Raises InvalidDuration (a ConfigError, without a key path: callers that know the key add it) for anything
    else: an empty string, a bare number, a negative value, an unknown unit, or units out of order ("30m1h").
    """
    if not isinstance(text, str):
        raise InvalidDuration(
            text, f"expected a duration string, got {type(text).__name__} {text!r}", "expected a duration string"
        )
    stripped = text.strip()
    if not stripped:
        raise InvalidDuration(text, "empty duration")
    if stripped.startswith("-"):
        raise InvalidDuration(text, f"{text!r} is negative; durations cannot be negative", "is negative")
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        raise InvalidDuration(
            text, f"{text!r} has no unit (for seconds write {stripped + 's'!r})", "is a number without a unit"
        )

    total = timedelta(0)
    position = 0
    last_rank = -1
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            raise InvalidDuration(text, f"{text!r} is not a duration", "is not a duration")
        number, unit = match.groups()
        rank = _UNIT_ORDER.index(unit)
        if rank <= last_rank:
            raise InvalidDuration(
                text,
                f"{text!r} is not a duration (units must appear once each, largest first)",
                "is not a duration (units must appear once each, largest first)",
            )
        last_rank = rank
        try:
            total += UNITS[unit] * float(number)
        except OverflowError:
            raise InvalidDuration(text, f"{text!r} is too large to be a duration", "is too large") from None
        position = match.end()
    return total


def format_duration(value: timedelta | float, *, places: int = 3, coarse: bool = False) -> str:
    """The one way a duration is printed: largest unit first, in the spelling parse_duration reads back.

    `value` is a timedelta or seconds. timedelta(hours=1, minutes=30) -> "1h30m", 0 -> "0s", 0.5 -> "0.5s",
    90.25 -> "1m30.25s". The seconds keep `places` decimals (3: exact to the millisecond, what parse_duration
    reads; 2 for a measured time such as a step's, "0.14s"), trailing zeros dropped. Negative values get a
    leading "-" (parse_duration refuses them, but a message may say how overdue something is).

    `coarse`: one unit, rounded, for an age at a glance: seconds below 2 minutes, minutes below 2 hours, hours
    below 2 days, then days ("45s", "90m", "5h", "12d").
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return "-" + format_duration(-seconds, places=places, coarse=coarse)
    if coarse:
        return _coarse(seconds)
    whole, fraction = divmod(round(seconds * 10**places), 10**places)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or fraction:
        decimals = f"{fraction:0{places}d}".rstrip("0") if fraction else ""
        parts.append(f"{whole}.{decimals}s" if decimals else f"{whole}s")
    return "".join(parts) or "0s"


def format_measured(seconds: float, *, places: int = 2) -> str:
    """A time measured on a clock (how long a step took), as `format_duration` prints it with `places` decimals, except
    a time too short to show at that precision: "<0.01s", not "0s", which reads as a step that took no time at all
    (or was skipped). Exactly 0 stays "0s" (nothing was measured: a fake clock)."""
    if seconds > 0 and round(seconds * 10**places) == 0:
        return "<" + format_duration(10**-places, places=places)
    return format_duration(seconds, places=places)


def _coarse(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
