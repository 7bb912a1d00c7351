"""The state machine's decisions, walked exhaustively: every phase x issuer x grace state x pair in hand."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest

from rotator.core.model import ApiKeyInfo, Environment, StoredKey
from rotator.core.secret import Secret
from rotator.rules import machine
from rotator.rules.machine import Step, Verdict
from rotator.rules.record import Phase, RotationRecord

NOW = 1_800_000_000.0


def record(
    phase: Phase, issuer: str = "bluum", revoke_after: float | None = None, old_key_id: str | None = "apk_old"
) -> RotationRecord:
    return RotationRecord(
        credential="trading",
        token="t" * 32,
        phase=phase,
        issuer=issuer,
        started_at=NOW - 10,
        updated_at=NOW - 5,
        revoke_after=revoke_after,
        old_key_id=old_key_id,
    )


def expected_step(
    phase: Phase, mints: bool, revokes: bool, grace_left: bool, has_pair: bool, skip: bool, reloads: bool = False
) -> Step:
    """An independent statement of the transition table, checked against next_step for every combination."""
    table = {
        Phase.COMPLETED: Step.DONE,
        Phase.ROLLED_BACK: Step.DONE,
        Phase.PENDING_STORED: Step.STAGE,
        Phase.STAGED: Step.ACCEPT,
        Phase.ACCEPTED: Step.PROMOTE,
        Phase.DEPLOYED: Step.RELOAD if reloads else Step.CONFIRM,
        Phase.RELOADED: Step.CONFIRM,
        Phase.OLD_REVOKED: Step.CLEAR,
        Phase.ROLLING_BACK: Step.ROLLBACK,
    }
    if phase in table:
        return table[phase]
    if phase is Phase.STARTED:
        if mints:
            return Step.CREATE
        return Step.STORE_PENDING if has_pair else Step.ROLLBACK
    # AWAITING_CONSUMERS (issue 19) without consumers configured (they were removed since): the revoke is next
    assert phase in (Phase.VERIFIED, Phase.AWAITING_CONSUMERS, Phase.REVOKING)
    if phase is Phase.VERIFIED and grace_left and not skip:
        return Step.WAIT_GRACE
    return Step.REVOKE_OLD if revokes else Step.AWAIT_OPERATOR_REVOKE


BOOLS = [True, False]


@pytest.mark.parametrize(
    ("phase", "mints", "revokes", "grace_left", "has_pair", "skip_grace", "reloads"),
    list(itertools.product(Phase, BOOLS, BOOLS, BOOLS, BOOLS, BOOLS, BOOLS)),
)
def test_next_step_for_every_combination(phase, mints, revokes, grace_left, has_pair, skip_grace, reloads):
    revoke_after = NOW + 60 if grace_left else NOW - 1
    rec = record(phase, revoke_after=revoke_after)
    step = machine.next_step(
        rec, now=NOW, mints=mints, revokes=revokes, has_new_pair=has_pair, skip_grace=skip_grace, reloads=reloads
    )
    assert step is expected_step(phase, mints, revokes, grace_left, has_pair, skip_grace, reloads)


def test_revoke_happens_exactly_at_the_end_of_grace():
    rec = record(Phase.VERIFIED, revoke_after=NOW)
    assert machine.next_step(rec, now=NOW - 0.001, mints=True, revokes=True) is Step.WAIT_GRACE
    assert machine.next_step(rec, now=NOW, mints=True, revokes=True) is Step.REVOKE_OLD


def test_a_key_without_id_is_revoked_by_a_person_even_when_the_issuer_revokes():
    rec = record(Phase.VERIFIED, revoke_after=NOW - 1, old_key_id=None)
    assert machine.next_step(rec, now=NOW, mints=True, revokes=True) is Step.AWAIT_OPERATOR_REVOKE


def test_grace_does_not_apply_once_revoking_started():
    rec = record(Phase.REVOKING, revoke_after=NOW + 3600)
    assert machine.next_step(rec, now=NOW, mints=True, revokes=True) is Step.REVOKE_OLD


def test_old_key_is_never_revoked_from_a_phase_before_verified():
    """I2 at the level of decisions: no phase before VERIFIED ever leads to revoking the old key."""
    early = (
        Phase.STARTED,
        Phase.PENDING_STORED,
        Phase.STAGED,
        Phase.ACCEPTED,
        Phase.DEPLOYED,
        Phase.RELOADED,
        Phase.ROLLING_BACK,
    )
    for phase in early:
        for mints, revokes, pair, skip, reloads in itertools.product(BOOLS, BOOLS, BOOLS, BOOLS, BOOLS):
            step = machine.next_step(
                record(phase),
                now=NOW,
                mints=mints,
                revokes=revokes,
                has_new_pair=pair,
                skip_grace=skip,
                reloads=reloads,
            )
            assert step not in (Step.REVOKE_OLD, Step.AWAIT_OPERATOR_REVOKE, Step.CLEAR)


def test_the_named_steps_are_the_forward_path_in_order():
    """What `rotator step` and the Lambda may advance one at a time: AWS's four, then the rest (reload included,
    for a credential with reload actions)."""
    rec = record(Phase.STARTED, revoke_after=NOW - 1)
    path = (
        Phase.STARTED,
        Phase.PENDING_STORED,
        Phase.STAGED,
        Phase.ACCEPTED,
        Phase.DEPLOYED,
        Phase.RELOADED,
        Phase.VERIFIED,
        Phase.OLD_REVOKED,
    )
    seen = [machine.next_step(replace(rec, phase=p), now=NOW, mints=True, revokes=True, reloads=True) for p in path]
    assert tuple(seen) == machine.NAMED_STEPS
    without = [machine.next_step(replace(rec, phase=p), now=NOW, mints=True, revokes=True) for p in path]
    assert tuple(without) == (*machine.NAMED_STEPS[:4], Step.CONFIRM, Step.CONFIRM, *machine.NAMED_STEPS[-2:])
    assert machine.STEP_NAMES["reload"] is Step.RELOAD


@pytest.mark.parametrize("phase", list(Phase))
def test_rollback_is_possible_exactly_until_the_old_key_is_revoked(phase):
    allowed = phase in {
        Phase.STARTED,
        Phase.PENDING_STORED,
        Phase.STAGED,
        Phase.ACCEPTED,
        Phase.DEPLOYED,
        Phase.RELOADED,
        Phase.VERIFIED,
        Phase.AWAITING_CONSUMERS,  # issue 19: the old key is alive while consumers are awaited
        Phase.ROLLING_BACK,
    }
    assert machine.can_roll_back(record(phase)) is allowed


class TestReloads:
    """The reload step: after promote, before confirm (which starts the grace window); retried by resume; undone by a
    rollback that reloads again when applications may hold the new key."""

    def test_a_failed_reload_is_retried_from_deployed_and_never_skipped(self):
        """A failed reload leaves the record at DEPLOYED: resume (any grace or emergency setting) reloads again; it
        never goes on to confirm, and so never to a revoke, while reload actions are configured."""
        for skip, mints, revokes in itertools.product(BOOLS, BOOLS, BOOLS):
            rec = replace(record(Phase.DEPLOYED), waiting_on="reload 1 of 1 failed", emergency=skip)
            step = machine.next_step(rec, now=NOW, mints=mints, revokes=revokes, skip_grace=skip, reloads=True)
            assert step is Step.RELOAD

    def test_an_emergency_reloads_before_the_revoke(self):
        """An emergency (no grace) walks DEPLOYED -> reload -> confirm -> revoke: the reload is never skipped."""
        rec = replace(record(Phase.DEPLOYED), emergency=True)
        steps = []
        for phase in (Phase.DEPLOYED, Phase.RELOADED, Phase.VERIFIED):
            rec = replace(rec, phase=phase, revoke_after=NOW)
            steps.append(machine.next_step(rec, now=NOW, mints=True, revokes=True, skip_grace=True, reloads=True))
        assert steps == [Step.RELOAD, Step.CONFIRM, Step.REVOKE_OLD]

    def test_the_grace_window_is_not_started_by_the_reload(self):
        """RELOADED has no revoke_after yet: confirm sets it, so grace counts from after the reloads."""
        rec = record(Phase.RELOADED, revoke_after=None)
        assert machine.next_step(rec, now=NOW, mints=True, revokes=True, reloads=True) is Step.CONFIRM

    @pytest.mark.parametrize("phase", list(Phase))
    def test_a_rollback_reloads_again_only_where_applications_may_hold_the_new_key(self, phase):
        rec = replace(record(Phase.ROLLING_BACK), rollback_from=phase.value)
        may_hold = phase in (Phase.ACCEPTED, Phase.DEPLOYED, Phase.RELOADED, Phase.VERIFIED, Phase.AWAITING_CONSUMERS)
        assert machine.reload_on_rollback(rec) is may_hold

    def test_a_rollback_record_of_an_older_version_does_not_reload(self):
        assert machine.reload_on_rollback(record(Phase.ROLLING_BACK)) is False

    def test_a_rolling_back_record_is_rolled_back_whatever_reloads_say(self):
        for reloads in BOOLS:
            rec = replace(record(Phase.ROLLING_BACK), rollback_from="reloaded")
            assert machine.next_step(rec, now=NOW, mints=True, revokes=True, reloads=reloads) is Step.ROLLBACK


class TestJudgeNewKey:
    def test_works_passes(self):
        assert machine.judge_new_key("works", None, "ok", elapsed=0, timeout=5).verdict is Verdict.PASSED

    def test_wrong_key_inside_budget_is_propagation_and_retried(self):
        j = machine.judge_new_key("rejected", "BLUM-401-003", "wrong key", elapsed=1, timeout=5)
        assert j.verdict is Verdict.RETRY
        assert "not propagated yet" in j.reason

    @pytest.mark.parametrize("code", ["BLUM-401-004", "BLUM-401-005"])
    def test_inactive_or_expired_fails_at_once(self, code):
        j = machine.judge_new_key("rejected", code, "dead", elapsed=0, timeout=5)
        assert j.verdict is Verdict.FAILED
        assert code in j.reason

    def test_inconclusive_is_retried_then_fails_when_budget_is_spent(self):
        assert machine.judge_new_key("inconclusive", None, "503", elapsed=4.9, timeout=5).verdict is Verdict.RETRY
        j = machine.judge_new_key("inconclusive", None, "503", elapsed=5.0, timeout=5)
        assert j.verdict is Verdict.FAILED
        assert "verify_timeout 5s" in j.reason

    def test_rejection_past_budget_fails(self):
        j = machine.judge_new_key("rejected", "BLUM-401-003", "wrong", elapsed=6, timeout=5)
        assert j.verdict is Verdict.FAILED


class TestJudgeOldKey:
    def test_rejected_passes(self):
        assert machine.judge_old_key("rejected", "401", elapsed=0, timeout=5).verdict is Verdict.PASSED

    @pytest.mark.parametrize("outcome", ["works", "inconclusive"])
    def test_still_answering_is_retried_then_fails(self, outcome):
        assert machine.judge_old_key(outcome, "200", elapsed=1, timeout=5).verdict is Verdict.RETRY
        assert machine.judge_old_key(outcome, "200", elapsed=5, timeout=5).verdict is Verdict.FAILED


def test_poll_delay_grows_and_is_capped():
    delays = [machine.poll_delay(n) for n in range(20)]
    assert delays[0] == pytest.approx(machine.FIRST_POLL_DELAY)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert max(delays) == machine.MAX_POLL_DELAY


def stored(key: str, secret: str, key_id: str | None = None) -> StoredKey:
    return StoredKey(api_key=key, api_secret=Secret(secret), key_id=key_id)


class TestReadback:
    def test_all_match(self):
        new = stored("pk1", "secret-one-xyz", "apk_1")
        assert machine.readback_mismatches(new, {"a": new, "b": stored("pk1", "secret-one-xyz")}) == []

    def test_missing_other_secret_or_other_id_mismatch(self):
        new = stored("pk1", "secret-one-xyz", "apk_1")
        observed = {
            "missing": None,
            "old": stored("pk0", "secret-zero-xyz", "apk_0"),
            "secret": stored("pk1", "secret-two-xyz", "apk_1"),
            "id": stored("pk1", "secret-one-xyz", "apk_9"),
            "ok": stored("pk1", "secret-one-xyz", "apk_1"),
        }
        assert machine.readback_mismatches(new, observed) == ["missing", "old", "secret", "id"]


class TestEnvironmentGuard:
    @pytest.mark.parametrize(("expected", "found"), [(e, f) for e in Environment for f in Environment])
    def test_every_pairing(self, expected, found):
        problem = machine.environment_violation(expected, found, "the key")
        if expected is found:
            assert problem is None
        else:
            assert problem is not None
            assert f"{found.value} key where a {expected.value} key belongs" in problem

    def test_unknown_environment_is_not_by_itself_a_violation(self):
        assert machine.environment_violation(Environment.PRODUCTION, None, "x") is None


def info(key_id: str, name: str, status: str = "active") -> ApiKeyInfo:
    return ApiKeyInfo(id=key_id, status=status, environment=Environment.SANDBOX, name=name, public_key="p", created=1)


class TestNamesAndOrphans:
    def test_key_name_round_trips_token_and_owner(self):
        token = "a" * 32
        name = machine.key_name("trading", token)
        assert len(name) <= machine.MAX_KEY_NAME
        key = info("apk_1", name)
        assert machine.token_of(key) == token
        assert machine.owned_by(key, "trading")
        assert not machine.owned_by(key, "trad")
        assert not machine.owned_by(key, "trading2")

    @pytest.mark.parametrize(
        "token",
        ["b" * 32, "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * machine.MAX_TOKEN_LENGTH],
        ids=["uuid-hex", "aws-version-id", "longest"],
    )
    def test_long_credential_names_and_any_token_fit_and_match(self, token):
        cred = "c" * 200
        name = machine.key_name(cred, token)
        assert len(name) <= machine.MAX_KEY_NAME
        key = info("apk_1", name)
        assert machine.owned_by(key, cred)
        assert machine.token_of(key) == token

    def test_long_names_sharing_a_start_do_not_share_keys(self):
        one, two = "c" * 100 + "-east", "c" * 100 + "-west"
        assert not machine.owned_by(info("apk_1", machine.key_name(one, "t" * 36)), two)

    @pytest.mark.parametrize("token", ["", "a" * 65, "has:colon", "has space"])
    def test_tokens_that_cannot_key_a_rotation_are_refused(self, token):
        assert machine.token_problem(token) is not None
        with pytest.raises(ValueError, match="rotation token"):
            machine.key_name("trading", token)

    def test_foreign_keys_have_no_token(self):
        assert machine.token_of(info("apk_1", "made by hand")) is None

    def test_orphans_are_active_and_unknown(self):
        keys = [info("apk_1", "x"), info("apk_2", "y"), info("apk_3", "z", status="revoked")]
        assert [k.id for k in machine.orphans(keys, {"apk_1", None})] == ["apk_2"]


class TestStartBlockers:
    def test_clean_start(self):
        assert machine.start_blockers(record(Phase.COMPLETED), [], "apk_1") == []
        assert machine.start_blockers(None, [info("apk_1", "rotator:trading:x")], "apk_1") == []

    @pytest.mark.parametrize("phase", [p for p in Phase if not p.terminal])
    def test_unfinished_rotation_blocks(self, phase):
        reasons = machine.start_blockers(record(phase), [], "apk_1")
        assert len(reasons) == 1
        assert "rotator resume trading" in reasons[0]

    def test_extra_own_key_blocks_because_it_would_make_three(self):
        reasons = machine.start_blockers(None, [info("apk_1", "a"), info("apk_2", "b")], "apk_1")
        assert len(reasons) == 1
        assert "apk_2" in reasons[0]
        assert "sweep --revoke" in reasons[0]

    def test_a_held_extra_key_is_advised_to_sweep_revoke_only_once_no_store_holds_it(self):
        held = {"apk_2": "apk_2 is still held by store 'reports' (CURRENT of credential 'reports')"}
        reasons = machine.start_blockers(None, [info("apk_1", "a"), info("apk_2", "b")], "apk_1", held)
        assert len(reasons) == 1
        assert "store 'reports'" in reasons[0]
        before = reasons[0].partition("sweep --revoke")[0]
        assert "remove it from that store" in before, reasons[0]

    def test_held_and_unheld_extra_keys_are_told_apart(self):
        keys = [info("apk_1", "a"), info("apk_2", "b"), info("apk_3", "c")]
        reasons = machine.start_blockers(None, keys, "apk_1", {"apk_3": "apk_3 is still held by store 'x'"})
        assert len(reasons) == 2
        orphan = next(r for r in reasons if "sweep --revoke" in r)
        assert "apk_2" in orphan
        assert "apk_3" not in orphan


class TestStartRefusal:
    """A normal rotation starts only from a key Bluum is seen to accept (I1)."""

    def test_a_working_key_may_be_rotated(self):
        assert machine.start_refusal("works", None, "200", key="apk_1", credential="trading") is None

    def test_a_rejected_key_needs_an_emergency(self):
        refusal = machine.start_refusal("rejected", "BLUM-401-005", "key expired", key="apk_1", credential="trading")
        assert refusal is not None
        assert "BLUM-401-005" in refusal
        assert "--emergency" in refusal

    def test_a_deactivated_key_is_called_deactivated_and_can_be_reactivated(self):
        refusal = machine.start_refusal("rejected", "BLUM-401-004", "key inactive", key="apk_1", credential="t")
        assert refusal is not None
        assert "deactivated" in refusal
        assert "not revoked" in refusal
        assert "reactivate" in refusal

    def test_an_unchecked_key_is_not_rotated_and_the_fix_is_named(self):
        refusal = machine.start_refusal("inconclusive", None, "expected 200, got 404", key="apk_1", credential="t")
        assert refusal is not None
        assert "404" in refusal
        assert "check_path" in refusal
        assert "rotator verify t" in refusal


class TestDue:
    def test_unknown_age_is_due(self):
        assert machine.is_due(None, timedelta(days=90), NOW)
        assert machine.next_due(None, timedelta(days=90)) is None

    def test_due_after_rotate_every(self):
        since = NOW - 90 * 86400
        assert machine.is_due(since, timedelta(days=90), NOW)
        assert not machine.is_due(since + 1, timedelta(days=90), NOW)


def test_a_rolled_back_scheduled_rotation_waits_before_the_scheduler_tries_again() -> None:
    failed = replace(record(Phase.ROLLED_BACK), updated_at=1_000.0)
    every = timedelta(days=90)
    assert machine.retry_after_rollback(failed, every) == 1_000.0 + 6 * 3600  # capped at six hours
    assert machine.retry_after_rollback(failed, timedelta(days=1)) == 1_000.0 + 8640  # a tenth of a short period
    assert machine.retry_after_rollback(replace(failed, phase=Phase.COMPLETED), every) is None
    assert machine.retry_after_rollback(None, every) is None
