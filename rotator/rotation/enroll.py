"""`rotator enroll`: a credential's first key, a rotation from nothing (no old key to keep or revoke).

The issuer mints it (`bluum`), or a person hands it over (`manual`, checked like any new pair); it is stored, staged,
accepted by Bluum, then deployed to every target, whose files are created if need be. Everything that refuses it is
checked before the lease is taken, and the record once more under it.
"""

from __future__ import annotations

from collections.abc import Callable

from rotator.core.errors import ConfigError, RotationIncomplete, StoreNotFound
from rotator.core.events import EventBus, EventKind
from rotator.core.model import Stage, StoredKey
from rotator.rotation import preflight
from rotator.rotation.context import RotationContext, new_token
from rotator.rotation.driver import Driver, Outcome, RecordKeeper
from rotator.rotation.reload import refuse_unrunnable
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord


def enroll(ctx: RotationContext, keeper: Callable[[], RecordKeeper], bus: EventBus) -> Outcome:
    """Enroll `ctx`'s credential (its `new_pair`, if a person made it), under the lease `keeper` takes."""
    cred = ctx.cred
    name = cred.name
    new_pair = ctx.new_pair
    if ctx.issuer.mints and new_pair is not None:
        raise ConfigError(f"{name} is minted through Bluum's API (issuer bluum): --new-key-file is not used")
    if not ctx.issuer.mints and new_pair is None:
        raise ConfigError(
            f"{name} is minted in Bluum's dashboard (issuer manual): create its first pair there, then run "
            f"`rotator enroll {name} --new-key-file FILE` (JSON with api_key, api_secret, key_id)"
        )
    refuse_unrunnable(ctx)
    preflight.check_targets(ctx)
    _refuse_enrolled(ctx)
    with keeper() as held:
        driver = Driver(ctx, held, bus)
        record = held.read(store=ctx.primary.name)
        if record is not None and not record.phase.terminal:
            raise RotationIncomplete(
                f"{name}: rotation {record.token[:8]} is unfinished (phase {record.phase.value}); finish it with "
                f"`rotator resume {name}` or undo it with `rotator rollback {name}`. Nothing was changed"
            )
        if new_pair is not None:
            preflight.precheck_new_pair(ctx, driver, new_pair, None)
            ctx.new_pair_checked = True
        now = ctx.runtime.clock()
        record = RotationRecord(
            credential=cred.name,
            token=new_token(),
            phase=Phase.STARTED,
            issuer=ctx.issuer.kind,
            started_at=now,
            updated_at=now,
            reason="enrollment: the credential's first key",
            old_key_label=ENROLLMENT,
        )
        record = driver.save(record, "started.record")
        driver.publish(EventKind.STARTED, record, "start", f"enrollment {record.token[:8]} of {name} started")
        return driver.run(record)


def _refuse_enrolled(ctx: RotationContext) -> None:
    """A store that already holds a current key means the credential is enrolled: rotate it instead, and give the
    stores that hold nothing yet (added to `also_deploy_to` since) its key with `rotator deploy`."""
    name = ctx.cred.name
    shown: dict[str, tuple[str, StoredKey | None]] = {}
    for store in ctx.stores:
        try:
            shown[store.name] = (store.describe(), store.read(Stage.CURRENT))
        except StoreNotFound:
            shown[store.name] = (store.describe(), None)
    enrolled = [(named, where, held) for named, (where, held) in shown.items() if held is not None]
    if enrolled:
        first, where, held = enrolled[0]
        empty = [named for named, (_, key) in shown.items() if key is None]
        fill = (
            f"; {', '.join(empty)} hold(s) no key yet: `rotator deploy {name}` copies the current key there"
            if empty
            else ""
        )
        assert held is not None
        raise ConfigError(
            f"{name}: store {first!r} ({where}) already holds a key ({held.label}): the credential is enrolled. "
            f"Rotate it with `rotator rotate {name}`{fill}. Nothing was changed"
        )
