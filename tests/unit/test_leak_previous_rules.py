"""Which old key a leak report may have revoked at once: the one a rotation going forward still holds as PREVIOUS
(rotator.rules.leak_report.previous_in_grace / match_previous)."""

from __future__ import annotations

import pytest

from rotator.attest import fingerprint
from rotator.rules.leak_report import Refusal, Report, match_previous, previous_in_grace
from rotator.rules.record import Phase, RotationRecord

OLD = "pk_test_OLDKEY0000000000000000000000"
OTHER = "pk_test_OTHERKEY00000000000000000000"


def record(phase: Phase, old: str | None = OLD) -> RotationRecord:
    return RotationRecord("trading", "t" * 32, phase, "bluum", 0.0, 0.0, old_public_key=old)


@pytest.mark.parametrize(
    "phase", [Phase.DEPLOYED, Phase.RELOADED, Phase.VERIFIED, Phase.AWAITING_CONSUMERS, Phase.REVOKING]
)
def test_an_old_key_deployed_over_and_not_yet_revoked_is_in_grace(phase: Phase):
    assert previous_in_grace(record(phase)) == OLD


@pytest.mark.parametrize(
    "phase",
    [
        Phase.STARTED,  # still CURRENT in the stores: a report of it is an emergency of the current key
        Phase.PENDING_STORED,
        Phase.STAGED,
        Phase.ACCEPTED,
        Phase.OLD_REVOKED,  # revoked already
        Phase.COMPLETED,
        Phase.ROLLING_BACK,  # it is becoming current again
        Phase.ROLLED_BACK,
    ],
)
def test_no_other_phase_offers_its_old_key(phase: Phase):
    assert previous_in_grace(record(phase)) is None


def test_a_record_without_the_old_public_key_offers_nothing():
    """An enrollment (no old key) or a record of a version before 2026-12: nothing to match, nothing guessed."""
    assert previous_in_grace(record(Phase.VERIFIED, old=None)) is None
    assert previous_in_grace(None) is None


def test_match_previous_names_the_one_holder_and_refuses_two():
    report = Report(fingerprint(OLD))
    assert match_previous(report, {"trading": OLD, "payments": OTHER, "idle": None}) == "trading"
    assert match_previous(report, {"trading": OTHER, "idle": None}) is None
    assert match_previous(report, {"trading": OLD, "copy": OLD}) is Refusal.AMBIGUOUS_KEY
