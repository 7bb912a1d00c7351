"""The AWS Lambda entry point: Secrets Manager's rotation protocol, and a scheduled tick, on the rotator's own steps.

Secrets Manager calls `handler` four times per rotation with `{"SecretId", "ClientRequestToken", "Step"}`:
createSecret (mint at Bluum, store AWSPENDING), setSecret (stage in any other target), testSecret (Bluum accepts the
pending pair, waiting out propagation within `ROTATOR_VERIFY_TIMEOUT`) and finishSecret (move AWSCURRENT). Each is
`RotationService.step` under the rotation token, so the Lambda runs the very steps the CLI runs, one call at a time,
under the same DynamoDB lease a CLI rotation takes: the two never both proceed. Before acting, each step guards as
AWS's template does: rotation enabled (RotationEnabled true), a secret this function manages, token known, already
current means done, not pending means error; and a testSecret under a token no createSecret ran for is Secrets
Manager testing the configuration (rotation turned on without rotating at once), which changes nothing and succeeds.
A step that fails for good has rolled back (the new key revoked at Bluum, AWSPENDING removed) before it raises, so
Secrets Manager reports the rotation failed and alarms fire.

The old key is not revoked in finishSecret: applications need the overlap. EventBridge calls `handler` with
`{"rotator": "tick"}`, and the tick, for every managed secret, finishes what is unfinished (confirm, then revoke the
old key once the grace window has passed and prove Bluum rejects it, then clear), or rolls back what cannot go on.
That is the default, ROTATOR_SCHEDULER=secrets_manager. With ROTATOR_SCHEDULER=tick there is no rotation rule: the
tick is the scheduler (it also starts what is due, gated by pause and windows), Secrets Manager's steps are refused,
and a person rotates with `{"rotator": "rotate", ...}` (`rotator.aws_lambda.scheduler`).

Configuration is by environment variables (a missing or bad one fails the first step with a message, never a
KeyError): ROTATOR_MANAGER_SECRET_ID (the secret holding the tenant key that mints and revokes), ROTATOR_SECRETS (each
managed secret's ARN -> its investor, environment and base URL: what the function manages, and the only source of
those three values), ROTATOR_ALLOWED_HOSTS (Bluum hosts beyond the documented ones), ROTATOR_GRACE,
ROTATOR_VERIFY_TIMEOUT, ROTATOR_LEDGER_TABLE. A managed secret's own JSON is never trusted for them: one that
disagrees is refused (`rotator.aws_lambda.config`).

Cold start stays light: this module imports only the standard library; the engine, httpx and boto3 are imported by
the first call that needs them. Logs are JSON lines, one record per step; never a secret value.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from rotator.aws_lambda.config import SECRETS_VARIABLE, LambdaConfigError, ManagedSecret
from rotator.aws_lambda.function import CONFIG_SOURCE, clients, credential_name, managed, service, sweep
from rotator.aws_lambda.function import client as _client
from rotator.aws_lambda.records import (
    BLUUM_RATE_LIMITED,
    BLUUM_SERVER_ERRORS,
    EMF_METRICS,
    KEY_OVERDUE,
    ROTATION_FAILED,
    bluum_request_ids,
    bluum_trouble,
    configure_logging,
    emf,
    finish,
    log_step,
)
from rotator.aws_lambda.schedule import TICK, scheduler

if TYPE_CHECKING:
    from rotator.ops.app import App
    from rotator.rotation.service import RotationService

__all__ = [
    "BLUUM_RATE_LIMITED",
    "BLUUM_SERVER_ERRORS",
    "CONFIG_SOURCE",
    "EMF_METRICS",
    "LambdaConfigError",
    "credential_name",
    "emf",
    "handler",
]

log = logging.getLogger("rotator.lambda")

STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
_clients = clients
"""The function instance's boto3 clients (`rotator.aws_lambda.function`); tests clear them between deployments."""


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Secrets Manager's rotation event, the scheduled tick, or (with ROTATOR_SCHEDULER=tick) a person's rotate."""
    configure_logging()
    mode = scheduler(os.environ)
    if event.get("rotator") == "tick" or event.get("source") == "aws.events":
        if mode == TICK:
            from rotator.aws_lambda.scheduler import scheduled_tick

            return scheduled_tick(context)
        return _tick()
    if event.get("rotator") in ("rotate", "pause", "unpause"):
        from rotator.aws_lambda.scheduler import person_acts

        return person_acts(event, mode)
    missing = [field for field in ("SecretId", "ClientRequestToken", "Step") if not event.get(field)]
    if missing:
        raise LambdaConfigError(
            f"the event lacks {', '.join(missing)}: this function serves Secrets Manager rotation events "
            '({"SecretId", "ClientRequestToken", "Step"}), the scheduled tick ({"rotator": "tick"}) and, with '
            'ROTATOR_SCHEDULER=tick, a person\'s rotation ({"rotator": "rotate", "secret_id": ARN, "reason": TEXT})'
        )
    step = str(event["Step"])
    if step not in STEPS:
        raise LambdaConfigError(f"unknown Step {step!r}: Secrets Manager sends one of {', '.join(STEPS)}")
    if mode == TICK:
        from rotator.aws_lambda.scheduler import refuse_secrets_manager_step

        refuse_secrets_manager_step(str(event["SecretId"]), step)
    return _rotation_step(str(event["SecretId"]), str(event["ClientRequestToken"]), step)


# --------------------------------------------------------------------------------------------------- a rotation step


def _rotation_step(secret_id: str, token: str, step: str) -> dict[str, Any]:
    started = time.monotonic()
    sm = _client("secretsmanager")
    described = sm.describe_secret(SecretId=secret_id)
    arn = str(described.get("ARN", secret_id))
    fields: dict[str, Any] = {"secret_arn": arn, "token": token, "step": step}
    secrets = managed()
    if arn not in secrets:
        raise LambdaConfigError(
            f"{arn} is not a secret this function manages ({SECRETS_VARIABLE} does not list it); nothing was done. "
            "Add it to the Terraform module's `secrets` map (or the function's ROTATOR_SECRETS), or point its "
            "rotation at the function that manages it"
        )
    if described.get("RotationEnabled") is not True:
        raise LambdaConfigError(
            f"rotation is not enabled for {arn} (RotationEnabled is {described.get('RotationEnabled')!r}); nothing "
            "was done: enable it (the Terraform module does)"
        )
    versions = described.get("VersionIdsToStages") or {}
    if token not in versions and step == "testSecret":
        # Secrets Manager tests a new rotation configuration (rotation set up without rotating at once) by calling
        # testSecret under a token it never staged: there is no key to test, and nothing is wrong.
        log_step(
            fields, "configuration test by Secrets Manager: no rotation under this token, nothing to test", started
        )
        return {"outcome": "configuration test", **fields}
    if token not in versions:
        raise LambdaConfigError(f"version {token} of {arn} has no stage for rotation: Secrets Manager did not start it")
    if "AWSCURRENT" in versions[token]:
        log_step(fields, "already current", started)
        return {"outcome": "already current", **fields}
    if "AWSPENDING" not in versions[token]:
        raise LambdaConfigError(f"version {token} of {arn} is not AWSPENDING: this rotation was replaced")
    from rotator.core.errors import RotatorError

    try:
        app = _service(secrets[arn])
        service = app.service
        with app, bluum_request_ids() as request_ids, bluum_trouble(service, fields):
            fields["bluum_request_ids"] = request_ids
            if step == "testSecret" and _configuration_test(service, arn, token):
                log_step(fields, "configuration test by Secrets Manager: the configuration is sound", started)
                return {"outcome": "configuration test", **fields}
            outcome = service.step(credential_name(arn), step, token=token)
    except RotatorError as exc:  # rolled back already when it could be; raised so Secrets Manager reports it
        log_step(fields, str(exc), started, outcome=f"failed (exit {exc.exit_code.value})", metric=ROTATION_FAILED)
        raise
    return finish(outcome, fields, started)


# --------------------------------------------------------------------------------------------------- the tick


def _tick() -> dict[str, Any]:
    """Finish each managed secret's unfinished rotation (revoke after grace, prove 401, clear) or roll it back.

    It starts none (`resume` only finishes), so a pause (`rotator pause`) has nothing to hold back here: a rotation
    under way is finished whatever the pause, as run-due finishes it (rotator/rules/pause.py)."""
    results, failures = [], []
    for arn, secret in managed().items():
        started = time.monotonic()
        fields = {"secret_arn": arn, "step": "tick"}
        try:
            overdue = _check_overdue(_client("secretsmanager").describe_secret(SecretId=arn), fields)
            app = _service(secret)
            with app, bluum_trouble(app.service, fields):
                outcome = app.service.resume(credential_name(arn), tick=True)
                swept = sweep(app.service)
            results.append({**finish(outcome, fields, started), "revoked_orphans": swept, "overdue": overdue})
        except Exception as exc:
            log.exception("tick failed for %s", arn, extra={"fields": fields})
            failures.append(f"{arn}: {type(exc).__name__}")
    if failures:
        raise RuntimeError(f"the tick failed for {len(failures)} secret(s): {'; '.join(failures)}")
    return {"outcome": "ok", "secrets": results}


def _service(secret: ManagedSecret) -> App:
    """One managed secret's rotation service (`rotator.aws_lambda.function.service`); a name of this module, so a
    test can wrap it."""
    return service(secret)


def _configuration_test(service: RotationService, arn: str, token: str) -> bool:
    """Whether this testSecret is Secrets Manager testing a new rotation configuration (RotateImmediately false): it
    puts a copy of AWSCURRENT into a new AWSPENDING version, calls testSecret alone, then removes that version.

    No createSecret ran under the token (the ledger has no rotation under it), so there is no new key to test, and
    nothing is changed or trusted: the pending value is not even read. What can be tested was tested in making the
    service: the secret is one this function manages, its JSON agrees with the configuration, its and the manager's
    base URLs are allowed hosts, both secrets read. A placeholder without a key (the module's default before the
    first key is put in) passes, so turning rotation on without rotating at once works."""
    record = service.runtime.read_record(service.config.credential(credential_name(arn)))
    return record is None or record.token != token


def _check_overdue(described: Mapping[str, Any], fields: dict[str, Any]) -> bool:
    """A `key_overdue` record when the secret's last rotation is older than its rotation period (a day's slack: Secrets
    Manager rotates within its schedule's window). The rule is the tick's (`rotator.ops.alerts.overdue`)."""
    from rotator.ops.alerts import overdue

    rules = described.get("RotationRules") or {}
    days = rules.get("AutomaticallyAfterDays")
    last = described.get("LastRotatedDate") or described.get("CreatedDate")
    if not described.get("RotationEnabled") or not isinstance(days, int) or last is None:
        return False
    since = last.timestamp() if hasattr(last, "timestamp") else float(last)
    now = time.time()
    if not overdue(since + (days + 1) * 86400, now):
        return False
    age = now - since
    log.warning(
        "the current key is %.0f days old, past its %d-day rotation period: check the rotation's errors",
        age / 86400,
        days,
        extra={"fields": {**fields, "metric": KEY_OVERDUE, "age_days": round(age / 86400, 1), **emf(KEY_OVERDUE)}},
    )
    return True
