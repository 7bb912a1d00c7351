"""`rotator sweep`: find active keys at Bluum that no store knows (I3) and credentials with too many (I4).

Credentials of one investor share its key list, so a key is an orphan only when none of them knows it. A store
knows a key by its public key (an id line may be stale or wrong); and whatever the lists say, `--revoke` never
revokes a key whose public key any configured store holds in any stage (I1).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.ledger import held_lease
from rotator.core.durations import format_duration
from rotator.core.errors import LeaseLost
from rotator.core.in_flight import bluum_call_seconds, longest_in_flight
from rotator.core.lease_clock import LeaseClock, guarding
from rotator.core.model import ApiKeyInfo, Stage
from rotator.rotation import stale_pending
from rotator.rules import identity, machine
from rotator.rules.identity import Holding

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.issuers.base import Issuer
    from rotator.rotation.runtime import Runtime
    from rotator.rules.record import RotationRecord

LEASE_SECONDS = 5 * 60  # a sweep takes seconds; a crashed one frees the leases it held by then


@dataclass(frozen=True, slots=True)
class SweepFinding:
    credential: str
    key_id: str | None
    kind: str  # orphan | revoked | held | in-flight | warning | stale | cleared
    message: str


@dataclass(frozen=True, slots=True)
class _SweepView:
    cred: CredentialConfig
    issuer: Issuer
    scope: str
    keys: list[ApiKeyInfo]
    known: set[str]
    tokens: set[str]


def sweep(
    runtime: Runtime,
    *,
    revoke: bool = False,
    include_foreign: bool = False,
    only: Collection[str] | None = None,
) -> list[SweepFinding]:
    """Active keys at Bluum that no store knows (I3), and credentials with too many active keys (I4).

    Credentials of one investor share its key list, so a key is an orphan only when none of them knows it.
    With `revoke`, every credential's lease is held: a rotation between create and store is never swept. `only`
    limits revoking to those key ids (the ones a person was shown and confirmed).
    """
    config = runtime.config
    creds = [cred for cred in config.credentials.values() if runtime.issuer(cred).revokes]
    # The leases are never renewed (a sweep takes seconds), so they are timed from before the first one was taken, and
    # the ledgers are told the longest request in flight more: a sweep frozen past them revokes nothing (`lease_clock`).
    clock = LeaseClock(LEASE_SECONDS, monotonic=runtime.monotonic, wall=runtime.clock)
    call_budget = bluum_call_seconds(config.bluum)
    takeover_extra = longest_in_flight(config.bluum, config.stores.values())

    def guard(seconds: float) -> None:
        stalled = clock.ran_out()
        if stalled or clock.left() < seconds:
            raise LeaseLost(
                f"sweep: {stalled or _too_short(clock.left())}; nothing more was revoked. Run `rotator sweep` again"
            )

    with ExitStack() as stack:
        if revoke:
            for cred in creds:
                stack.enter_context(held_lease(runtime.ledger(cred), runtime.owner, LEASE_SECONDS + takeover_extra))
            stack.enter_context(guarding(guard))
        records = {cred.name: runtime.read_record(cred) for cred in creds}
        findings = [found for cred in creds for found in _stale_pendings(runtime, cred, records[cred.name], revoke)]
        views = [_sweep_view(runtime, cred, records[cred.name]) for cred in creds]  # after the drops: orphans now
        holdings = runtime.holdings() if revoke else []
        known, in_flight = _by_scope(views)
        reported: set[str] = set()
        # First each credential's own keys (their name says whose), then what no credential made.
        for owned in (True, False):
            for view in views:
                findings.extend(
                    _sweep_one(
                        view,
                        known[view.scope],
                        in_flight[view.scope],
                        reported,
                        holdings,
                        owned=owned,
                        revoke=revoke,
                        only=only,
                        include_foreign=include_foreign,
                        guard=lambda: guard(call_budget),
                    )
                )
    return findings


def _by_scope(views: list[_SweepView]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The keys known, and the tokens of rotations in flight, per key list (an investor's credentials share one):
    a key is an orphan only when no credential of its list knows it."""
    known: dict[str, set[str]] = {}
    in_flight: dict[str, set[str]] = {}
    for view in views:
        known.setdefault(view.scope, set()).update(view.known)
        in_flight.setdefault(view.scope, set()).update(view.tokens)
    return known, in_flight


def _stale_pendings(
    runtime: Runtime, cred: CredentialConfig, record: RotationRecord | None, drop: bool
) -> list[SweepFinding]:
    """PENDINGs no rotation in flight owns (`rotator.rotation.stale_pending`): reported, or with `drop` (under the
    lease) taken off, so the key they held is judged below as any other key no store knows."""
    findings = []
    for stale in stale_pending.find(runtime.stores_of(cred), record):
        why = stale.why(record)
        if not drop:
            findings.append(
                SweepFinding(cred.name, stale.key.key_id, "stale", f"{why}; `rotator sweep --revoke` takes it off")
            )
        elif stale.store.drop_pending(stale.token) is not None:
            findings.append(SweepFinding(cred.name, stale.key.key_id, "cleared", f"{why}: taken off"))
    return findings


def _sweep_view(runtime: Runtime, cred: CredentialConfig, record: RotationRecord | None) -> _SweepView:
    """What one credential knows: the keys in its stores (by public key), and its unfinished rotation's token."""
    issuer = runtime.issuer(cred)
    keys = issuer.list_keys() or []
    known: set[str] = set()
    tokens: set[str] = set()
    if record is not None and not record.phase.terminal:
        tokens.add(record.token)  # its keys are the unfinished rotation's to finish or undo, not sweep's
    for store in runtime.stores_of(cred):
        for stage in Stage:
            stored = store.read(stage)
            listed = None if stored is None else identity.listed_key(keys, stored)
            if listed is not None:
                # By public key only, as `rotate` judges stray keys: an id line or a record id decides nothing.
                known.add(listed.id)
    return _SweepView(cred, issuer, issuer.scope, keys, known, tokens)


def _sweep_one(
    view: _SweepView,
    known: set[str],
    in_flight: set[str],
    reported: set[str],
    holdings: list[Holding],
    *,
    owned: bool,
    revoke: bool,
    include_foreign: bool,
    only: Collection[str] | None,
    guard: Callable[[], None],
) -> list[SweepFinding]:
    """Orphans of one credential: those its name marks as its own (`owned`), else any not yet reported."""
    cred = view.cred
    active = [info for info in view.keys if info.active]
    mine = [info for info in active if info.id in view.known or machine.owned_by(info, cred.name)]
    findings = []
    if owned and len(mine) > machine.MAX_ACTIVE_KEYS:
        findings.append(
            SweepFinding(
                cred.name,
                None,
                "warning",
                f"{len(mine)} active keys at Bluum (expected at most {machine.MAX_ACTIVE_KEYS})",
            )
        )
    for info in machine.orphans(active, known):
        ours = machine.owned_by(info, cred.name)
        if info.id in reported or ours is not owned:
            continue
        reported.add(info.id)
        if machine.token_of(info) in in_flight:
            findings.append(
                SweepFinding(
                    cred.name,
                    info.id,
                    "in-flight",
                    f"belongs to unfinished rotation; run `rotator resume {cred.name}`",
                )
            )
        elif revoke and (ours or include_foreign) and (only is None or info.id in only):
            refusal = identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere)
            if refusal:
                findings.append(SweepFinding(cred.name, info.id, "held", f"not revoked: {refusal}"))
            else:
                guard()  # the key was judged an orphan under the leases: they must outlive the whole revoke
                view.issuer.revoke(info.id)
                findings.append(SweepFinding(cred.name, info.id, "revoked", "active key no store knew"))
        else:
            hint = "made by this tool" if ours else "not made by this tool (--include-foreign to revoke)"
            findings.append(SweepFinding(cred.name, info.id, "orphan", f"active key no store knows; {hint}"))
    return findings


def _too_short(left: float) -> str:
    return f"its leases have {format_duration(left, places=2)} left, less than a request may take"
