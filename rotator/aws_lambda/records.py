"""The function's log records: one JSON line per step and per secret on each tick, and the CloudWatch metrics they
carry (Embedded Metric Format), which the Terraform module's alarms watch.

Shared by the rotation steps (`entry`) and the tick as the scheduler (`scheduler`), so both say the same things the
same way. Only the standard library at import: the handler's cold start.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rotator.rotation.driver import Outcome

__all__ = [
    "BLUUM_RATE_LIMITED",
    "BLUUM_SERVER_ERRORS",
    "BLUUM_TROUBLE",
    "EMF_METRICS",
    "KEY_OVERDUE",
    "ROTATION_FAILED",
    "bluum_request_ids",
    "bluum_trouble",
    "configure_logging",
    "emf",
    "emf_counts",
    "finish",
    "log_step",
]

log = logging.getLogger("rotator.lambda")

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


def finish(outcome: Outcome, fields: dict[str, Any], started: float) -> dict[str, Any]:
    """The result of a step (or of one secret's tick) and its log record; a failed outcome raises, so the invocation
    fails and the errors alarm fires."""
    from rotator.core.errors import ExitCode

    result = {"outcome": outcome.exit_code.name.lower(), **fields}
    failed = outcome.exit_code not in (ExitCode.OK, ExitCode.INCOMPLETE)
    metric = ROTATION_FAILED if failed else None
    log_step(fields, outcome.message, started, outcome=outcome.exit_code.name.lower(), metric=metric)
    if failed:
        raise RuntimeError(f"{fields.get('step', 'tick')} of {fields['secret_arn']} failed: {outcome.message}")
    return result


def configure_logging() -> None:
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
def bluum_request_ids() -> Iterator[list[str]]:
    collector = _RequestIds()
    bluum = logging.getLogger("rotator.bluum")
    bluum.addHandler(collector)
    try:
        yield collector.ids
    finally:
        bluum.removeHandler(collector)


@contextmanager
def bluum_trouble(service: Any, fields: Mapping[str, Any]) -> Iterator[None]:  # noqa: ANN401 - RotationService
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


def log_step(
    fields: dict[str, Any], message: str, started: float, *, outcome: str = "ok", metric: str | None = None
) -> None:
    """One JSON record per step; `metric` feeds the module's CloudWatch metric filters (and so its alarms)."""
    extra = {**fields, "outcome": outcome, "seconds": round(time.monotonic() - started, 3)}
    if metric is not None:
        extra.update(metric=metric, **emf(metric))
    (log.error if metric == ROTATION_FAILED else log.info)("%s", message, extra={"fields": extra})


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
