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

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from rotator.aws_lambda.config import MANAGED, MANAGER, SECRETS_VARIABLE, LambdaConfigError, ManagedSecret

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.config.loader import Config
    from rotator.ops.app import App
    from rotator.rotation.driver import Outcome
    from rotator.rotation.service import RotationService

__all__ = ["LambdaConfigError", "handler"]

log = logging.getLogger("rotator.lambda")

STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
ROTATION_FAILED: Final = "rotation_failed"
KEY_OVERDUE: Final = "key_overdue"
"""Values of the `metric` field of log records (search the log group for them)."""
BLUUM_TROUBLE: Final = "bluum_trouble"
EMF_METRICS: Final = {ROTATION_FAILED: "RotationFailed", KEY_OVERDUE: "KeyOverdue"}
BLUUM_SERVER_ERRORS: Final = "BluumServerErrors"
BLUUM_RATE_LIMITED: Final = "BluumRateLimited"
"""The CloudWatch metric each `metric` value counts, in ROTATOR_METRIC_NAMESPACE; the Terraform module's alarms watch
these names."""
DEFAULT_METRIC_NAMESPACE: Final = "BluumRotator"
CONFIG_SOURCE: Final = "the function's configuration (ROTATOR_* variables)"
"""How configuration problems name what they were found in: there is no rotator.toml in a Lambda."""
_clients: dict[str, Any] = {}
"""boto3 clients, kept across invocations of one function instance (made once: ~50 ms each)."""


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Secrets Manager's rotation event, or the scheduled tick."""
    _configure_logging()
    if event.get("rotator") == "tick" or event.get("source") == "aws.events":
        return _tick()
    missing = [field for field in ("SecretId", "ClientRequestToken", "Step") if not event.get(field)]
    if missing:
        raise LambdaConfigError(
            f"the event lacks {', '.join(missing)}: this function serves Secrets Manager rotation events "
            '({"SecretId", "ClientRequestToken", "Step"}) and the scheduled tick ({"rotator": "tick"})'
        )
    step = str(event["Step"])
    if step not in STEPS:
        raise LambdaConfigError(f"unknown Step {step!r}: Secrets Manager sends one of {', '.join(STEPS)}")
    return _rotation_step(str(event["SecretId"]), str(event["ClientRequestToken"]), step)


# --------------------------------------------------------------------------------------------------- a rotation step


def _rotation_step(secret_id: str, token: str, step: str) -> dict[str, Any]:
    started = time.monotonic()
    sm = _client("secretsmanager")
    described = sm.describe_secret(SecretId=secret_id)
    arn = str(described.get("ARN", secret_id))
    fields: dict[str, Any] = {"secret_arn": arn, "token": token, "step": step}
    managed = _managed()
    if arn not in managed:
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
        _log_step(
            fields, "configuration test by Secrets Manager: no rotation under this token, nothing to test", started
        )
        return {"outcome": "configuration test", **fields}
    if token not in versions:
        raise LambdaConfigError(f"version {token} of {arn} has no stage for rotation: Secrets Manager did not start it")
    if "AWSCURRENT" in versions[token]:
        _log_step(fields, "already current", started)
        return {"outcome": "already current", **fields}
    if "AWSPENDING" not in versions[token]:
        raise LambdaConfigError(f"version {token} of {arn} is not AWSPENDING: this rotation was replaced")
    from rotator.core.errors import RotatorError

    try:
        app = _service(managed[arn])
        service = app.service
        with app, _bluum_request_ids() as request_ids, _bluum_trouble(service, fields):
            fields["bluum_request_ids"] = request_ids
            if step == "testSecret" and _configuration_test(service, arn, token):
                _log_step(fields, "configuration test by Secrets Manager: the configuration is sound", started)
                return {"outcome": "configuration test", **fields}
            outcome = service.step(credential_name(arn), step, token=token)
    except RotatorError as exc:  # rolled back already when it could be; raised so Secrets Manager reports it
        _log_step(fields, str(exc), started, outcome=f"failed (exit {exc.exit_code.value})", metric=ROTATION_FAILED)
        raise
    return _finish(outcome, fields, started)


def _finish(outcome: Outcome, fields: dict[str, Any], started: float) -> dict[str, Any]:
    from rotator.core.errors import ExitCode

    result = {"outcome": outcome.exit_code.name.lower(), **fields}
    failed = outcome.exit_code not in (ExitCode.OK, ExitCode.INCOMPLETE)
    metric = ROTATION_FAILED if failed else None
    _log_step(fields, outcome.message, started, outcome=outcome.exit_code.name.lower(), metric=metric)
    if failed:
        raise RuntimeError(f"{fields.get('step', 'tick')} of {fields['secret_arn']} failed: {outcome.message}")
    return result


# --------------------------------------------------------------------------------------------------- the tick


def _tick() -> dict[str, Any]:
    """Finish each managed secret's unfinished rotation (revoke after grace, prove 401, clear) or roll it back.

    It starts none (`resume` only finishes), so a pause (`rotator pause`) has nothing to hold back here: a rotation
    under way is finished whatever the pause, as run-due finishes it (rotator/rules/pause.py)."""
    results, failures = [], []
    for arn, secret in _managed().items():
        started = time.monotonic()
        fields = {"secret_arn": arn, "step": "tick"}
        try:
            overdue = _check_overdue(_client("secretsmanager").describe_secret(SecretId=arn), fields)
            app = _service(secret)
            with app, _bluum_trouble(app.service, fields):
                outcome = app.service.resume(credential_name(arn), tick=True)
                swept = _sweep(app.service)
            results.append({**_finish(outcome, fields, started), "revoked_orphans": swept, "overdue": overdue})
        except Exception as exc:
            log.exception("tick failed for %s", arn, extra={"fields": fields})
            failures.append(f"{arn}: {type(exc).__name__}")
    if failures:
        raise RuntimeError(f"the tick failed for {len(failures)} secret(s): {'; '.join(failures)}")
    return {"outcome": "ok", "secrets": results}


def _sweep(service: Any) -> list[str]:  # noqa: ANN401 - RotationService, imported lazily
    """Revoke keys this rotator made for the secret that no store holds (a createSecret whose answer was lost after
    Bluum made the key). Only its own keys: the key name carries the credential, so other keys of the investor
    (used by who knows what) are never touched."""
    revoked = []
    for finding in service.sweep(revoke=True):
        log.info("%s", finding.message, extra={"fields": {"step": "sweep", "kind": finding.kind}})
        if finding.kind == "revoked" and finding.key_id:
            revoked.append(finding.key_id)
    return revoked


def credential_name(arn: str) -> str:
    """The credential's name for one managed secret: the keys the rotator mints carry it in their name, so it must
    tell two secrets of one investor apart (a sweep revokes only its own credential's keys)."""
    import hashlib

    return "sm-" + hashlib.sha256(arn.encode()).hexdigest()[:16]


def _managed() -> dict[str, ManagedSecret]:
    """ROTATOR_SECRETS: the secrets this function manages (by ARN) and what the deployer says about each."""
    from rotator.aws_lambda.config import managed_secrets

    return managed_secrets(os.environ)


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


# --------------------------------------------------------------------------------------------------- configuration


def _service(secret: ManagedSecret) -> App:
    """The rotation service for one managed secret, assembled as every way in assembles it (`rotator.ops.app`), on
    the configuration of this call (`_config`)."""
    from rotator.ops.app import assemble

    config = _config(secret)
    manager = str(config.stores[MANAGER].options["secret_id"])
    table = str(config.stores[MANAGED].options["ledger_table"])
    return assemble(config, stores=_stores(secret, manager, table))


def _stores(secret: ManagedSecret, manager: str, table: str) -> dict[str, SecretStore]:
    """The managed secret's store and the manager's, on the function instance's boto3 clients (made once)."""
    from backends.aws.store import AwsStore
    from rotator.core.model import Environment

    clients = {"secretsmanager": _client("secretsmanager"), "dynamodb": _client("dynamodb")}
    return {
        MANAGED: AwsStore(
            MANAGED,
            secret_id=secret.arn,
            ledger_table=table,
            # Every new version says what the deployer configured, whatever fields the current one had.
            fields=("key_id", "environment", "base_url"),
            environment=Environment(secret.environment),
            base_url=secret.effective_base_url(),
            **clients,
        ),
        MANAGER: AwsStore(MANAGER, secret_id=manager, ledger_table=table, **clients),
    }


def _config(secret: ManagedSecret) -> Config:
    """The configuration of one call, made from the function's environment alone, as data (`config_data`) and
    validated by the parser every rotator.toml goes through.

    The secret's own JSON only has to agree with it (`check_secret_json`); the manager secret's JSON gives its
    environment and base URL, and that base URL must be a host Bluum documents or the deployer named."""
    from rotator.aws_lambda.config import check_secret_json, config_data, manager_secret_id, scratch_dir
    from rotator.config.loader import parse_config_data

    manager = manager_secret_id(os.environ)
    check_secret_json(secret, _current_json(secret.arn))
    data = config_data(os.environ, secret, _current_json(manager), credential=credential_name(secret.arn))
    return parse_config_data(data, base_dir=scratch_dir(os.environ), source=CONFIG_SOURCE, store_types=("aws",))


def _current_json(secret_id: str) -> dict[str, Any]:
    answer = _client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    try:
        value = json.loads(answer.get("SecretString") or "")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LambdaConfigError(f"{secret_id}: its AWSCURRENT value must be a JSON object with api_key and api_secret")
    return value


def _client(service: str) -> Any:  # noqa: ANN401 - boto3 clients are untyped
    if service not in _clients:
        import boto3
        from botocore.config import Config

        from rotator.core.in_flight import aws_client_bounds  # every request bounded: the take-over wait counts on it

        region = os.environ.get("AWS_REGION") or None  # what a Lambda is given (boto3 itself reads AWS_DEFAULT_REGION)
        config = Config(**aws_client_bounds())
        _clients[service] = boto3.client(service, region_name=region, config=config)
    return _clients[service]


def _configure_logging() -> None:
    """JSON lines to CloudWatch, in place of the runtime's plain handler; only inside a real Lambda."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    root = logging.getLogger()
    if any(getattr(h, "_rotator_json", False) for h in root.handlers):
        return
    from rotator.core.logs import JsonFormatter

    handler_ = logging.StreamHandler()
    handler_.setFormatter(JsonFormatter())
    handler_._rotator_json = True  # type: ignore[attr-defined]
    for existing in list(root.handlers):  # the Lambda runtime's own plain-text handler
        root.removeHandler(existing)
    root.addHandler(handler_)
    root.setLevel(logging.INFO)


class _RequestIds(logging.Handler):
    """Collects the request ids of Bluum's answers (from the client's own log records) for a step's record."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        request_id = (getattr(record, "fields", None) or {}).get("request_id")
        if isinstance(request_id, str) and request_id not in self.ids:
            self.ids.append(request_id)


@contextmanager
def _bluum_request_ids() -> Iterator[list[str]]:
    collector = _RequestIds()
    bluum = logging.getLogger("rotator.bluum")
    bluum.addHandler(collector)
    try:
        yield collector.ids
    finally:
        bluum.removeHandler(collector)


@contextmanager
def _bluum_trouble(service: Any, fields: Mapping[str, Any]) -> Iterator[None]:  # noqa: ANN401 - RotationService
    """Count Bluum's 5xx and 429 answers (every attempt, retried or not) while the block runs, and log them as one
    EMF record (BluumServerErrors, BluumRateLimited) when there were any: what the command line's /metrics shows as
    bluum_rotator_bluum_requests_total, for the Lambda's CloudWatch alarms. Counted as the tick's alerts count them
    (`rotator.ops.alerts.counting`)."""
    from rotator.ops.alerts import counting

    with counting(service.runtime.response_observers) as count:
        try:
            yield
        finally:
            traffic = count.traffic
            counts = {BLUUM_SERVER_ERRORS: traffic.server_errors, BLUUM_RATE_LIMITED: traffic.rate_limited}
            if any(counts.values()):
                log.warning(
                    "Bluum answered %d time(s) 5xx and %d time(s) 429",
                    counts[BLUUM_SERVER_ERRORS],
                    counts[BLUUM_RATE_LIMITED],
                    extra={"fields": {**fields, "metric": BLUUM_TROUBLE, **emf_counts(counts)}},
                )


def _log_step(
    fields: dict[str, Any], message: str, started: float, *, outcome: str = "ok", metric: str | None = None
) -> None:
    """One JSON record per step; `metric` feeds the module's CloudWatch metric filters (and so its alarms)."""
    extra = {**fields, "outcome": outcome, "seconds": round(time.monotonic() - started, 3)}
    if metric is not None:
        extra.update(metric=metric, **emf(metric))
    (log.error if metric == ROTATION_FAILED else log.info)("%s", message, extra={"fields": extra})


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


def emf(metric: str) -> dict[str, Any]:
    """The members that make a JSON log record a CloudWatch Embedded Metric Format document counting 1 of `metric`.

    Why EMF and not metric filters: the record itself says which metric it feeds, in which namespace
    (ROTATOR_METRIC_NAMESPACE, set by the Terraform module), so renaming a field cannot silently stop an alarm, and no
    filter resource or PutMetricData permission is needed. No dimensions (`[[]]`): the alarms watch the function's
    whole count; the record's `secret_arn` says which secret.
    """
    return emf_counts({EMF_METRICS[metric]: 1})


def emf_counts(counts: Mapping[str, int]) -> dict[str, Any]:
    """The EMF members for several counts at once (metric name -> value), in ROTATOR_METRIC_NAMESPACE."""
    namespace = os.environ.get("ROTATOR_METRIC_NAMESPACE", "").strip() or DEFAULT_METRIC_NAMESPACE
    metrics = [{"Name": name, "Unit": "Count"} for name in counts]
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [[]], "Metrics": metrics}],
        },
        **counts,
    }
