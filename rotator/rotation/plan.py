"""`rotator plan NAME | --all`: every check a rotation will need, over a fleet, concurrently, changing nothing.

Why a command of its own: a rotation that finds a too-narrow Vault policy, a missing IAM action or a reload binary
that is not installed finds it half-way, after a key was minted (then rolled back), at 3 a.m., every tick. The plan
finds it first and says the fix. It makes no mutating call anywhere: Bluum sees GETs (the paying key's list once per
paying key, each current key's check paid by that key), Vault sees reads and `sys/capabilities-self`, AWS sees reads
and IAM's policy simulator, the files are stat'ed and read (tests/e2e/test_plan_*.py prove it from each one's own log).

Order: each paying key first (its list call proves it may list keys, once, however many credentials it pays for; a
Bluum that does not answer is then not asked again per credential), then every credential in threads (`[fleet]
concurrency`; the checks of one credential are independent of another's), then the fleet's budget against its
windows (rotator/rules/plan.py) and the notification webhooks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode, RotatorError, most_severe
from rotator.core.findings import Finding, Severity
from rotator.rotation.plan_checks import check_credential, from_error

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.rotation.runtime import Runtime

__all__ = ["PlanReport", "plan"]


@dataclass
class PlanReport:
    """What the plan found, for which credentials, in how long."""

    credentials: list[str]
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """The most severe finding's code: 2 for a problem (bad configuration, nothing changed), 5 when Bluum or a
        store did not answer; 0 when every check passed (or could only be noted)."""
        return most_severe(finding.exit_code for finding in self.findings)

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in self.findings if finding.severity is severity)


def payer_of(cred: CredentialConfig) -> str:
    """The key that pays for `cred`'s calls at Bluum: its manager's, or its own (rotator/ops/fleet.py says the same)."""
    return cred.manager or cred.name


def plan(runtime: Runtime, names: Sequence[str]) -> PlanReport:
    """Check the credentials `names` (and the paying keys they use); nothing is written anywhere."""
    began = time.monotonic()
    config = runtime.config
    creds = [config.credential(name) for name in names]
    report = PlanReport([cred.name for cred in creds])
    workers = max(1, config.fleet.concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan") as pool:
        payers = sorted({payer_of(cred) for cred in creds if cred.issuer == "bluum"})
        answered = dict(zip(payers, pool.map(lambda payer: _payer(runtime, payer, creds), payers), strict=True))
        for payer_findings in answered.values():
            report.findings += payer_findings
        survey = runtime.survey(fresh=())  # once for the fleet: who else holds a key, which store cannot be read
        holdings = list(survey.held)
        silent = {payer for payer, found in answered.items() if any(f.severity is Severity.UNREACHABLE for f in found)}

        def one(cred: CredentialConfig) -> list[Finding]:
            asked = payer_of(cred) not in silent
            return check_credential(runtime, cred, holdings=holdings, ask_bluum=asked, unread=survey.unreadable)

        for found in pool.map(one, creds):
            report.findings += found
    report.findings += _budget(runtime, creds)
    from rotator.rotation.plan_reloads import url_findings

    report.findings += url_findings(runtime)
    report.seconds = time.monotonic() - began
    return report


def _payer(runtime: Runtime, payer: str, creds: list[CredentialConfig]) -> list[Finding]:
    """One list call with the paying key (through the issuer of one credential it pays for): it may list keys."""
    cred = next(c for c in creds if c.issuer == "bluum" and payer_of(c) == payer)
    part = f"Bluum manager key {payer} ({cred.base_url})"
    try:
        runtime.issuer(cred).list_keys()
    except RotatorError as exc:
        fix = (
            "check `base_url` and the network; run `rotator plan` again"
            if exc.exit_code is ExitCode.UNAVAILABLE
            else f"put a working {cred.environment.value} tenant key in credential {payer}'s store (Bluum's dashboard, "
            "Settings → API Keys)"
        )
        return [from_error(part, exc, fix).of(payer)]
    try:
        return [found.of(payer) for found in _lane_access(runtime, payer)]
    except RotatorError as exc:
        return [from_error(f"the paying-key lane of {payer}", exc, "fix the store as said, then plan again").of(payer)]


def _lane_access(runtime: Runtime, payer: str) -> list[Finding]:
    """With `[fleet] lanes`, the paying key's lane is a lease in its credential's primary store: that store must let
    this runner write it too (Vault: `<state_path>.lane`)."""
    from backends.access import LaneAccessChecked

    if not runtime.config.fleet.lanes:
        return []
    store = runtime.store(runtime.config.credential(payer).store)
    return store.check_lane_access() if isinstance(store, LaneAccessChecked) else []


def _budget(runtime: Runtime, creds: list[CredentialConfig]) -> list[Finding]:
    """Each paying key's fleet against its windows and rate (rotator/rules/plan.py)."""
    from rotator.rules.plan import fleet_fit

    config = runtime.config
    found = []
    for payer in sorted({payer_of(cred) for cred in creds}):
        fleet = [c for c in config.credentials.values() if payer_of(c) == payer and c.issuer == "bluum"]
        if not fleet:
            continue
        first = fleet[0]
        fit = fleet_fit(
            payer,
            len(fleet),
            rate=float(config.bluum.rate_limits[first.environment]),
            schedule=first.windows,
            rotate_every=min(c.rotate_every.total_seconds() for c in fleet),
            now=runtime.clock(),
        )
        if fit is not None:
            found.append(Finding(f"fleet paid by {payer}", fit.problem, fit.fix, credential=payer))
    return found
