"""The schedulers' "may it start now" (allow and deny windows, the cap per paying key), over the ledger.

rotator/rules/windows.py decides; this module only gathers what it needs: the clock, and for a cap the scheduled
starts already made in this window by every credential that shares the paying key. That count comes from the
records the ledger already keeps (each credential's latest `started_at`, non-emergency), so every runner that reaches
the same stores (a second daemon, cron) counts the same starts without a counter of its own. A process reads them
once per window (again after `_FRESH` seconds) and counts its own starts at once, under a lock, so the threads of
one fleet run never pass the cap between them. Two runners on two hosts deciding within `_FRESH` of each other can
pass it by what the other started meanwhile; with `[fleet] lanes` (rotator/ops/lanes.py) only the holder of the
paying key's lane decides, and a runner that takes a lane reads the count afresh (`forget_counts`), so the cap holds
across hosts too.

A person's `rotate` and an emergency are never gated: `override_note` says which window they ignored.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode
from rotator.core.timestamps import format_timestamp

if TYPE_CHECKING:
    from collections.abc import Callable

    from rotator.config.credential_model import CredentialConfig
    from rotator.rotation.driver import Outcome
    from rotator.rotation.runtime import Runtime
    from rotator.rules.record import RotationRecord
    from rotator.rules.windows import Verdict

__all__ = ["forget_counts", "held_words", "noted", "override_note", "scheduled_start", "verdict"]


def verdict(runtime: Runtime, cred: CredentialConfig, *, starting: bool = False) -> Verdict | None:
    """The windows' decision for `cred` now; None when it has no windows and no cap (nothing to decide). `starting`:
    the caller starts a rotation when it may (the scheduler), so the start is counted in this process at once."""
    schedule = cred.windows
    if not schedule.gated:
        return None
    from rotator.rules import windows

    now = runtime.clock()
    if schedule.starts_per_window is None:
        return windows.gate(schedule, now)
    since = windows.cap_window_start(schedule, now)
    return _counts(runtime).decide(
        (_payer(cred), since),
        lambda: _starts_since(runtime, cred, since),
        lambda starts: windows.gate(schedule, now, starts),
        starting=starting,
    )


def forget_counts(runtime: Runtime, payer: str) -> None:
    """Drop what this process counted for `payer`: the next decision reads the ledger again. Called by a runner that
    has just taken the paying key's lane, whose count from before may lack what the previous holder started."""
    _counts(runtime).forget(payer)


def scheduled_start(runtime: Runtime, cred: CredentialConfig, record: RotationRecord | None) -> Outcome | None:
    """None when a due `cred` may start a scheduled rotation now; otherwise the Outcome that says why it waits and
    until when (exit 0: waiting for a window is the plan, not a failure; 2 when its windows never open)."""
    decided = verdict(runtime, cred, starting=True)
    if decided is None or decided.may_start:
        return None
    from rotator.rotation.driver import Outcome

    code = ExitCode.OK if decided.next_start is not None else ExitCode.BAD_INPUT
    return Outcome(cred.name, code, f"{cred.name}: {held_words(cred, decided)}", record)


def held_words(cred: CredentialConfig, decided: Verdict) -> str:
    """Why a due key waits and until when, in words (`run-due` and `status`)."""
    if decided.next_start is None:
        return (
            f"due, but its windows never let a scheduled rotation start ({decided.why}). Fix its [windows] in "
            f"rotator.toml; `rotator rotate {cred.name}` rotates it now"
        )
    return (
        f"due, waiting: {decided.why}; next allowed start {format_timestamp(decided.next_start)}. "
        f"`rotator rotate {cred.name}` rotates it now"
    )


def override_note(runtime: Runtime, cred: CredentialConfig, *, emergency: bool) -> str:
    """What a person's `rotate` or an emergency ignored, to add to its message; "" when no window held it back."""
    schedule = cred.windows
    if not (schedule.allow or schedule.deny):
        return ""
    from rotator.rules import windows

    decided = windows.gate(schedule, runtime.clock())  # the cap bounds schedulers only: not counted here
    if decided.may_start:
        return ""
    who = "an emergency" if emergency else "a person's rotate"
    return f" (started although {decided.why}: {who} ignores rotation windows)"


def noted(
    outcome: Outcome,
    seen: RotationRecord | None,
    runtime: Runtime,
    cred: CredentialConfig,
    *,
    emergency: bool,
    scheduled: bool,
) -> Outcome:
    """`outcome` of a `rotate` with `override_note` added when it started a rotation (its record is not the one
    `seen` before) that a window would have held back."""
    started = outcome.record is not None and (seen is None or outcome.record.token != seen.token)
    if scheduled or not started:
        return outcome
    note = override_note(runtime, cred, emergency=emergency)
    return dataclasses.replace(outcome, message=outcome.message + note) if note else outcome


def _scheduled_kind(record: RotationRecord) -> bool:
    """A start that spent the paying key's budget like a scheduled one: not an emergency, not a seeded key's count."""
    return not record.emergency and record.age_source is None


class _Counts:
    """Per process: the starts per (paying key, window start) as last read from the ledger, plus this process's own
    since. Read again after `_FRESH` seconds, so a fleet tick of N due credentials reads the N records once, not N
    times each (N squared), while another runner's starts are seen within `_FRESH`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, float], tuple[int, float]] = {}

    def decide(
        self,
        key: tuple[str, float],
        read: Callable[[], int],
        gate: Callable[[int], Verdict],
        *,
        starting: bool,
    ) -> Verdict:
        """`gate` with the count of `key`'s window (read again when stale); a start it allows is counted before the
        lock is let go, so the fleet's threads of one tick never pass the cap between them."""
        with self._lock:
            held = self._seen.get(key)
            if held is None or time.monotonic() - held[1] >= _FRESH:
                self._seen = {k: v for k, v in self._seen.items() if k[1] >= key[1]}  # older windows are done
                held = (read(), time.monotonic())
            decided = gate(held[0])
            if decided.may_start and starting:
                held = (held[0] + 1, held[1])
            self._seen[key] = held
            return decided

    def forget(self, payer: str) -> None:
        with self._lock:
            self._seen = {key: held for key, held in self._seen.items() if key[0] != payer}


_FRESH = 30.0
_COUNTS: weakref.WeakKeyDictionary[Runtime, _Counts] = weakref.WeakKeyDictionary()
_COUNTS_LOCK = threading.Lock()


def _counts(runtime: Runtime) -> _Counts:
    with _COUNTS_LOCK:
        counts = _COUNTS.get(runtime)
        if counts is None:
            counts = _COUNTS[runtime] = _Counts()
        return counts


def _payer(cred: CredentialConfig) -> str:
    """The paying key: the manager's (rotator/ops/fleet.payer says the same)."""
    return cred.manager or cred.name


def _starts_since(runtime: Runtime, cred: CredentialConfig, since: float) -> int:
    """Non-emergency rotations of credentials sharing `cred`'s paying key whose latest record started at or after
    `since`."""
    payer = _payer(cred)
    count = 0
    for other in runtime.config.credentials.values():
        if _payer(other) != payer:
            continue
        record = runtime.read_record(other)
        if record is not None and _scheduled_kind(record) and record.started_at >= since:
            count += 1
    return count
