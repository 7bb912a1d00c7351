"""What the command line prints: a line per step, each credential's outcome, the status table, history and sweep
lines. Pure text from values (click.echo aside), so each shape is written once and read the same everywhere.

Progress and outcomes of success go to stdout; an outcome that is not success goes to stderr, so a script that
reads stdout sees only what worked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import click

from rotator.cli.terminal import PROMPT
from rotator.core.errors import ExitCode, most_severe

if TYPE_CHECKING:
    from rotator.core.events import RotationEvent
    from rotator.rotation.driver import Outcome

__all__ = ["finish", "history_lines", "json_text", "print_event", "row_dict", "status_table", "sweep_line"]


def print_event(event: RotationEvent) -> None:
    """A line per step for the person at the terminal; the command's outcome is printed by `finish`."""
    from rotator.core.durations import format_measured
    from rotator.core.events import OBSERVATIONS, EventKind

    if event.kind in (EventKind.COMPLETED, EventKind.ROLLED_BACK, EventKind.STOPPED) or event.kind in OBSERVATIONS:
        return  # the outcome lines say it; a tick's findings go to the log and the notification sinks
    timing = f"  ({format_measured(event.seconds)})" if event.seconds is not None else ""
    who = f"{event.credential}: " if PROMPT.many else ""  # several rotations at once: say whose line it is
    click.echo(f"  {who}{event.step:<9} {event.message}{timing}")


def finish(outcomes: list[Outcome]) -> NoReturn:
    """Print each outcome's message and exit with the most serious code among them."""
    for outcome in outcomes:
        stream_err = outcome.exit_code != ExitCode.OK
        click.echo(outcome.message, err=stream_err)
    sys.exit(int(most_severe(o.exit_code for o in outcomes)))


def row_dict(row: Any) -> dict[str, Any]:  # noqa: ANN401 - CredentialStatus, imported lazily
    """A status row as `status --json` prints it: its fields, `next_due` as a UTC timestamp."""
    from dataclasses import asdict

    data = asdict(row)
    data["next_due"] = _iso(row.next_due)
    data["next_start"] = _iso(row.next_start)
    data["paused_until"] = _iso(row.paused_until)
    return data


def _iso(when: float | None) -> str | None:
    from rotator.core.timestamps import format_timestamp

    return None if when is None else format_timestamp(when)


def _age(seconds: float | None) -> str:
    from rotator.core.durations import format_duration

    return "unknown" if seconds is None else format_duration(seconds, coarse=True)


def status_table(rows: list[Any], now: float | None = None) -> str:
    """The `status` table: one row per credential, columns padded, the last one free. During an overlap (the grace
    window) a second line under the row shows the old key with its own age and when it goes; `now` (default: the
    clock) tells a grace window that is over from one that runs."""
    import time

    now = time.time() if now is None else now
    header = ("CREDENTIAL", "ENV", "CURRENT KEY", "AGE", "NEXT DUE", "STAGE", "PAUSED", "WAITING ON")
    body: list[tuple[str, ...]] = []
    for r in rows:
        body.append(
            (
                r.name,
                r.environment,
                r.current_key or "-",
                _age(r.age_seconds),
                _iso(r.next_due) or "-",
                r.stage,
                _paused(r),
                _with_consumers(r),
            )
        )
        if getattr(r, "previous_key", None):
            over = r.grace_until is not None and r.grace_until <= now and r.stage != "awaiting_consumers"
            stage = "grace over" if over else "in grace"
            body.append(("", "", r.previous_key, _age(r.previous_age_seconds), "", stage, "", _going(r, over=over)))
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line[:-1])) + "  " + line[-1])
    return "\n".join(lines)


def _going(row: Any, *, over: bool = False) -> str:  # noqa: ANN401 - CredentialStatus, imported lazily
    """The old key's line during the overlap: what it is and when it is revoked; once the grace window is `over`, that
    the next resume (or scheduled run) revokes it, never a revoke time in the past."""
    when = _iso(row.grace_until)
    end = f"revoked at {when} (the grace window's end)" if when else "revoked once the new key is verified"
    if over:
        return (
            f"previous key, still active at Bluum; its grace window ended at {when}: `rotator resume {row.name}` (or "
            "the next scheduled run) revokes it (WAITING ON above says what it waits for)"
        )
    if row.stage == "awaiting_consumers":
        end = "revoked once every consumer reports the new key"
    elif row.stage == "revoking":
        return "previous key, being revoked now"
    return f"previous key, still active at Bluum; {end}: `rotator resume {row.name} --now` revokes it at once"


def _paused(row: Any) -> str:  # noqa: ANN401 - CredentialStatus, imported lazily
    """PAUSED: `-`, or until when (`unpause`: until someone runs `rotator unpause`); who and why are in WAITING ON."""
    if not getattr(row, "paused", False):
        return "-"
    return f"until {_iso(row.paused_until)}" if row.paused_until is not None else "until unpause"


def _with_consumers(row: Any) -> str:  # noqa: ANN401 - CredentialStatus, imported lazily
    """WAITING ON, led by the consumers line while the old key waits on them (unless it already says it)."""
    line = getattr(row, "consumers", None)
    return f"consumers: {line}. {row.waiting}" if line and line not in row.waiting else str(row.waiting)


def history_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """`rotator history`: one line per entry (time, the token's start, event, message), and who started a rotation
    and why under its `started` line."""
    lines: list[str] = []
    for entry in entries:
        token = str(entry.get("token") or "")[:8]
        lines.append(f"{entry.get('time', '?')}  {token:<8}  {entry.get('event', '?'):<11} {entry.get('message', '')}")
        if entry.get("event") in ("started", "paused"):
            reason = f"; reason: {entry['reason']}" if entry.get("reason") else ""
            lines.append(f"{'':32}by {entry.get('actor', '?')}{reason}")
    return lines


def sweep_line(finding: Any) -> str:  # noqa: ANN401 - a sweep Finding, imported lazily
    """One finding of `rotator sweep`: credential, kind, key id, what it means."""
    return f"{finding.credential}: {finding.kind:<9} {finding.key_id or '-'}  {finding.message}"


def json_text(value: object) -> str:
    """What `--json` prints: one JSON document, indented for a person who reads it too."""
    import json

    return json.dumps(value, indent=2)
