"""`[windows]` (the default for every credential) and `[credentials.NAME.windows]` (its own, key by key): when a
scheduled rotation may start (rotator/rules/windows.py decides).

    [windows]
    timezone = "Europe/Berlin"                                  # IANA name; each window may name its own
    allow = [{ cron = "0 1 * * 1-5", duration = "4h" }]          # weekdays 01:00-05:00 local
    deny = [{ cron = "0 0 20 12 *", duration = "20d" }]         # the year-end freeze
    expiry_lead = "7d"                                          # a key Bluum lists with an expiry: due this early
    starts_per_window = 20                                      # scheduled starts per paying key per window
    cap_window = "1h"                                           # the cap's window when there is no allow window

A key given in a credential's table replaces the default's (`allow = []` there lifts the default allow windows).
Every problem names its key and the fix: a bad cron, an unknown zone, a duration longer than the time between two
openings, a schedule that never opens or keeps a due key waiting longer than its expiry lead or rotation period.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from rotator.config.tables import Problems, Table, optional_table, show

if TYPE_CHECKING:
    from rotator.config.credential_model import CredentialConfig
    from rotator.rules.windows import Schedule, Window

__all__ = ["WINDOW_KEYS", "apply_windows"]

WINDOW_KEYS: Final = ("timezone", "allow", "deny", "expiry_lead", "starts_per_window", "cap_window")
_ONE_WINDOW_KEYS: Final = ("cron", "duration", "timezone")
_WINDOW_EXAMPLE: Final = '[{ cron = "0 1 * * *", duration = "4h" }]'
MAX_STARTS_PER_WINDOW: Final = 100_000


def apply_windows(
    data: Mapping[str, Any], credentials: dict[str, CredentialConfig], problems: Problems
) -> dict[str, CredentialConfig]:
    """Each credential with its schedule: the `[windows]` defaults, overridden key by key by its own table."""
    defaults = optional_table(data.get("windows"), "windows", problems)
    raw_creds = data.get("credentials")
    own: dict[str, Any] = {}
    if isinstance(raw_creds, dict):
        own = {name: table.get("windows") for name, table in raw_creds.items() if isinstance(table, dict)}
    if defaults is None:
        return credentials
    defaults.check_keys(WINDOW_KEYS)
    if not defaults.data and not any(value is not None for value in own.values()):
        return credentials  # nothing configured: rules/windows.py (and cronsim) is never imported
    base = _parse_schedule(defaults, None, problems)
    reported: set[str] = set()
    out: dict[str, CredentialConfig] = {}
    for name, cred in credentials.items():
        table = optional_table(own.get(name), f"credentials.{name}.windows", problems)
        if table is None or base is None:
            out[name] = cred
            continue
        table.check_keys(WINDOW_KEYS)
        schedule = _parse_schedule(table, (defaults, base), problems) if table.data else base
        if schedule is None:
            out[name] = cred
            continue
        _check_reachable(schedule, cred, table if table.data else defaults, problems, reported)
        out[name] = dataclasses.replace(cred, windows=schedule) if schedule.gated else cred
    return out


def _parse_schedule(table: Table, inherited: tuple[Table, Schedule] | None, problems: Problems) -> Schedule | None:
    from rotator.rules.windows import DEFAULT_CAP_WINDOW, DEFAULT_EXPIRY_LEAD, Schedule

    base = inherited[1] if inherited else Schedule()
    zone = table.text("timezone", example='"Europe/Berlin"')
    if zone is None and inherited is not None:
        zone = inherited[0].text("timezone", example='"Europe/Berlin"')
    zone_ok = zone is None or _zone_problem(table, "timezone", zone) is None
    lead = (
        table.duration("expiry_lead", timedelta(seconds=base.expiry_lead))
        if inherited
        else table.duration("expiry_lead", DEFAULT_EXPIRY_LEAD)
    )
    cap_window = table.duration("cap_window", timedelta(seconds=base.cap_window) if inherited else DEFAULT_CAP_WINDOW)
    cap = _cap(table, base.starts_per_window)
    allow = _windows_or_inherited(table, "allow", zone, inherited)
    deny = _windows_or_inherited(table, "deny", zone, inherited)
    if not zone_ok or lead is None or cap_window is None or cap is False or allow is None or deny is None:
        return None
    if cap_window <= timedelta(0):
        table.problem("cap_window", "must be longer than 0s", 'write cap_window = "1h"')
        return None
    return Schedule(
        allow=allow,
        deny=deny,
        expiry_lead=lead.total_seconds(),
        starts_per_window=cap,
        cap_window=cap_window.total_seconds(),
    )


def _windows_or_inherited(
    table: Table, key: str, zone: str | None, inherited: tuple[Table, Schedule] | None
) -> tuple[Window, ...] | None:
    """The table's own windows; else the default's, read again in the table's own `timezone` when it names one (a
    credential that moves to another zone moves the default's windows with it)."""
    if table.has(key):
        return _windows(table, key, zone or "UTC")
    if inherited is None:
        return ()
    defaults, base = inherited
    if table.has("timezone") and zone is not None and defaults.has(key):
        return _windows(defaults, key, zone)
    return base.allow if key == "allow" else base.deny


def _cap(table: Table, default: int | None) -> int | bool | None:
    """The cap; False when it is wrong (a problem recorded)."""
    if not table.has("starts_per_window"):
        return default
    value = table.count("starts_per_window", 1, limit=MAX_STARTS_PER_WINDOW, example="20")
    return False if value is None else value


def _windows(table: Table, key: str, zone: str) -> tuple[Window, ...] | None:
    from rotator.rules.windows import Window

    value = table.data[key]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        table.problem(key, f"expected an array of inline tables, got {show(value)}", f"write {key} = {_WINDOW_EXAMPLE}")
        return None
    out: list[Window] = []
    ok = True
    for index, item in enumerate(value):
        one = Table(item, f"{table.key(key)}[{index}]", table.problems)
        one.check_keys(_ONE_WINDOW_KEYS)
        cron = one.text("cron", example='"0 1 * * *"', required=True)
        duration = one.duration("duration", timedelta(0)) if one.has("duration") else None
        if duration is None and not one.has("duration"):
            one.problem("duration", "missing", 'add duration = "4h" (how long the window stays open)')
        own_zone = one.text("timezone", example='"Europe/Berlin"') or zone
        if cron is None or duration is None or (own_zone != zone and _zone_problem(one, "timezone", own_zone)):
            ok = False
            continue
        if duration <= timedelta(0):
            one.problem("duration", "must be longer than 0s", 'write duration = "4h"')
            ok = False
            continue
        if not _cron_ok(one, cron, duration, own_zone):
            ok = False
            continue
        out.append(Window(cron=cron, duration=duration.total_seconds(), zone=own_zone))
    return tuple(out) if ok else None


def _zone_problem(table: Table, key: str, zone: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        table.problem(
            key,
            f'unknown time zone "{zone}"',
            'write an IANA name such as "Europe/Berlin", "America/New_York" or "UTC" (on a machine without '
            "/usr/share/zoneinfo, the tzdata package this project depends on provides them)",
        )
        return zone
    return None


def _cron_ok(table: Table, cron: str, duration: timedelta, zone: str) -> bool:
    """The expression parses, and the window closes before it opens again."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim, CronSimError

    from rotator.rules.windows import reference_time

    start = datetime.fromtimestamp(reference_time(), ZoneInfo(zone))
    try:
        fires = CronSim(cron, start)
        times = [next(fires).timestamp() for _ in range(60)]
    except CronSimError as exc:
        table.problem(
            "cron",
            f'"{cron}" is not a cron expression ({exc})',
            'write five fields: minute hour day-of-month month day-of-week, e.g. "0 1 * * 1-5" (01:00 on weekdays)',
        )
        return False
    except StopIteration:
        table.problem("cron", f'"{cron}" never fires', 'write an expression that matches a real date, e.g. "0 1 * * *"')
        return False
    gap = min(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else float("inf")
    if duration.total_seconds() > gap:
        from rotator.core.durations import format_duration

        table.problem(
            "duration",
            f"{format_duration(duration.total_seconds(), coarse=True)} is longer than the time between two openings of "
            f'"{cron}" ({format_duration(gap, coarse=True)}): the window would never close',
            f'write duration = "{format_duration(gap, coarse=True)}" or less, or leave the windows out',
        )
        return False
    return True


def _check_reachable(
    schedule: Schedule, cred: CredentialConfig, table: Table, problems: Problems, reported: set[str]
) -> None:
    """A schedule that never opens, or keeps a due key waiting too long, for `cred`. The defaults' problems are said
    once (naming the first credential they hit), not once per credential of a fleet."""
    from rotator.rules.windows import check_schedule, reference_time

    own = table.where != "windows"
    for what, fix in check_schedule(
        schedule, rotate_every=cred.rotate_every.total_seconds(), reference=reference_time()
    ):
        if not own and what in reported:
            continue
        reported.add(what)
        where = f"credentials.{cred.name}.windows" if own else f"windows (first for credentials.{cred.name})"
        problems.add(where, what, fix)
