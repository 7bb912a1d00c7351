"""`rotator deploy NAME`: put the credential's current key into targets that do not hold it yet.

A store added to `also_deploy_to` after the credential was enrolled holds nothing: `rotate` (whose promote needs every
target to show the old key) and `enroll` (a credential whose primary holds a key is enrolled) both refuse. This command
copies the key the primary's CURRENT holds there, under the credential's lease, and only a key that may be spread:
of the credential's environment by what the primary says and by what Bluum lists (I7), with usable values, and
accepted by Bluum now (a pair Bluum rejects is never spread: an emergency rotation replaces it). A target that shows
another key is never overwritten (`rotator.rules.spread`); every refusal comes before the first write. Each copy is
read back, published (a step line, the log, the history) by store and key label, never by value.

Why a command of its own rather than the next rotation doing it: a rotation that finds an empty target would have to
write a key into it that it then revokes minutes later, spreading the old key only to kill it; and a rotation is not
always near (90 days; a manual issuer's waits on a person). Copying is what the operator asked for when they edited
`also_deploy_to`, so it runs when they say, says what it did, and `rotate` and `verify` point to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from rotator.core.errors import ConfigError, RotationIncomplete, StoreError, StoreNotFound
from rotator.core.events import EventBus, EventKind, RotationEvent
from rotator.core.model import Stage, StoredKey
from rotator.rotation import preflight
from rotator.rotation.context import RotationContext, new_token
from rotator.rotation.driver import Outcome, RecordKeeper
from rotator.rules import identity
from rotator.rules.guards import guard_environment, guard_values
from rotator.rules.spread import spread


def deploy(ctx: RotationContext, keeper: Callable[[], RecordKeeper], bus: EventBus) -> Outcome:
    """Copy `ctx`'s current key into the targets that hold none, after checking it; refuse (nothing changed) else."""
    from rotator.core.errors import ExitCode

    name = ctx.cred.name
    preflight.check_targets(ctx)
    with keeper() as held:
        record = held.read(store=ctx.primary.name)
        if record is not None and not record.phase.terminal:
            raise RotationIncomplete(
                f"{name}: rotation {record.token[:8]} is unfinished (phase {record.phase.value}); finish it with "
                f"`rotator resume {name}` first (it writes every target). Nothing was changed"
            )
        current = _primary_key(ctx)
        decision = spread(current, _shown(ctx), {s.name: s.describe() for s in ctx.stores[1:]})
        if decision.conflicting:
            raise ConfigError(
                f"{name}: {'; '.join(decision.conflicting)}, not the primary {ctx.primary.name!r}'s current key "
                f"{current.label}. It is never overwritten: an application may be using that key, and no rotation "
                "would ever revoke it. If nothing uses it, empty that store (or write the primary's pair there) and "
                f"run `rotator deploy {name}` again; if something does, it is another credential: give it its own "
                "[credentials.NAME]. Nothing was changed"
            )
        if not decision.empty:
            where = ", ".join(decision.holding) or "no other target"
            message = (
                f"{name}: every target already holds {current.label} ({ctx.primary.name}; {where}); nothing copied"
            )
            return Outcome(name, ExitCode.OK, message, record)
        _check_at_bluum(ctx, current)
        copied = _copy(ctx, held, bus, current, decision.empty)
    also = f"; already there: {', '.join(decision.holding)}" if decision.holding else ""
    return Outcome(
        name,
        ExitCode.OK,
        f"{name}: copied the current key {current.label} (Bluum accepts it) into {', '.join(copied)}{also}",
        record,
    )


def _copy(
    ctx: RotationContext, held: RecordKeeper, bus: EventBus, current: StoredKey, empty: tuple[str, ...]
) -> list[str]:
    """Write `current` as CURRENT into each store named in `empty`, read it back, and say so (a NOTE event each)."""
    name = ctx.cred.name
    token = current.token or new_token()
    copied = []
    for store in ctx.stores[1:]:
        if store.name not in empty:
            continue
        held.hold()  # between targets too: a runner that lost its lease writes nothing more
        store.put_pending(replace(current, token=token))
        store.promote(token)
        if not (shown := store.read(Stage.CURRENT)) or not shown.same_key(current):
            raise StoreError(
                f"{name}: {store.name!r} ({store.describe()}) does not read back {current.label} after the copy; "
                f"check the store and run `rotator deploy {name}` again",
                store=store.name,
            )
        copied.append(store.name)
        message = f"copied {current.label} from {ctx.primary.name} into {store.name} ({store.describe()})"
        event = RotationEvent(
            kind=EventKind.NOTE,
            credential=name,
            step="deploy",
            message=message,
            token=token,
            new_key=current.label,
            actor=ctx.runtime.owner,
            at=ctx.runtime.clock(),
        )
        bus.publish(event)
    return copied


def _primary_key(ctx: RotationContext) -> StoredKey:
    """The primary's CURRENT, refused when it is of the other environment (I7) or carries unusable values."""
    name, primary = ctx.cred.name, ctx.primary
    try:
        current = primary.read(Stage.CURRENT)
    except StoreNotFound:
        current = None
    if current is None:
        raise ConfigError(
            f"{name}: the primary store {primary.name!r} ({primary.describe()}) holds no key, so there is nothing to "
            f"copy: give the credential its first key with `rotator enroll {name}`. Nothing was changed"
        )
    guard_environment(name, ctx.cred.environment, current, f"the current key {current.label} in {primary.name!r}")
    guard_values(name, current, f"the current key in store {primary.name!r} ({primary.describe()})")
    return current


def _shown(ctx: RotationContext) -> dict[str, StoredKey | None]:
    """What each other target shows as CURRENT; None where the store (the file, the Vault path) does not exist yet."""
    shown: dict[str, StoredKey | None] = {}
    for store in ctx.stores[1:]:
        try:
            shown[store.name] = store.read(Stage.CURRENT)
        except StoreNotFound:
            shown[store.name] = None
    return shown


def _check_at_bluum(ctx: RotationContext, current: StoredKey) -> None:
    """The key is of this credential's environment by Bluum's list too (I7), and Bluum accepts it now."""
    name = ctx.cred.name
    keys = ctx.list_keys()
    listed = None if keys is None else identity.listed_key(keys, current)
    if listed is not None:
        guard_environment(name, ctx.cred.environment, replace(current, environment=listed.environment), listed.id)
    preflight.refuse_unless_accepted(ctx, current, current.label, refused="not copied anywhere: ")
