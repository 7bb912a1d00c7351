"""The rotation state machine's decisions: pure functions of the record and of what was observed.

Nothing here does I/O, reads a clock or sleeps: the driver and the steps (rotator/rotation/) observe, call these
to decide, and act. That split is what lets the unit tests walk every phase and every observation.

    STARTED ─create─▶ PENDING_STORED ─stage─▶ STAGED ─accept─▶ ACCEPTED ─promote─▶ DEPLOYED ─reload─▶ RELOADED
       │                    │                 │                 │                    │ │  (a failed reload   │
       │                    │                 │                 │                    │ │  stays at DEPLOYED: │ confirm
       │                    │                 │                 │                    │ │  resume retries it) ▼
       │                    │                 │                 │                    │ └─────confirm─────▶ VERIFIED
       │                    │                 │                 │                    │   (no reload actions) │ grace
       │                    └─────────────────┴── a step fails ─┴────────────────────┤                     ▼ passed
       └───────────(manual pair lost)─────────────────────────────────────▶ ROLLING_BACK              REVOKING
                                                                                 │                (no way back)
                                                                                 ▼                     │ revoke,
                                                                           ROLLED_BACK                 ▼ prove 401
                                                          (old key CURRENT again; the reloads     OLD_REVOKED
                                                           run again when applications may             │ clear
                                                           have loaded the new key; then               ▼
                                                           the new key is revoked)                 COMPLETED

create, stage, accept and promote are AWS Secrets Manager's createSecret, setSecret, testSecret and finishSecret.
reload runs only for a credential whose targets have reload actions (rotator/config/reloads.py): after the new key is
CURRENT everywhere, so applications load it, and before confirm starts the grace window, so the old key's remaining
life is counted from when applications stopped using it. Without reload actions DEPLOYED goes straight to confirm,
with no record write for a step that does nothing.

attest runs only for a credential whose targets have consumers (rotator/config/consumers.py), in VERIFIED: until every
consumer reports the new key, the old key is not revoked. Still waiting when the grace window ends, the rotation moves
to AWAITING_CONSUMERS (a way back to ROLLING_BACK remains) until they do, or until an operator revokes anyway
(`revoked_over`). An emergency never waits for consumers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from rotator.core.durations import format_duration
from rotator.core.model import ApiKeyInfo, Environment, StoredKey
from rotator.rules.record import ENROLLMENT, Phase, RotationRecord
from rotator.rules.schedule import ROLLBACK_HOLD_OFF as ROLLBACK_HOLD_OFF  # the schedule's decisions, re-exported
from rotator.rules.schedule import is_due as is_due
from rotator.rules.schedule import next_due as next_due
from rotator.rules.schedule import retry_after_rollback as retry_after_rollback

KEY_NAME_PREFIX = "rotator"
MAX_KEY_NAME = 120
MAX_ACTIVE_KEYS = 2

# Bluum keeps an Idempotency-Key 24 h; past this age a create under the same token may make a new key.
IDEMPOTENCY_TRUST_SECONDS = 23 * 3600

# Verification polls quickly at first (propagation is usually sub-second) and backs off to this ceiling.
FIRST_POLL_DELAY = 0.2
POLL_BACKOFF = 1.5
MAX_POLL_DELAY = 2.0

# 401 codes that mean "this key is not going to start working": no point waiting for propagation.
FINAL_REJECTION_CODES = frozenset({"BLUM-401-004", "BLUM-401-005"})


class Step(StrEnum):
    """What the driver must do next for a rotation record."""

    CREATE = "create"  # the issuer mints the key (again, idempotently) and it is stored as PENDING in the primary
    STORE_PENDING = "store_pending"  # a person's pair is in hand: store it as PENDING in the primary
    STAGE = "stage"  # PENDING in every other target
    ACCEPT = "accept"  # wait until Bluum accepts the new key
    PROMOTE = "promote"  # CURRENT everywhere, the old key PREVIOUS; read back
    RELOAD = "reload"  # the targets' reload actions run, so applications load the new key (only when configured)
    CONFIRM = "confirm"  # read back again and ask Bluum once more; the grace window starts
    ATTEST = "attest"  # ask the consumers which key they use; the old key waits until all report the new one
    WAIT_GRACE = "wait_grace"  # nothing to do until revoke_after
    REVOKE_OLD = "revoke_old"  # the issuer revokes at Bluum, then the old pair is proven to get 401
    AWAIT_OPERATOR_REVOKE = "await_operator_revoke"  # a person revokes in the dashboard
    CLEAR = "clear"
    ROLLBACK = "rollback"
    DONE = "done"


# The steps a caller may name to advance one at a time (the Lambda, `rotator step`), in order.
NAMED_STEPS: tuple[Step, ...] = (
    Step.CREATE,
    Step.STAGE,
    Step.ACCEPT,
    Step.PROMOTE,
    Step.RELOAD,
    Step.CONFIRM,
    Step.REVOKE_OLD,
    Step.CLEAR,
)


STEP_NAMES: dict[str, Step] = {
    **{step.value: step for step in NAMED_STEPS},
    "revoke": Step.REVOKE_OLD,
    # AWS Secrets Manager's rotation steps, for a Lambda or anyone driving a rotation the same way.
    "createSecret": Step.CREATE,
    "setSecret": Step.STAGE,
    "testSecret": Step.ACCEPT,
    "finishSecret": Step.PROMOTE,
}
"""The names `rotator step` (and the Lambda) accept for the named steps."""


def next_step(
    record: RotationRecord,
    *,
    now: float,
    mints: bool,
    revokes: bool,
    has_new_pair: bool = False,
    skip_grace: bool = False,
    reloads: bool = False,
    consumers: bool = False,
) -> Step:
    """The one next step for `record`.

    `mints`/`revokes`: the credential's issuer creates/revokes keys through Bluum's API (otherwise a person hands
    the pair over / revokes it in the dashboard). `has_new_pair`: a person's pair is in hand (not after a crash).
    `reloads`: a target of the credential has reload actions. `consumers`: a target has consumers
    (rotator/config/consumers.py): then the old key waits until every one reports the new key (`attest_first`).
    """
    phase = record.phase
    if phase.terminal:
        return Step.DONE
    if phase is Phase.STARTED:
        if mints:
            return Step.CREATE
        # The operator's secret lived only in the crashed process: nothing was deployed, so undo.
        return Step.STORE_PENDING if has_new_pair else Step.ROLLBACK
    forward = {
        Phase.PENDING_STORED: Step.STAGE,
        Phase.STAGED: Step.ACCEPT,
        Phase.ACCEPTED: Step.PROMOTE,
        Phase.DEPLOYED: Step.RELOAD if reloads else Step.CONFIRM,
        Phase.RELOADED: Step.CONFIRM,
        Phase.OLD_REVOKED: Step.CLEAR,
    }
    if phase in forward:
        return forward[phase]
    if phase in (Phase.VERIFIED, Phase.AWAITING_CONSUMERS, Phase.REVOKING):
        if consumers and attest_first(record):
            return Step.ATTEST
        in_grace = record.revoke_after is not None and now < record.revoke_after
        if phase is Phase.VERIFIED and in_grace and not skip_grace:
            return Step.WAIT_GRACE
        # Only a key Bluum's API knows by id can be revoked through it; otherwise a person does it.
        return Step.REVOKE_OLD if revokes and record.old_key_id else Step.AWAIT_OPERATOR_REVOKE
    return Step.ROLLBACK  # ROLLING_BACK


def attest_first(record: RotationRecord) -> bool:
    """Whether the consumers must be asked before the old key may go: not once they all reported the new key, not
    after an operator chose to revoke anyway, not in an emergency (a leaked key does not wait: the revoke names who
    was not on the new key), not once revoking started, and not in an enrollment (there is no old key)."""
    return (
        record.phase in (Phase.VERIFIED, Phase.AWAITING_CONSUMERS)
        and record.consumers_moved_at is None
        and record.revoked_over is None
        and not record.emergency
        and record.old_key_label != ENROLLMENT
    )


def can_roll_back(record: RotationRecord) -> bool:
    """A rotation can be undone until revoking the old key starts. REVOKING is written before the revoke call,
    so a crash in the middle of it never leaves a rollback that restores a dead key."""
    return record.phase in (
        Phase.STARTED,
        Phase.PENDING_STORED,
        Phase.STAGED,
        Phase.ACCEPTED,
        Phase.DEPLOYED,
        Phase.RELOADED,
        Phase.VERIFIED,
        Phase.AWAITING_CONSUMERS,
        Phase.ROLLING_BACK,
    )


RELOAD_BACK_FROM = frozenset({Phase.ACCEPTED, Phase.DEPLOYED, Phase.RELOADED, Phase.VERIFIED, Phase.AWAITING_CONSUMERS})
"""Phases from which a rollback may find applications holding the new key: promote may have put it in a target (in
ACCEPTED, a promote that failed half-way), or the reloads ran (in full, or some of them before one failed)."""


def reload_on_rollback(record: RotationRecord) -> bool:
    """Whether a rollback runs the reload actions again, after the old key is CURRENT again and before the new key is
    revoked, so no application is left holding a revoked key. A needless reload costs a reload; a missing one costs
    an outage, so any phase where the new key may have been read counts."""
    return record.rollback_from is not None and record.rollback_from in RELOAD_BACK_FROM


class Verdict(StrEnum):
    PASSED = "passed"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str


def judge_new_key(outcome: str, code: str | None, reason: str, *, elapsed: float, timeout: float) -> Judgement:
    """Verification: does the new key work, may it still start working, or has it failed?

    A 401 BLUM-401-003 right after creation is what propagation delay looks like, so it is retried until the
    budget runs out; "inactive" and "expired" will not heal by waiting, so they fail at once.
    """
    if outcome == "works":
        return Judgement(Verdict.PASSED, "Bluum accepts the new key")
    if outcome == "rejected" and code in FINAL_REJECTION_CODES:
        return Judgement(Verdict.FAILED, f"Bluum rejects the new key: {reason} ({code})")
    if elapsed < timeout:
        what = "not propagated yet" if outcome == "rejected" else "no clear answer yet"
        return Judgement(Verdict.RETRY, f"{what}: {reason}")
    return Judgement(
        Verdict.FAILED,
        f"the new key was still not accepted after {format_duration(elapsed, places=2)} "
        f"(verify_timeout {format_duration(timeout)}): {reason}",
    )


def judge_old_key(outcome: str, reason: str, *, elapsed: float, timeout: float) -> Judgement:
    """After revoking: the old pair must be rejected. It may keep working briefly while revocation propagates."""
    if outcome == "rejected":
        return Judgement(Verdict.PASSED, "the old key is rejected by Bluum")
    if elapsed < timeout:
        return Judgement(Verdict.RETRY, f"old key not rejected yet: {reason}")
    return Judgement(
        Verdict.FAILED,
        f"the old key still is not rejected after {format_duration(elapsed, places=2)} ({reason})",
    )


def poll_delay(attempt: int) -> float:
    """Seconds to wait before verification poll number `attempt` (0-based)."""
    return float(min(MAX_POLL_DELAY, FIRST_POLL_DELAY * POLL_BACKOFF**attempt))


def readback_mismatches(expected: StoredKey, observed: Mapping[str, StoredKey | None]) -> list[str]:
    """Targets whose CURRENT is not `expected` (by key and secret, and by key id when both know it)."""
    bad = []
    for target, found in observed.items():
        ids_differ = bool(expected.key_id and found and found.key_id and found.key_id != expected.key_id)
        if found is None or not found.same_key(expected) or ids_differ:
            bad.append(target)
    return bad


def environment_violation(expected: Environment, found: Environment | None, what: str) -> str | None:
    """I7: the reason to refuse `what`, or None. An unknown environment is not a violation by itself."""
    if found is None or found is expected:
        return None
    return (
        f"{what} is a {found.value} key but the credential is {expected.value}: refusing to put a "
        f"{found.value} key where a {expected.value} key belongs"
    )


MAX_TOKEN_LENGTH = 64  # Secrets Manager's ClientRequestToken is 32-64 characters (its version ids: 36, a uuid)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_HASHED_SUFFIX = 9  # "~" and 8 hex digits of the credential name's sha256


def token_problem(token: str) -> str | None:
    """Why `token` cannot key a rotation (it goes into key names and Idempotency-Key headers), or None."""
    if not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        return f"a rotation token must be 1 to {MAX_TOKEN_LENGTH} characters long, not {len(token)}"
    if not set(token) <= _TOKEN_CHARS:
        return "a rotation token may hold only letters, digits, '-' and '_'"
    return None


def _name_stem(credential: str) -> str:
    """`rotator:<credential>:`, with room left for the longest token within Bluum's 120 characters. A credential
    name too long for that keeps its start plus a hash of the whole name, so two long names never share a stem."""
    room = MAX_KEY_NAME - len(KEY_NAME_PREFIX) - MAX_TOKEN_LENGTH - 2
    if len(credential) > room:
        digest = hashlib.sha256(credential.encode()).hexdigest()[:8]
        credential = f"{credential[: room - _HASHED_SUFFIX]}~{digest}"
    return f"{KEY_NAME_PREFIX}:{credential}:"


def key_name(credential: str, token: str) -> str:
    """The name a created key carries: it ties the key to its credential and rotation, for sweep."""
    problem = token_problem(token)
    if problem:
        raise ValueError(problem)
    return _name_stem(credential) + token


def owned_by(info: ApiKeyInfo, credential: str) -> bool:
    """True for keys this tool created for `credential` (their name says so)."""
    return info.name.startswith(_name_stem(credential))


def token_of(info: ApiKeyInfo) -> str | None:
    """The rotation token in a key's name, when we created it."""
    if not info.name.startswith(f"{KEY_NAME_PREFIX}:"):
        return None
    return info.name.rsplit(":", 1)[-1] or None


def orphans(active: Iterable[ApiKeyInfo], known_ids: Iterable[str | None]) -> list[ApiKeyInfo]:
    """Active keys at Bluum that no store and no rotation record knows."""
    known = {key_id for key_id in known_ids if key_id}
    return [info for info in active if info.active and info.id not in known]


def start_blockers(
    record: RotationRecord | None,
    own_active: Iterable[ApiKeyInfo],
    current_key_id: str | None,
    held: Mapping[str, str] | None = None,
) -> list[str]:
    """Reasons a new rotation must not start. An unfinished rotation must be resumed first, and a key of
    ours beyond the current one would make three active keys (I4).

    `held` maps a key id to why no store may lose it (identity.revoke_refusal): such a key is never advised
    to `sweep --revoke`, which would take it from an application; a person has to look at it.
    """
    held = held or {}
    reasons = []
    if record is not None and not record.phase.terminal:
        reasons.append(
            f"rotation {record.token[:8]} of {record.credential!r} is unfinished (phase {record.phase.value}); "
            f"finish it with `rotator resume {record.credential}` "
            f"or undo it with `rotator rollback {record.credential}`"
        )
    extra = [info.id for info in own_active if info.active and info.id != current_key_id]
    orphaned = [key_id for key_id in extra if key_id not in held]
    if orphaned:
        reasons.append(
            f"Bluum has active keys of this credential that no store holds ({', '.join(orphaned)}); "
            "run `rotator sweep` to see them and `rotator sweep --revoke` to revoke them"
        )
    for key_id in extra:
        if key_id in held:
            reasons.append(
                f"Bluum has another active key of this credential, and {held[key_id]}. Find out which applications "
                f"use it; once none does, remove it from that store, then `rotator sweep --revoke` revokes it"
            )
    return reasons


def transient_status(status: int | None) -> bool:
    """An inconclusive check that says nothing about the key, only about Bluum: no answer, 429 or 5xx."""
    return status is None or status == 429 or status >= 500


def start_refusal(outcome: str, code: str | None, reason: str, *, key: str, credential: str) -> str | None:
    """Why a normal (not emergency) rotation must not start from a current key with this check outcome.

    Only a key Bluum is seen to accept can overlap with its successor. A key Bluum rejects is replaced by an
    emergency rotation; a key that could not be checked is not rotated at all: its revoke could not be proven
    and a rotation would stall half-way.
    """
    if outcome == "works":
        return None
    if outcome == "rejected" and code == "BLUM-401-004":
        return (
            f"Bluum says the current key {key} is deactivated ({code}), not revoked: reactivate it in Bluum's "
            f"dashboard and rotate normally, or replace it at once with `rotator rotate {credential} --emergency "
            "--reason TEXT`"
        )
    if outcome == "rejected":
        return (
            f"Bluum rejects the current key {key}: {reason} ({code}). There is no working key to overlap with; "
            f"replace it at once with `rotator rotate {credential} --emergency --reason TEXT`"
        )
    return (
        f"could not prove that Bluum accepts the current key {key}: {reason}. A rotation starts only from a key "
        f"Bluum is seen to accept. Check `check_path` and `base_url` of credentials.{credential} in rotator.toml "
        f"and that Bluum answers (`rotator verify {credential}` repeats the check); if the key leaked, "
        f"`rotator rotate {credential} --emergency --reason TEXT` replaces it without calling it"
    )
