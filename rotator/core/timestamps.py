"""The one way a moment is printed: UTC, ISO 8601, to the second, with a Z ("2026-12-07T02:03:20Z").

Why one: the history, heartbeats, status, messages and logs used to print moments four ways ("%H:%M:%SZ",
"%Y-%m-%d %H:%M:%SZ", a date alone, ISO), so a person could not grep one moment across them, and a message said
"at 02:03:20Z" without the day. Seconds since the epoch in, text out; nothing here reads a clock unless asked for
"now". Logs keep milliseconds (records of one second must stay in order).
"""

from __future__ import annotations

import time

__all__ = ["format_timestamp"]


def format_timestamp(at: float | None = None, *, milliseconds: bool = False) -> str:
    """`at` (seconds since the epoch; now when None) as "YYYY-MM-DDTHH:MM:SSZ", or "...SS.mmmZ" with milliseconds."""
    moment = time.time() if at is None else at
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    if milliseconds:
        text += f".{int(moment % 1 * 1000):03d}"
    return text + "Z"
