"""What a scheduler (`run-due`, the daemon's tick) does with a credential whose last rotation is over: every reason a
new scheduled rotation does not start now, in the order an operator reads them.

Not due; paused (`rotator pause`, rotator/rules/pause.py); outside its windows or over the cap per paying key
(rotation/start_gate.py); held off after a rollback (machine.retry_after_rollback); or due but minted by a person.
Each is a pure decision over what was already read: `RotationService.run_due` reads the ledger once and asks here,
so the service keeps one job (commands under a lease) and the scheduling rules grow in a room of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode
from rotator.core.timestamps import format_timestamp
from rotator.rotation import start_gate
from rotator.rotation.driver import Outcome
from rotator.rules import machine, windows
from rotator.rules import pause as pause_rule

if TYPE_CHECKING:
    from rotator.rotation.context import RotationContext
    from rotator.rules.record import RotationRecord


def is_due(ctx: RotationContext, record: RotationRecord | None) -> bool:
    """Due by its age (`rotate_every`) or by the expiry Bluum listed (`expiry_lead` before it)."""
    since = record.current_since if record is not None else None
    expires_at = record.expires_at if record is not None else None
    now = ctx.runtime.clock()
    lead = ctx.cred.windows.expiry_lead
    return machine.is_due(since, ctx.cred.rotate_every, now) or windows.due_for_expiry(expires_at, lead, now)


def not_due(ctx: RotationContext, record: RotationRecord | None, why: str = "") -> Outcome:
    due = windows.next_due(record, ctx.cred.rotate_every, ctx.cred.windows.expiry_lead)
    when = format_timestamp(due) if due else "unknown"
    return Outcome(ctx.cred.name, ExitCode.OK, f"{ctx.cred.name}: not due (next rotation {when}){why}", record)


def held_back(ctx: RotationContext, record: RotationRecord | None, paused: pause_rule.Pause | None) -> Outcome | None:
    """Why a scheduled rotation must not start now (the outcome to report), or None: start it."""
    name, now = ctx.cred.name, ctx.runtime.clock()
    if not is_due(ctx, record):
        return not_due(ctx, record)
    paused_why = pause_rule.scheduled_start(name, paused, now)
    if paused_why is not None:
        return Outcome(name, ExitCode.OK, paused_why, record)
    if (held := start_gate.scheduled_start(ctx.runtime, ctx.cred, record)) is not None:
        return held  # allow/deny windows and the cap per paying key (rotator/rules/windows.py)
    retry_at = machine.retry_after_rollback(record, ctx.cred.rotate_every)
    if record is not None and retry_at is not None and now < retry_at:
        return Outcome(
            name,
            ExitCode.ROLLED_BACK,
            f"{name}: its last rotation ({record.token[:8]}) rolled back ({record.failure}); the old key is still "
            f"current. The next scheduled try is at {format_timestamp(retry_at)}; `rotator rotate {name}` tries now",
            record,
        )
    if not ctx.issuer.mints:
        return Outcome(
            name,
            ExitCode.INCOMPLETE,
            f"{name}: rotation is due and waits on a person: create a new pair in Bluum's dashboard, then "
            f"`rotator rotate {name} --new-key-file FILE`",
            record,
        )
    return None
