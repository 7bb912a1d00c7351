"""Everything that can refuse a rotation before anything changes, and the dry-run plan built on it.

A normal rotation starts only from a current key Bluum is seen to accept; every target's pair must be usable and
of the credential's environment; the key is identified in Bluum's list by its public key, and an id line that
names another key is refused; no other credential may hold the same key; no stray key of this credential may
make a third active key. An emergency never calls the (maybe leaked and hammered) current key at all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from rotator.core.errors import BluumUnavailable, ConfigError, RotationIncomplete, StoreNotFound
from rotator.core.model import ApiKeyInfo, Stage, StoredKey, fingerprint, printable_id
from rotator.rotation.context import Journal, RotationContext
from rotator.rotation.reload import planned, refuse_unrunnable
from rotator.rules import identity, machine
from rotator.rules.guards import guard_environment, guard_values
from rotator.rules.record import RotationRecord

if TYPE_CHECKING:
    from backends.base import SecretStore


def check_targets(ctx: RotationContext) -> None:
    """Refuse (exit 2, nothing changed) when a target must not be written: a store that can tell says so here.

    From `rotator plan`'s checks, the one that is cheap and decides: a target other than the primary whose permissions
    one read-only request proves short (a Vault token's policy without create, read or update on the path) would be
    met only at stage, after a key was minted (then rolled back and revoked). The primary is not asked: its stage
    document is proven by the first record write, before anything is minted, and every request a rotation of a Vault
    primary makes is counted (tests/e2e/test_vault_requests.py); `rotator plan` checks it."""
    from backends.access import AccessRefusals
    from backends.base import WriteChecked  # lazily, as every store import: a Lambda never loads what it lacks

    for store in ctx.stores:
        if isinstance(store, WriteChecked):
            store.check_writable()
    refusals = [
        found for store in ctx.stores[1:] if isinstance(store, AccessRefusals) for found in store.access_refusals()
    ]
    if refusals:
        said = "; ".join(f"{found.part}: {found.problem} (fix: {found.fix})" for found in refusals)
        raise ConfigError(
            f"{ctx.cred.name}: {said}. Nothing was changed; `rotator plan {ctx.cred.name}` checks everything a "
            "rotation needs"
        )


def read_current(ctx: RotationContext) -> StoredKey:
    """The primary's CURRENT, after checking every target's CURRENT for environment (I7) and usable values."""
    current = ctx.primary.read(Stage.CURRENT)
    if current is None:
        raise ConfigError(
            f"{ctx.cred.name}: store {ctx.primary.name!r} ({ctx.primary.describe()}) holds no current key; "
            "put the key that applications use there first"
        )
    for store in ctx.stores:
        found = current if store is ctx.primary else _target_current(ctx, store, current)
        if found is None:
            continue
        what = f"the current key {found.label} in {store.name!r}"
        guard_environment(ctx.cred.name, ctx.cred.environment, found, what)
        guard_values(ctx.cred.name, found, f"the current key in store {store.name!r} ({store.describe()})")
        if not found.same_key(current):
            # The old key is pinned now (I8): a target showing another one would stop the rotation at promote.
            shows = (
                "the primary's API key with another secret"
                if found.api_key == current.api_key
                else f"{fingerprint(found.api_key)} as its current key"
            )
            raise ConfigError(
                f"{ctx.cred.name}: store {store.name!r} ({store.describe()}) shows {shows}, but the primary store "
                f"{ctx.primary.name!r} shows {fingerprint(current.api_key)}: "
                "a rotation replaces (and revokes) one old key. Put the primary's pair in every target (`rotator "
                f"verify {ctx.cred.name}` compares them), or take that store out of the credential. Nothing was changed"
            )
    return current


def _target_current(ctx: RotationContext, store: SecretStore, current: StoredKey) -> StoredKey | None:
    """A target's CURRENT; one that does not exist yet while the primary holds a key is a store added to
    `also_deploy_to` after enrollment: `rotator deploy` fills it (its own message would point to `enroll`, which
    refuses an enrolled credential)."""
    try:
        return store.read(Stage.CURRENT)
    except StoreNotFound as exc:
        name = ctx.cred.name
        raise ConfigError(
            f"{name}: store {store.name!r} ({store.describe()}) holds no key yet (it does not exist), while the "
            f"primary {ctx.primary.name!r} holds {current.label}: a store added to the credential after its first "
            f"key. Run `rotator deploy {name}`: it checks the current key at Bluum and copies it there. "
            "Nothing was changed"
        ) from exc


def identify_current(ctx: RotationContext, current: StoredKey, keys: list[ApiKeyInfo] | None) -> str | None:
    """The key id of the current pair as Bluum lists it (by public key); every target's id line must agree.

    Without a key list (tenant keys are not listed) the id line is all there is to go by.
    """
    if keys is None:
        return printable_id(current.key_id)
    for store in ctx.stores:
        found = current if store is ctx.primary else store.read(Stage.CURRENT)
        if found is None:
            continue
        listed = identity.listed_key(keys, found)
        where = f"store {store.name!r} ({store.describe()})"
        problem = identity.id_line_problem(found, listed, where=where, scope=ctx.issuer.scope)
        if problem:
            raise ConfigError(f"{ctx.cred.name}: {problem}. Nothing was changed")
        if listed is not None:
            what = f"{listed.id} in {where}"
            guard_environment(ctx.cred.name, ctx.cred.environment, replace(found, environment=listed.environment), what)
    listed = identity.listed_key(keys, current)
    return None if listed is None else listed.id


def preflight(ctx: RotationContext, record: RotationRecord | None) -> tuple[StoredKey, str | None]:
    """Refuse (changing nothing) or return the current key and its id at Bluum."""
    cred = ctx.cred
    refuse_unrunnable(ctx)
    check_targets(ctx)
    current = read_current(ctx)
    keys = ctx.list_keys()
    current_id = identify_current(ctx, current, keys)
    # A store of another credential that cannot be read does not stop the start (its application's broken file must
    # not stop this rotation, least of all an emergency): it matters at the revoke, which checks it again. One that
    # cannot even be opened (its configuration is wrong) is bad input: it refuses a normal rotation here, changing
    # nothing; an emergency goes on.
    survey = ctx.runtime.survey(fresh=cred.targets, refuse_misconfigured=not ctx.emergency)
    ctx.unchecked = identity.unread_stores(survey)
    holdings = survey.held
    shared = identity.shared_with_others(current, holdings, cred.name)
    if shared:
        raise ConfigError(
            f"{cred.name}: its current key {current_id or current.label} is also held by {shared}. Two credentials "
            "must not share a key: rotating one would have to revoke the key the other still uses. Give each "
            "credential its own key (or one credential several stores: `also_deploy_to`). Nothing was changed."
        )
    own_active = [info for info in keys or [] if machine.owned_by(info, cred.name) and info.active]
    held = {
        info.id: refusal
        for info in own_active
        if (refusal := identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere))
    }
    blockers = machine.start_blockers(record, own_active, current_id, held)
    if blockers:
        message = f"{cred.name}: " + "; ".join(blockers) + ". Nothing was changed."
        if record is not None and not record.phase.terminal:
            raise RotationIncomplete(message)
        raise ConfigError(message)
    if not ctx.emergency:
        refuse_unless_accepted(ctx, current, current_id or current.label)
    return current, current_id


def refuse_unless_accepted(ctx: RotationContext, current: StoredKey, key: str, *, refused: str = "") -> None:
    """Bluum accepts the current key now, or the command stops (nothing changed): BluumUnavailable when Bluum did not
    answer (run it again later), ConfigError with the rule's advice otherwise. `refused` prefixes that advice."""
    name = ctx.cred.name
    result = ctx.check(current)
    outcome = result.outcome.value
    refusal = machine.start_refusal(outcome, result.code, result.reason, key=key, credential=name)
    if refusal and outcome == "inconclusive" and machine.transient_status(result.status):
        raise BluumUnavailable(
            f"{name}: Bluum did not answer the check of the current key {key} ({result.reason}). "
            "Nothing was changed; run the command again later"
        )
    if refusal:
        raise ConfigError(f"{name}: {refused}{refusal}. Nothing was changed.")


def precheck_new_pair(ctx: RotationContext, journal: Journal, pair: StoredKey, current: StoredKey | None) -> None:
    """A person's new pair: not the current one, of this environment, usable, and accepted by this Bluum (I7)."""
    from rotator.rotation.probe import poll
    from rotator.rules.machine import Verdict

    cred = ctx.cred
    if current is not None and pair.same_key(current):
        raise ConfigError(
            f"{cred.name}: the pair in --new-key-file is the current pair; create a new one in Bluum's "
            "dashboard first. Nothing was changed"
        )
    guard_environment(cred.name, cred.environment, pair, "the new pair from --new-key-file")
    guard_values(cred.name, pair, "the new pair from --new-key-file")
    judgement, _ = poll(ctx, journal, pair, new_key=True)
    if judgement.verdict is Verdict.FAILED:
        raise ConfigError(
            f"{cred.name}: the new pair is not accepted by {cred.environment.value} Bluum at {cred.base_url} "
            f"({judgement.reason}). Is it a key of another environment, or mistyped? Nothing was changed."
        )


def plan(ctx: RotationContext, current: StoredKey, current_id: str | None) -> str:
    """--dry-run: the steps a rotation will really take, in order and in the configuration's own units."""
    from rotator.core.durations import format_duration

    cred = ctx.cred
    old = current_id or current.label
    others = [s.name for s in ctx.stores[1:]]
    grace = "at once (emergency)" if ctx.emergency else f"after the grace window ({format_duration(cred.grace)})"
    revoke = (
        f"{grace}, revoke {old} at Bluum and prove it gets 401"
        if ctx.issuer.revokes and current_id
        else f"{grace}, a person revokes {old} in Bluum's dashboard; then prove it gets 401"
    )
    lines = [
        f"{cred.name}: dry run, nothing will change",
        f"  1. create:  {ctx.issuer.source()}; store it as PENDING in {ctx.primary.name}",
    ]
    if others:
        lines.append(f"  2. stage:   PENDING in {', '.join(others)} too (applications still read the old key)")
    lines += [
        f"  {len(lines)}. accept:  call {cred.check_path} with the new key until Bluum accepts it "
        f"(up to {format_duration(cred.verify_timeout)})",
        f"  {len(lines) + 1}. deploy:  make it CURRENT in {', '.join(s.name for s in ctx.stores)}; the old key stays "
        "PREVIOUS (overlap)",
    ]
    reload = planned(ctx)
    if reload:
        lines.append(f"  {len(lines)}. reload:  {reload}")
    lines += [
        f"  {len(lines)}. confirm: read every store back and ask Bluum once more",
        f"  {len(lines) + 1}. revoke:  {revoke}",
    ]
    if ctx.unchecked:
        then = "revoked anyway (emergency), and the output says so" if ctx.emergency else "revoked only once it reads"
        lines.append(f"  note: could not read {ctx.unchecked}; it may hold {old}, which is {then}")
    return "\n".join(lines)
