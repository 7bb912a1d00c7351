"""The tick as the scheduler (ROTATOR_SCHEDULER=tick), and a person's rotation by an invoke event.

Why the tick and not Secrets Manager's rotation rule: AWS starts a scheduled rotation with the same four calls a
person's `aws secretsmanager rotate-secret` makes, so the function cannot tell them apart, and neither a pause nor a
window could hold AWS's schedule back. With no rotation rule at all, only the tick starts scheduled rotations, and it
decides as `rotator run-due` and the daemon decide (`RotationService.run_due`): it finishes what is unfinished and
starts what is due, unless the secret is paused (its DynamoDB ledger item), outside its allow windows or inside a
deny window, or its paying key has made its `starts_per_window` starts. A rotation runs the rotator's own steps on
the secret (AWSPENDING under the rotation token, AWSCURRENT moved, the old key revoked once the grace has passed, by
a later tick), as a CLI rotation with an AWS primary runs them.

A person's rotation is `{"rotator": "rotate", "secret_id": ARN, "reason": TEXT, "emergency": true|false}` (an invoke
of the function: only principals allowed lambda:InvokeFunction can send it). It is never gated: an emergency revokes
the old key at once, and both say which window or pause they ignored. `{"rotator": "pause", "secret_id": ARN,
"reason": TEXT, "until": "6h"}` and `{"rotator": "unpause", ...}` write and end a pause in the secret's ledger item,
as `rotator pause` does. Secrets Manager's own steps are refused here: a
rotation someone turned on by hand would be started by AWS's schedule, ungated.

Only the standard library at import (the entry imports this module at the first tick or rotate event).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from rotator.aws_lambda.config import SECRETS_VARIABLE, LambdaConfigError, ManagedSecret, check_secret_json
from rotator.aws_lambda.function import client, credential_name, current_json, fleet_service, managed, service, sweep
from rotator.aws_lambda.records import (
    KEY_OVERDUE,
    ROTATION_FAILED,
    bluum_request_ids,
    bluum_trouble,
    emf,
    finish,
    log_step,
)
from rotator.aws_lambda.schedule import SCHEDULER_VARIABLE, TICK

if TYPE_CHECKING:
    from rotator.ops.app import App
    from rotator.rotation.service import RotationService

__all__ = ["PERSON_FIELDS", "person_acts", "refuse_secrets_manager_step", "scheduled_tick"]

log = logging.getLogger("rotator.lambda")

PERSON_FIELDS: Final = {
    "rotate": frozenset({"reason", "emergency"}),
    "pause": frozenset({"reason", "until"}),
    "unpause": frozenset(),
}
"""The events a person sends (`{"rotator": NAME, "secret_id": ARN, ...}`) and the fields each may give."""
ROTATION_MARGIN: Final = 30.0
"""Seconds a rotation needs beyond its wait for Bluum (mint, stores, revoke), as the module's timeout precondition."""
OVERDUE_SLACK: Final = 86400.0
"""A key is reported overdue a day after it fell due: room for a closed window, as Secrets Manager's mode allows its
schedule's window."""
_ROTATE_EXAMPLE: Final = '{"rotator": "rotate", "secret_id": "arn:aws:secretsmanager:...", "reason": "why"}'
_EXAMPLES: Final = {
    "rotate": _ROTATE_EXAMPLE,
    "pause": '{"rotator": "pause", "secret_id": "arn:aws:secretsmanager:...", "reason": "why", "until": "6h"}',
    "unpause": '{"rotator": "unpause", "secret_id": "arn:aws:secretsmanager:..."}',
}


def scheduled_tick(context: object = None) -> dict[str, Any]:
    """Each managed secret: finish, or start when due and nothing holds it back (`run_due`), then revoke orphans.

    A secret still holding the module's placeholder (no key yet) is skipped and says so; one whose JSON disagrees
    with the deployer's configuration fails alone. Secrets are grouped by environment, one service per group, so the
    cap per paying key counts every secret's starts. `context`: the Lambda's, whose remaining time stops the tick
    before a secret a rotation could not finish in (it is left for the next tick, and says so)."""
    enough = _time_left(context)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    groups: dict[str, dict[str, ManagedSecret]] = {}
    for arn, secret in managed().items():
        fields = {"secret_arn": arn, "step": "tick"}
        started = time.monotonic()
        try:
            value = current_json(arn)
            check_secret_json(secret, value)
        except Exception as exc:
            log.exception("tick failed for %s", arn, extra={"fields": fields})
            failures.append(f"{arn}: {type(exc).__name__}")
            continue
        if not value.get("api_key"):
            message = (
                f"{arn}: no key yet (it holds the placeholder); nothing started. Put the key pair applications use "
                'today into it (README, "First rotation")'
            )
            log_step(fields, message, started, outcome="no key yet")
            results.append({"outcome": "no key yet", "message": message, **fields})
            continue
        groups.setdefault(secret.environment, {})[credential_name(arn)] = secret
    revoked: list[str] = []
    for secrets in groups.values():
        revoked += _run_group(secrets, results, failures, enough)
    if failures:
        raise RuntimeError(f"the tick failed for {len(failures)} secret(s): {'; '.join(failures)}")
    return {"outcome": "ok", "scheduler": TICK, "secrets": results, "revoked_orphans": revoked}


def _run_group(
    secrets: Mapping[str, ManagedSecret],
    results: list[dict[str, Any]],
    failures: list[str],
    enough: Callable[[], bool],
) -> list[str]:
    """`run_due` for each secret of one group on one service, while there is time enough; the orphan keys revoked."""
    try:
        app = fleet_service(secrets)
    except Exception as exc:
        log.exception("tick failed for %s", ", ".join(s.arn for s in secrets.values()), extra={"fields": {}})
        failures.extend(f"{secret.arn}: {type(exc).__name__}" for secret in secrets.values())
        return []
    with app:
        for name, secret in secrets.items():
            if not enough():
                message = f"{secret.arn}: left for the next tick (too little of this invocation's time left to rotate)"
                log.warning("%s", message, extra={"fields": {"secret_arn": secret.arn, "step": "tick"}})
                results.append({"outcome": "next tick", "message": message, "secret_arn": secret.arn, "step": "tick"})
                continue
            results_or_failure = _run_one(app, name, secret)
            if isinstance(results_or_failure, str):
                failures.append(results_or_failure)
            else:
                results.append(results_or_failure)
        from rotator.core.errors import RotationInProgress

        try:
            return sweep(app.service)
        except RotationInProgress as exc:  # it holds every secret's lease: one in another runner's hands waits
            log.info("the sweep waits for the next tick: %s", exc, extra={"fields": {"step": "sweep"}})
            return []
        except Exception as exc:
            log.exception("the tick's sweep failed", extra={"fields": {"step": "sweep"}})
            failures.append(f"sweep: {type(exc).__name__}")
            return []


def _run_one(app: App, name: str, secret: ManagedSecret) -> dict[str, Any] | str:
    """One secret's `run_due`: its result, or what failed (logged). A secret whose lease another runner holds (a
    person's rotate event, a tick EventBridge delivered twice) is that runner's to finish: said, not a failure."""
    from rotator.core.errors import RotationInProgress

    fields: dict[str, Any] = {"secret_arn": secret.arn, "step": "tick"}
    started = time.monotonic()
    try:
        with bluum_trouble(app.service, fields):
            outcome = app.service.run_due(name)
        late = _overdue(app.service, name, fields)
        result = finish(outcome, fields, started)
    except RotationInProgress as exc:
        log_step(fields, str(exc), started, outcome="in progress")
        return {**fields, "outcome": "in progress", "message": str(exc), "phase": None, "overdue": False}
    except Exception as exc:
        log.exception("tick failed for %s", secret.arn, extra={"fields": fields})
        return f"{secret.arn}: {type(exc).__name__}"
    phase = outcome.record.phase.value if outcome.record is not None else None
    return {**result, "message": outcome.message, "phase": phase, "overdue": late}


def _time_left(context: object) -> Callable[[], bool]:
    """Whether the invocation has time left for one more secret: a whole rotation's Bluum wait (ROTATOR_VERIFY_TIMEOUT)
    and `ROTATION_MARGIN` seconds. Without a Lambda context (a test, a script): always."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return lambda: True
    from rotator.core.durations import parse_duration

    need = parse_duration(os.environ.get("ROTATOR_VERIFY_TIMEOUT", "60s")).total_seconds() + ROTATION_MARGIN
    return lambda: float(remaining()) / 1000 >= need


def _overdue(service: RotationService, name: str, fields: dict[str, Any]) -> bool:
    """A `key_overdue` record when the secret's current key is a day past the time it fell due (its rotation period
    or its expiry lead, from the ledger's record), saying when it is paused: a pause holds back the scheduler, never
    the alarm. A key of unknown age is not overdue (it is rotated as due)."""
    from rotator.ops.alerts import overdue
    from rotator.rules.pause import in_force
    from rotator.rules.windows import next_due

    cred = service.config.credential(name)
    record, paused = service.runtime.read_ledger(cred)
    due = next_due(record, cred.rotate_every, cred.windows.expiry_lead)
    now = service.now()
    if due is None or not overdue(due + OVERDUE_SLACK, now):
        return False
    held = in_force(paused, now)
    why = f"; it is {held.describe()}" if held is not None else ": check why the tick started no rotation"
    days = (now - due) / 86400
    log.warning(
        "the current key fell due %.1f days ago%s",
        days,
        why,
        extra={"fields": {**fields, "metric": KEY_OVERDUE, "overdue_days": round(days, 1), **emf(KEY_OVERDUE)}},
    )
    return True


def person_acts(event: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """A person's command on one managed secret, by an invoke event (only principals allowed lambda:InvokeFunction
    can send one): `rotate` (reason, emergency: never gated, and it says which window or pause it ignored), `pause`
    (reason, until: the tick starts no rotation of it) and `unpause`. The pause is written in the secret's ledger
    item, as `rotator pause` writes it."""
    command = str(event.get("rotator"))
    if mode != TICK:
        raise LambdaConfigError(
            f'the {{"rotator": "{command}"}} event is for ROTATOR_SCHEDULER=tick; here Secrets Manager\'s rotation '
            "rule rotates (and no pause can hold it back), so start a rotation with `aws secretsmanager rotate-secret "
            "--secret-id ARN`. Nothing was done"
        )
    allowed = PERSON_FIELDS[command]
    unknown = sorted(set(event) - allowed - {"rotator", "secret_id"})
    secret_id = event.get("secret_id")
    texts = [event.get(name) for name in ("reason", "until")]
    emergency = event.get("emergency", False)
    if unknown or not isinstance(secret_id, str) or not secret_id:
        raise LambdaConfigError(
            f"a {command} event names the managed secret (secret_id)"
            f"{' and may give ' + ', '.join(sorted(allowed)) if allowed else ''}"
            f"{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}: {_EXAMPLES[command]}. Nothing was done"
        )
    if not isinstance(emergency, bool) or any(text is not None and not isinstance(text, str) for text in texts):
        raise LambdaConfigError(f"emergency must be true or false, reason and until texts: {_EXAMPLES[command]}")
    arn = str(client("secretsmanager").describe_secret(SecretId=secret_id).get("ARN", secret_id))
    secrets = managed()
    if arn not in secrets:
        raise LambdaConfigError(
            f"{arn} is not a secret this function manages ({SECRETS_VARIABLE} does not list it); nothing was done"
        )
    from rotator.core.errors import RotatorError

    started = time.monotonic()
    step = "emergency rotate" if emergency else command
    fields: dict[str, Any] = {"secret_arn": arn, "step": step}
    name = credential_name(arn)
    try:
        app = service(secrets[arn])
        with app, bluum_request_ids() as request_ids, bluum_trouble(app.service, fields):
            fields["bluum_request_ids"] = request_ids
            if command == "pause":
                outcome = app.service.pause(name, reason=texts[0], until=texts[1])
            elif command == "unpause":
                outcome = app.service.unpause(name)
            else:
                outcome = app.service.rotate(name, emergency=emergency, reason=texts[0])
    except RotatorError as exc:
        metric = ROTATION_FAILED if command == "rotate" else None
        log_step(fields, str(exc), started, outcome=f"failed (exit {exc.exit_code.value})", metric=metric)
        raise
    return {**finish(outcome, fields, started), "message": outcome.message}


def refuse_secrets_manager_step(secret_id: str, step: str) -> None:
    """Secrets Manager's steps with the tick as the scheduler: refused before anything is read or minted."""
    raise LambdaConfigError(
        f"{step} for {secret_id} refused: this function starts rotations itself ({SCHEDULER_VARIABLE}={TICK}), gated "
        "by pause and windows, and a rotation Secrets Manager starts (its schedule, or `rotate-secret`) would not be. "
        "Nothing was done. Turn Secrets Manager's rotation of the secret off (`aws secretsmanager "
        'cancel-rotate-secret --secret-id ...`; the Terraform module with scheduler = "tick" configures none), and '
        f"rotate it now with the function's rotate event: {_ROTATE_EXAMPLE}"
    )
