"""Issue 20's windows figure: a simulated year of scheduled rotations over a few thousand keys, driven through the
pure rules (rotator/rules/windows.py), checked by independent arithmetic.

The fleet: KEYS investor keys under PAYERS tenant (manager) keys, all enrolled at the same instant (a migration), so
every key falls due together. Two thirds carry Bluum's `expires_at` (minted with a 60-day life, like the simulator's
`key_ttl`); the rest only `rotate_every = 90d`. The schedule, in Europe/Berlin (two DST changes in the year):
allow 22:00-02:00 every night, deny 23:00-23:30 (a window inside the allow window), deny a year-end freeze from
Dec 20 for 14 days, expiry_lead 14 days, at most CAP scheduled starts per paying key per window.

The scheduler ticks every 5 minutes, as `run-due` from cron would. At each tick a due key asks `gate` with the count
that start_gate reads from the ledger (the paying key's records whose `started_at` is in the window); a refusal says
when it may next start, and the loop jumps to that tick (the answer cannot change before it). A rotation takes one
tick; its new key gets a new 60-day life.

Checked without the rules under test: 0 keys expire (every key is rotated before its `expires_at`), 0 starts inside
a deny window (local wall-clock arithmetic), never more than CAP starts per paying key per allow-window night.

Run: .venv/bin/python benchmarks/bench_windows_year.py [KEYS]
"""

from __future__ import annotations

import heapq
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rotator.rules.windows import Schedule, Window, cap_window_start, due_for_expiry, gate

ZONE = ZoneInfo("Europe/Berlin")
DAY = 86400.0
TICK = 300.0
TTL = 60 * DAY
ROTATE_EVERY = 90 * DAY
LEAD = 14 * DAY
CAP = 60
PAYERS = 6
SCHEDULE = Schedule(
    allow=(Window("0 22 * * *", 4 * 3600, "Europe/Berlin"),),
    deny=(Window("0 23 * * *", 1800, "Europe/Berlin"), Window("0 0 20 12 *", 14 * DAY, "Europe/Berlin")),
    expiry_lead=LEAD,
    starts_per_window=CAP,
)
START = datetime(2026, 1, 5, 9, 0, tzinfo=ZONE).timestamp()  # enrolled on a Monday morning, outside any window


@dataclass(slots=True)
class Key:
    payer: int
    since: float
    expires_at: float | None
    lead: float = LEAD

    def due_at(self) -> float:
        period = self.since + ROTATE_EVERY
        return period if self.expires_at is None else min(period, self.expires_at - self.lead)


@dataclass(frozen=True, slots=True)
class Figures:
    keys: int
    starts: int
    expired: int
    in_deny: int
    most_per_window: int
    windows_used: int
    gate_calls: int
    seconds: float


def simulate(keys: int, days: float = 365.0, schedule: Schedule = SCHEDULE) -> Figures:
    """The year under `schedule`; the checks always use SCHEDULE's windows and cap (a weaker schedule fails them)."""
    began = time.perf_counter()
    fleet = [Key(i % PAYERS, START, START + TTL if i % 3 else None, schedule.expiry_lead) for i in range(keys)]
    end = START + days * DAY
    due: list[tuple[float, int]] = [(k.due_at(), i) for i, k in enumerate(fleet)]
    heapq.heapify(due)
    starts: dict[int, list[float]] = defaultdict(list)  # per payer: started_at of every scheduled start
    expired = in_deny = gate_calls = started = 0
    per_window: Counter[tuple[int, str]] = Counter()
    hold: dict[int, float] = {}  # per payer: no start before this (what the last refusal said)
    while due and due[0][0] <= end:
        first_due, index = heapq.heappop(due)
        key = fleet[index]
        now = max(_tick_at_or_after(first_due), hold.get(key.payer, 0.0))
        while True:
            window_start = cap_window_start(schedule, now)
            count = _since(starts[key.payer], window_start)  # what start_gate counts in the ledger's records
            verdict = gate(schedule, now, count)
            gate_calls += 1
            if verdict.may_start:
                break
            if verdict.next_start is None:
                raise AssertionError("the schedule never opens")
            now = _tick_at_or_after(verdict.next_start)
            hold[key.payer] = now
        if now > end:
            break
        if key.expires_at is not None and now >= key.expires_at:
            expired += 1
        if _denied(now):
            in_deny += 1
        per_window[(key.payer, _night_of(now) if schedule.allow else str(int(now // TICK)))] += 1
        starts[key.payer].append(now)
        started += 1
        done = now + TICK  # the rotation takes one tick; its key is current from then
        key.since = done
        key.expires_at = done + TTL if key.expires_at is not None else None
        assert not due_for_expiry(key.expires_at, schedule.expiry_lead, done)
        heapq.heappush(due, (key.due_at(), index))
    return Figures(
        keys=keys,
        starts=started,
        expired=expired,
        in_deny=in_deny,
        most_per_window=max(per_window.values(), default=0),
        windows_used=len(per_window),
        gate_calls=gate_calls,
        seconds=time.perf_counter() - began,
    )


def _since(times: list[float], since: float) -> int:
    """How many of the (ascending) start times are at or after `since`."""
    count = 0
    for moment in reversed(times):
        if moment < since:
            break
        count += 1
    return count


def _tick_at_or_after(moment: float) -> float:
    return -(-moment // TICK) * TICK


def _denied(moment: float) -> bool:
    """Independent of the rules: 23:00-23:30 local, and Dec 20 00:00 local for 14 days (elapsed)."""
    local = datetime.fromtimestamp(moment, ZONE)
    if local.hour == 23 and local.minute < 30:
        return True
    for year in (local.year - 1, local.year):
        freeze = datetime(year, 12, 20, tzinfo=ZONE).timestamp()
        if freeze <= moment < freeze + 14 * DAY:
            return True
    return False


def _night_of(moment: float) -> str:
    """Which allow window (the night starting at 22:00 local) a start fell in; outside one is a failure."""
    local = datetime.fromtimestamp(moment, ZONE)
    if local.hour >= 22:
        return local.date().isoformat()
    if local.hour < 2:
        return (local - timedelta(days=1)).date().isoformat()
    raise AssertionError(f"a scheduled start outside the allow window: {local.isoformat()}")


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    f = simulate(keys)
    print(f"simulated year, {f.keys} keys under {PAYERS} paying keys, cap {CAP} per paying key per window")
    print(f"  scheduled starts:             {f.starts}")
    print(f"  keys expired:                 {f.expired}")
    print(f"  starts inside deny windows:   {f.in_deny}")
    print(f"  most starts in one window:    {f.most_per_window} (cap {CAP}) over {f.windows_used} payer-windows")
    print(f"  gate decisions:               {f.gate_calls}")
    print(f"  wall time:                    {f.seconds:.2f}s")


if __name__ == "__main__":
    main()
