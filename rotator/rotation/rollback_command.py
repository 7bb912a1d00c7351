"""`rotator rollback NAME`: a person's request to undo the last rotation while the old key still exists.

Refused, with what to do instead, once going back is impossible or would leave no working key: the revoke of the old
key has started (it may have reached Bluum), the old key is revoked, or Bluum already rejects it. Otherwise the
rollback is the driver's own (rotation/rollback.py), announced as the operator's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError, ExitCode, RotationIncomplete
from rotator.core.events import EventBus, EventKind
from rotator.core.model import Stage
from rotator.rotation.driver import Driver, Outcome
from rotator.rotation.rollback import after_rollback, roll_back
from rotator.rules import machine
from rotator.rules.record import Phase

if TYPE_CHECKING:
    from rotator.rotation.context import RotationContext
    from rotator.rotation.keeper import RecordKeeper

__all__ = ["rollback"]


def rollback(ctx: RotationContext, keeper_factory: Callable[[], RecordKeeper], bus: EventBus) -> Outcome:
    """Undo `ctx`'s credential's last rotation under its lease; exit 0 with "nothing to roll back" if none."""
    name = ctx.cred.name
    with keeper_factory() as keeper:
        record = keeper.read(store=ctx.primary.name)
        if record is None or record.phase is Phase.ROLLED_BACK:
            return Outcome(name, ExitCode.OK, f"{name}: nothing to roll back", record)
        if record.phase is Phase.REVOKING:
            raise RotationIncomplete(
                f"{name}: rotation {record.token[:8]} has started revoking the old key {record.old_key_label} "
                "(the revoke may or may not have reached Bluum), so there is no going back to it. "
                f"Finish the rotation with `rotator resume {name}`"
            )
        if not machine.can_roll_back(record):
            raise ConfigError(
                f"{name}: rotation {record.token[:8]} is {record.phase.value}: the old key "
                f"{record.old_key_label} is already revoked at Bluum, so there is nothing to go back to. "
                + (
                    f"Finish it with `rotator resume {name}`"
                    if not record.phase.terminal
                    else f"If the current key is bad, rotate again: `rotator rotate {name} --emergency`"
                )
            )
        previous = ctx.primary.read(Stage.PREVIOUS)
        if previous is not None and record.phase is not Phase.STARTED and not record.emergency:
            result = ctx.check(previous)
            if result.outcome.value == "rejected":
                raise RotationIncomplete(
                    f"{name}: the old key {record.old_key_label} is already rejected by Bluum ({result.reason}); "
                    f"rolling back would leave no working key. Finish forward with `rotator resume {name}`"
                )
        driver = Driver(ctx, keeper, bus)
        record = roll_back(ctx, record, driver, "rollback requested by the operator")
        message = f"{name}: rolled back. " + after_rollback(ctx, record)
        driver.publish(EventKind.ROLLED_BACK, record, "rollback", message)
        return Outcome(name, ExitCode.OK, message, record)
