"""When a failed reload is tried again, which of its actions run, and when one action's run may stand for another's.

Pure decisions over the record and times handed in: no I/O, no clock (rotator/rotation/reload.py observes and acts).

Why a backoff: a reload that failed (a unit that does not exist, a deploy hook that answers 503) rarely mends itself
within a tick, and every retry used to run every action of the credential again, restarting the applications whose
reload had worked, at every tick until a person stepped in. So the scheduler (the daemon's tick, `run-due`) retries
RETRY_FIRST after the first failure, twice as long after each further one, at most RETRY_MAX apart; a person's
`rotator resume NAME` retries at once, and so does each tick in an emergency (the leaked key lives until it works).
The old key stays active all along (nothing is revoked while a reload fails), and the `stuck` alert still names the
rotation.

Why only the actions not yet done: while the rotation's token is the same, every target holds the same new key, so an
application whose reload succeeded for it already uses it; running its action again only restarts it once more.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

from rotator.rules.record import RotationRecord

RETRY_FIRST = timedelta(minutes=5)
"""How long the scheduler waits after a reload's first failure before it tries again (a tick is 15 minutes by
default, so the first retries fall on the next ticks and later ones thin out)."""
RETRY_MAX = timedelta(hours=1)
"""The longest the scheduler waits between two tries of a failed reload."""


def retry_delay(failures: int) -> timedelta:
    """The wait after the `failures`-th failure in a row (1-based): RETRY_FIRST, doubled each time, at most
    RETRY_MAX. Nothing to wait for before the first failure."""
    if failures < 1:
        return timedelta(0)
    doublings = min(failures - 1, 16)  # far past RETRY_MAX already: no huge powers of two
    delay: timedelta = RETRY_FIRST * 2**doublings
    return min(delay, RETRY_MAX)


def next_retry(record: RotationRecord) -> float | None:
    """When the scheduler may run the failed reload of `record` again; None when no reload of it failed."""
    if record.reload_failures < 1 or record.reload_failed_at is None:
        return None
    return record.reload_failed_at + retry_delay(record.reload_failures).total_seconds()


def retry_wait(record: RotationRecord, now: float, *, scheduled: bool) -> float | None:
    """When to come back, if the reload of `record` must not run now; None: run it.

    A person (`scheduled` False: `rotator resume`, `rotator step`) never waits: they ran the command because they
    fixed something. Nor does an emergency: the leaked key stays active until the reloads succeed, and the actions
    that succeeded are not run again anyway. The scheduler waits until `next_retry`."""
    if not scheduled or record.emergency:
        return None
    due = next_retry(record)
    return due if due is not None and now < due else None


def pending(keys: Sequence[str], done: Collection[str]) -> list[bool]:
    """For each action (by its key, in order): whether it runs. One that already succeeded for this rotation's new
    key does not run again."""
    return [key not in done for key in keys]


def run_stands_for(*, ran_ok: bool, started: float, promoted: float | None) -> bool:
    """Whether a run of an identical reload action (another credential's, in the same tick) may stand for this
    credential's: it succeeded, and it started after this credential's new key was CURRENT in every target (at
    `promoted`, None when not known in this process), so what it reloaded read the new key. A run that started
    earlier loaded the old key: this credential's action runs itself. Times are one process's monotonic clock."""
    return ran_ok and promoted is not None and started > promoted
