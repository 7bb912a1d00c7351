"""What `rotator plan` checks of an AWS store without writing: the IAM actions a rotation will use, simulated.

Reads prove themselves: the plan reads the secret (DescribeSecret, GetSecretValue) and the ledger item (GetItem, which
also finds a missing table). The writes (PutSecretValue and UpdateSecretVersionStage on the secret, UpdateItem on the
ledger table) cannot be tried without changing something, so they are asked of IAM's policy simulator
(`iam:SimulatePrincipalPolicy` on the runner's own principal, from `sts:GetCallerIdentity`): both read-only. Where the
simulator cannot be asked (the runner lacks the permission; moto does not implement it) the writes are reported as
not checked, with what to grant, never as fine.
"""

from __future__ import annotations

import re
from typing import Any, Final

from rotator.core.findings import Finding, Severity

__all__ = ["LEDGER_WRITES", "SECRET_WRITES", "aws_access", "principal_of"]

SECRET_WRITES: Final = ("secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage")
LEDGER_WRITES: Final = ("dynamodb:UpdateItem",)
_ASSUMED: Final = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/.+$")


def principal_of(arn: str) -> str:
    """The IAM principal the simulator takes for a caller ARN: an assumed-role session is its role (without the
    role's path, which the session ARN does not carry)."""
    found = _ASSUMED.match(arn)
    if found is None:
        return arn
    return f"arn:{found['partition']}:iam::{found['account']}:role/{found['role']}"


def aws_access(part: str, *, secret_arn: str, table: str, region: str, sts: Any, iam: Any) -> list[Finding]:  # noqa: ANN401
    """Findings for one AWS store: each write action the simulator denies, or one 'not checked' when it cannot be
    asked. `sts`, `iam`: boto3 clients (built without retries: a server without the simulator answers at once)."""
    asked = [*SECRET_WRITES, *LEDGER_WRITES]
    try:
        caller = str(sts.get_caller_identity()["Arn"])
    except Exception as exc:  # any answer but an identity: the writes cannot be proven (said, never taken as fine)
        return [_unchecked(part, asked, f"sts:GetCallerIdentity failed ({_said(exc)})")]
    account = caller.split(":")[4]
    partition = caller.split(":")[1]
    table_arn = f"arn:{partition}:dynamodb:{region}:{account}:table/{table}"
    principal = principal_of(caller)
    findings: list[Finding] = []
    for actions, resource in ((SECRET_WRITES, secret_arn), (LEDGER_WRITES, table_arn)):
        try:
            answer = iam.simulate_principal_policy(
                PolicySourceArn=principal, ActionNames=list(actions), ResourceArns=[resource]
            )
        except Exception as exc:  # as above: denied, not implemented (moto: 500), unreachable
            return [_unchecked(part, asked, f"iam:SimulatePrincipalPolicy for {principal} failed ({_said(exc)})")]
        for result in answer.get("EvaluationResults", []):
            decision = str(result.get("EvalDecision", ""))
            if decision != "allowed":
                action = str(result.get("EvalActionName", "?"))
                findings.append(
                    Finding(
                        part,
                        f"IAM does not allow {principal} {action} on {resource} ({decision}): a rotation would stop "
                        "there",
                        f"add {action} on {resource} to the runner's policy (terraform/ gives the Lambda's role all of "
                        "them)",
                    )
                )
    return findings


def _unchecked(part: str, actions: list[str], why: str) -> Finding:
    return Finding(
        part,
        f"{', '.join(actions)} not proven without writing: {why}",
        "grant the runner iam:SimulatePrincipalPolicy on itself (and sts:GetCallerIdentity) so that plan can prove "
        "them; meanwhile make sure its policy allows them",
        Severity.UNCHECKED,
    )


def _said(exc: Exception) -> str:
    """The error's code or class, shortened: never a request body."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
