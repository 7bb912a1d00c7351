"""A leak report that names a credential's OLD key while its rotation waits out the grace window.

That key is PREVIOUS in the stores and still works at Bluum until the rotation revokes it: waiting out the grace
window (an hour by default) would leave a leaked key working for that long. So the rotation is finished now, as an
emergency: the grace window is skipped and the consumers are not waited for (rotator.rules.machine.attest_first: "a
leaked key does not wait"; the revoke names whoever was not on the new key yet). The rotation itself is the one
under way, driven by the same Driver as `rotator resume NAME --now`, so I1-I8 hold as they do there.

The match is decided once more under the credential's lease, from the record's `old_public_key` (the key as Bluum
listed it when the rotation started): a rotation that finished, rolled back or started anew between the report and
the lease changes nothing here, and says why.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from rotator.attest import fingerprint
from rotator.core.errors import ExitCode
from rotator.core.events import EventBus, EventKind
from rotator.rules.leak_report import previous_in_grace
from rotator.rules.record import Phase

if TYPE_CHECKING:
    from rotator.rotation.context import RotationContext
    from rotator.rotation.driver import Outcome, RecordKeeper
    from rotator.rules.record import RotationRecord

__all__ = ["revoke_leaked_previous"]


def revoke_leaked_previous(
    ctx: RotationContext, keeper: Callable[[], RecordKeeper], bus: EventBus, *, leaked: str, reason: str
) -> Outcome:
    """Revoke `ctx`'s credential's old key now, if it is still the one with fingerprint `leaked` in a grace window.

    Exit 0 when it was revoked, or when it no longer needs to be (the rotation finished: the key is revoked);
    exit 4 when the rotation is now in a state where revoking that key is not this path's decision (rolled back:
    the reported key is current again, and `rotator rotate NAME --emergency` is the answer)."""
    from rotator.rotation.driver import Driver

    name = ctx.cred.name
    with keeper() as lease:
        record = lease.read(store=ctx.primary.name)
        old = previous_in_grace(record)
        if record is None or old is None or not hmac.compare_digest(fingerprint(old), leaked):
            return _gone(name, leaked, record)
        ctx.skip_grace = ctx.emergency = True
        driver = Driver(ctx, lease, bus)
        because = f"{record.reason}; {reason}" if record.reason else reason
        now = ctx.runtime.clock()
        record = driver.save(record.advance(record.phase, now, emergency=True, reason=because), "leak.record")
        message = (
            f"{reason} names the old key {record.old_key_label}, still in its grace window: revoking it now "
            f"(rotation {record.token[:8]}, from {record.phase.value})"
        )
        driver.publish(EventKind.RESUMED, record, "leak_report", message)
        return driver.run(record)


def _gone(name: str, leaked: str, record: RotationRecord | None) -> Outcome:
    """The reported key is no longer an old key waiting out a grace window: say what it is instead."""
    from rotator.rotation.driver import Outcome

    if record is not None and record.phase in (Phase.OLD_REVOKED, Phase.COMPLETED):
        return Outcome(name, ExitCode.OK, f"{name}: the key {leaked} is already revoked. Nothing changed", record)
    return Outcome(
        name,
        ExitCode.INCOMPLETE,
        f"{name}: the key {leaked} is no longer an old key in a grace window (the rotation is "
        f"{'gone' if record is None else record.phase.value}); if it is current again, run `rotator rotate {name} "
        '--emergency --reason "..."`. Nothing changed',
        record,
    )
