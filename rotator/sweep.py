"""`rotator sweep`: find active keys at Bluum that no store knows (I3) and credentials with too many (I4).

Credentials of one investor share its key list, so a key is an orphan only when none of them knows it. A store
knows a key by its public key (an id line may be stale or wrong); and whatever the lists say, `--revoke` never
revokes a key whose public key any configured store holds in any stage (I1).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotator import identity, machine
from rotator.identity import Holding
from rotator.model import ApiKeyInfo, Stage

if TYPE_CHECKING:
    from rotator.engine import Engine, RunContext


@dataclass(frozen=True, slots=True)
class SweepFinding:
    credential: str
    key_id: str | None
    kind: str  # orphan | revoked | held | in-flight | warning
    message: str


@dataclass(frozen=True, slots=True)
class _SweepView:
    run: RunContext
    investor: str
    keys: list[ApiKeyInfo]
    known: set[str]
    tokens: set[str]


def sweep(engine: Engine, *, revoke: bool = False, include_foreign: bool = False) -> list[SweepFinding]:
    """Active keys at Bluum that no store knows (I3), and credentials with too many active keys (I4).

    Credentials of one investor share its key list, so a key is an orphan only when none of them knows it.
    With `revoke`, every credential's lock is held: a rotation between create and store is never swept.
    """
    runs = [engine.context(c.name) for c in engine.config.credentials.values() if c.issuer == "bluum"]
    with ExitStack() as stack:
        if revoke:
            for run in runs:
                stack.enter_context(engine.locked(run))
        views = [_sweep_view(engine, run) for run in runs]
        holdings = engine.holdings() if revoke else []
        known: dict[str, set[str]] = {}
        in_flight: dict[str, set[str]] = {}
        for view in views:
            known.setdefault(view.investor, set()).update(view.known)
            in_flight.setdefault(view.investor, set()).update(view.tokens)
        findings: list[SweepFinding] = []
        reported: set[str] = set()
        # First each credential's own keys (their name says whose), then what no credential made.
        for owned in (True, False):
            for view in views:
                findings.extend(
                    _sweep_one(
                        engine,
                        view,
                        known[view.investor],
                        in_flight[view.investor],
                        reported,
                        holdings,
                        owned=owned,
                        revoke=revoke,
                        include_foreign=include_foreign,
                    )
                )
    return findings


def _sweep_view(engine: Engine, run: RunContext) -> _SweepView:
    """What one credential knows: the keys in its stores and record, and its unfinished rotation's token."""
    assert run.cred.investor_id is not None
    keys = engine.list_keys(run)
    known: set[str | None] = set()
    tokens: set[str] = set()
    record = engine.read_record(run)
    if record is not None and not record.phase.terminal:
        tokens.add(record.token)  # its keys are the unfinished rotation's to finish or undo, not sweep's
    for store in run.stores:
        for stage in Stage:
            stored = store.read(stage)
            if stored is not None:
                # By public key only, as `rotate` judges stray keys: an id line or a record id decides nothing.
                known.add(engine.resolve_key_id(stored, keys))
    return _SweepView(run, run.cred.investor_id, keys, {k for k in known if k}, tokens)


def _sweep_one(
    engine: Engine,
    view: _SweepView,
    known: set[str],
    in_flight: set[str],
    reported: set[str],
    holdings: list[Holding],
    *,
    owned: bool,
    revoke: bool,
    include_foreign: bool,
) -> list[SweepFinding]:
    """Orphans of one credential: those its name marks as its own (`owned`), else any not yet reported."""
    run, cred = view.run, view.run.cred
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
        elif revoke and (ours or include_foreign):
            refusal = identity.revoke_refusal(info, holdings, allowed=identity.held_nowhere)
            if refusal:
                findings.append(SweepFinding(cred.name, info.id, "held", f"not revoked: {refusal}"))
            else:
                engine.revoke_key(run, info.id)
                findings.append(SweepFinding(cred.name, info.id, "revoked", "active key no store knew"))
        else:
            hint = "made by this tool" if ours else "not made by this tool (--include-foreign to revoke)"
            findings.append(SweepFinding(cred.name, info.id, "orphan", f"active key no store knows; {hint}"))
    return findings
