"""backends/aws/access.py: the IAM simulator's answer into findings (the part moto cannot show: it has no simulator).

The clients here stand in for boto3's STS and IAM clients with the answer shapes of AWS's API reference
(GetCallerIdentity, SimulatePrincipalPolicy's EvaluationResults)."""

from __future__ import annotations

from typing import Any

from backends.aws.access import aws_access, principal_of
from rotator.core.findings import Severity

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bluum/trading-AbCdEf"


class Sts:
    def __init__(self, arn: str) -> None:
        self.arn = arn

    def get_caller_identity(self) -> dict[str, str]:
        return {"Arn": self.arn, "Account": self.arn.split(":")[4]}


class Iam:
    def __init__(self, denied: set[str]) -> None:
        self.denied = denied
        self.asked: list[dict[str, Any]] = []

    def simulate_principal_policy(self, **call: Any) -> dict[str, Any]:
        self.asked.append(call)
        return {
            "EvaluationResults": [
                {"EvalActionName": action, "EvalDecision": "implicitDeny" if action in self.denied else "allowed"}
                for action in call["ActionNames"]
            ]
        }


def test_an_assumed_role_session_is_simulated_as_its_role() -> None:
    session = "arn:aws:sts::123456789012:assumed-role/rotator-lambda/botocore-session-1"
    assert principal_of(session) == "arn:aws:iam::123456789012:role/rotator-lambda"
    assert principal_of("arn:aws:iam::123456789012:user/ops") == "arn:aws:iam::123456789012:user/ops"


def test_each_denied_write_is_a_problem_naming_action_and_resource() -> None:
    iam = Iam({"secretsmanager:UpdateSecretVersionStage", "dynamodb:UpdateItem"})
    sts = Sts("arn:aws:sts::123456789012:assumed-role/rotator/s")
    found = aws_access("store aws", secret_arn=SECRET, table="ledger", region="eu-west-1", sts=sts, iam=iam)
    assert [f.severity for f in found] == [Severity.PROBLEM, Severity.PROBLEM]
    assert "UpdateSecretVersionStage" in found[0].problem
    assert SECRET in found[0].fix
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/ledger" in found[1].problem
    assert {call["PolicySourceArn"] for call in iam.asked} == {"arn:aws:iam::123456789012:role/rotator"}


def test_all_allowed_is_no_finding() -> None:
    sts = Sts("arn:aws:iam::123456789012:user/ops")
    assert aws_access("store aws", secret_arn=SECRET, table="t", region="eu-west-1", sts=sts, iam=Iam(set())) == []


def test_a_simulator_that_cannot_be_asked_is_not_checked_never_fine() -> None:
    class Refusing(Iam):
        def simulate_principal_policy(self, **call: Any) -> dict[str, Any]:
            raise RuntimeError("AccessDenied")

    sts = Sts("arn:aws:iam::123456789012:user/ops")
    found = aws_access("store aws", secret_arn=SECRET, table="t", region="eu-west-1", sts=sts, iam=Refusing(set()))
    assert [f.severity for f in found] == [Severity.UNCHECKED]
    assert "iam:SimulatePrincipalPolicy" in found[0].fix
