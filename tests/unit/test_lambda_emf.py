"""The Lambda's metric records are valid CloudWatch Embedded Metric Format documents once formatted as JSON lines."""

from __future__ import annotations

import json
import logging

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.core.logs import JsonFormatter


def test_a_metric_record_is_an_emf_document_in_the_configured_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_METRIC_NAMESPACE", "Payments/Rotator")
    record = logging.LogRecord("rotator.lambda", logging.ERROR, __file__, 1, "failed", None, None)
    record.fields = {"secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:x", **aws_lambda.emf("rotation_failed")}
    line = json.loads(JsonFormatter().format(record))
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Payments/Rotator"
    assert directive["Dimensions"] == [[]]
    assert [metric["Name"] for metric in directive["Metrics"]] == ["RotationFailed"]
    assert line["RotationFailed"] == 1, "the root holds a value for every metric the directive names"
    assert isinstance(line["_aws"]["Timestamp"], int)


def test_the_namespace_defaults_to_the_terraform_modules_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTATOR_METRIC_NAMESPACE", raising=False)
    document = aws_lambda.emf("key_overdue")
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BluumRotator"
    assert document["KeyOverdue"] == 1
