"""Staggered, health-gated reloads: how a credential's reload actions split into batches, which batch runs next, and
which actions a rollback must reload back. Pure decisions over keys and the record: no I/O, no clock
(rotator/rotation/rollout.py observes and acts).

Why batches: a new key that breaks an application (a wrong environment, a client that caches a bad header) breaks
every application at once when every reload runs together. With `reload_batch = 2` (or `"25%"`), the first batch
reloads, its health checks must pass, and only then does the next batch reload; the first batch that fails stops
the rollout while the later batches still run on the old key, which is still valid. The rotation then rolls back:
the old key CURRENT again, the batches that got the new key reloaded back, the new key revoked.

Why the record remembers passed batches by their actions' keys (`RotationRecord.healthy`), not by a batch number: a
batch size edited between a crash and `resume` changes the numbering, not which applications were proven healthy on
the new key. A batch runs again only when some action of it has not passed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

HEALTH_FIRST_DELAY = 0.5
"""Seconds before a failed health check is asked again; doubled after each try, at most HEALTH_MAX_DELAY."""
HEALTH_MAX_DELAY = 5.0


@dataclass(frozen=True, slots=True)
class BatchSize:
    """`reload_batch`: at most `count` actions per batch, or `percent` of them (rounded up, at least one). Neither:
    every action in one batch, as before batches existed."""

    count: int | None = None
    percent: int | None = None

    def size(self, total: int) -> int:
        """Actions per batch among `total` (at least 1)."""
        if self.count is not None:
            return max(1, self.count)
        if self.percent is not None:
            return max(1, math.ceil(total * self.percent / 100))
        return max(1, total)

    @property
    def staggered(self) -> bool:
        return self.count is not None or self.percent is not None

    def describe(self) -> str:
        if self.count is not None:
            return f"{self.count} at a time"
        if self.percent is not None:
            return f"{self.percent}% at a time"
        return "all at once"


def split(keys: Sequence[str], size: BatchSize) -> list[tuple[str, ...]]:
    """The actions (by key, in the order declared: the primary's store first) in batches of `size`."""
    step = size.size(len(keys))
    return [tuple(keys[start : start + step]) for start in range(0, len(keys), step)]


def passed(batch: Sequence[str], healthy: Collection[str]) -> bool:
    """Whether every action of `batch` passed its batch's health checks for this rotation's new key."""
    return all(key in healthy for key in batch)


def next_batch(batches: Sequence[Sequence[str]], healthy: Collection[str]) -> int | None:
    """The index of the first batch that has not passed; None when all have."""
    for index, batch in enumerate(batches):
        if not passed(batch, healthy):
            return index
    return None


def untouched(batches: Sequence[Sequence[str]], healthy: Collection[str]) -> tuple[str, ...]:
    """The actions a rollback leaves alone: those of the batches after the first one that has not passed. The rollout
    never reached them, so their applications never loaded the new key; reloading them back would only restart them.
    The first unpassed batch itself counts as reached (its reloads may have run before its check failed or the
    process died), as does every batch before it."""
    first = next_batch(batches, healthy)
    if first is None:
        return ()
    return tuple(key for batch in batches[first + 1 :] for key in batch)


def health_delay(attempt: int) -> float:
    """Seconds to wait before health check try number `attempt + 1` (0-based `attempt`: after the first try)."""
    return float(min(HEALTH_MAX_DELAY, HEALTH_FIRST_DELAY * 2**attempt))


def parse_batch(value: object) -> BatchSize | str:
    """`reload_batch` as written in rotator.toml: a whole number of actions (at least 1) or a percentage string
    ("25%", 1 to 100); the BatchSize, or why not (the loader adds the key and the fix)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 'expected a number of actions (reload_batch = 2) or a percentage (reload_batch = "25%")'
    if isinstance(value, int):
        return BatchSize(count=value) if value >= 1 else f"must be at least 1, not {value}"
    text = value.strip()
    digits = text.removesuffix("%").strip()
    if not text.endswith("%") or not digits.isdigit():
        return f'{value!r} is neither a whole number of actions nor a percentage such as "25%"'
    percent = int(digits)
    if not 1 <= percent <= 100:
        return f"a percentage must be 1% to 100%, not {percent}%"
    return BatchSize(percent=percent)
