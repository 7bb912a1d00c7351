"""Polling Bluum with one pair until `machine.judge_*` decides: the new key must start working (propagation), or
the old one must stop (revocation). Each wait renews the lease through the journal, so a long propagation budget
never outlives the lease that protects the rotation."""

from __future__ import annotations

from rotator.core.durations import format_duration
from rotator.core.model import StoredKey
from rotator.rotation.context import Journal, RotationContext
from rotator.rules import machine
from rotator.rules.machine import Judgement, Verdict

PROGRESS_EVERY = 5.0
"""Seconds between two "still waiting" lines: quiet for a normal propagation, a heartbeat for a long one."""


def poll(ctx: RotationContext, journal: Journal, key: StoredKey, *, new_key: bool) -> tuple[Judgement, int]:
    """Check `key` until PASSED or FAILED within `verify_timeout`. Returns the judgement and how many calls it took.

    new_key: the pair must start working; otherwise it must stop working.
    """
    runtime = ctx.runtime
    started = runtime.monotonic()
    timeout = ctx.cred.verify_timeout.total_seconds()
    attempt = 0
    told = 0.0
    wanted = "Bluum to accept" if new_key else "Bluum to reject"
    while True:
        result = ctx.check(key)
        elapsed = runtime.monotonic() - started
        outcome = result.outcome.value
        judgement = (
            machine.judge_new_key(outcome, result.code, result.reason, elapsed=elapsed, timeout=timeout)
            if new_key
            else machine.judge_old_key(outcome, result.reason, elapsed=elapsed, timeout=timeout)
        )
        if judgement.verdict is not Verdict.RETRY:
            return judgement, attempt + 1
        if elapsed - told >= PROGRESS_EVERY:
            told = elapsed
            spent, budget = format_duration(round(elapsed)), format_duration(ctx.cred.verify_timeout)
            journal.progress(f"still waiting for {wanted} {key.label}: {spent} of up to {budget} ({judgement.reason})")
        journal.keepalive()
        runtime.sleep(machine.poll_delay(attempt))
        attempt += 1
