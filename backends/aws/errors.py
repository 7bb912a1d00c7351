"""botocore errors, translated in one place into the store errors, with what to do about each.

Why one place: the AWS store calls Secrets Manager and DynamoDB, and an operator needs the same answer to "access
denied" or "throttled" whichever call met it. Only transient errors are retried, and botocore does that itself
(standard retry mode, set where the clients are made); what reaches this module has used its retries. Messages carry
AWS's error code and message (they name ARNs and actions, never a secret value) and never a credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from botocore import exceptions as aws

from rotator.core.errors import StoreConflict, StoreDenied, StoreError, StoreNotFound, StoreUnavailable

__all__ = ["error_code", "translated"]

_SHOWN_CHARS: Final = 300
_AGAIN: Final = "run the command again (or `rotator resume` if a rotation was under way)"
_UNREACHABLE: Final = (
    aws.EndpointConnectionError,
    aws.ConnectionClosedError,
    aws.ReadTimeoutError,
    aws.ConnectTimeoutError,
)
_TRANSIENT: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "InternalServiceError",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


def error_code(exc: BaseException) -> str:
    """AWS's error code of a ClientError ("" for anything else)."""
    if isinstance(exc, aws.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _said(exc: aws.ClientError) -> str:
    error = exc.response.get("Error", {})
    text = " ".join(str(error.get("Message", "")).split()) or str(error.get("Code", ""))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


@contextmanager
def translated(action: str, where: str, *, store: str) -> Iterator[None]:
    """Run AWS calls; re-raise a failure as a `StoreError` saying `action` on `where` failed, why and what to do."""
    head = f"{action} {where}" if where else action
    try:
        yield
    except aws.ClientError as exc:
        raise _from_client_error(exc, head, store=store) from exc
    except aws.NoCredentialsError as exc:
        raise StoreDenied(
            f"{head}: no AWS credentials found. Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "run where a role is attached (a Lambda, an instance profile)",
            store=store,
        ) from exc
    except aws.NoRegionError as exc:
        raise StoreError(f"{head}: no AWS region: set `region` in the store's table, or AWS_REGION") from exc
    except (
        aws.EndpointConnectionError,
        aws.ConnectionClosedError,
        aws.ReadTimeoutError,
        aws.ConnectTimeoutError,
    ) as exc:
        raise StoreUnavailable(
            f"{head}: cannot reach AWS ({type(exc).__name__}). Check the network path (a VPC endpoint or NAT for "
            f"Secrets Manager and DynamoDB), then {_AGAIN}",
            store=store,
        ) from exc
    except aws.BotoCoreError as exc:
        raise StoreUnavailable(f"{head}: {type(exc).__name__}; {_AGAIN}", store=store) from exc


def _from_client_error(exc: aws.ClientError, head: str, *, store: str) -> StoreError:
    code, said = error_code(exc), _said(exc)
    text = f"{head}: AWS said {code}: {said}"
    if code in ("ResourceNotFoundException",):
        return _made(StoreNotFound, store, f"{text}. Check the name and region, and that it was not deleted")
    if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "KMSAccessDeniedException"):
        return _made(
            StoreDenied,
            store,
            f"{text}. The role's policy does not allow this: grant the action on this resource (the module's "
            f"iam.tf has the least-privilege policy), then {_AGAIN}",
        )
    if code in ("ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId"):
        return _made(
            StoreDenied, store, f"{text}. The AWS credentials expired or are not valid: refresh them, then {_AGAIN}"
        )
    if code in ("ResourceExistsException", "ConditionalCheckFailedException", "TransactionConflictException"):
        return _made(
            StoreConflict, store, f"{text}. Someone else changed it first; nothing of this runner's was written"
        )
    if code in _TRANSIENT:
        return _made(StoreUnavailable, store, f"{text}. AWS kept refusing after retries; {_AGAIN}")
    if code == "InvalidRequestException" and "deletion" in said.lower():
        return _made(
            StoreError,
            store,
            f"{text}. The secret is scheduled for deletion: restore it (`aws secretsmanager restore-secret`)",
        )
    if code.startswith("KMS") or "kms" in said.lower():
        return _made(
            StoreDenied,
            store,
            f"{text}. The secret's KMS key refused: check that the key is enabled and the role may use it",
        )
    return _made(StoreError, store, text)


def _made(kind: type[StoreError], store: str, message: str) -> StoreError:
    return kind(message, store=store)
