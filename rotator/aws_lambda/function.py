"""The function instance's AWS clients, and the rotation service of one call, assembled as every way in assembles it.

The rotation steps and the tick (`entry`) and the tick as the scheduler (`scheduler`) all get their service here:
one managed secret's (`service`), or, for the scheduler, one over several secrets paid for by the one manager key
(`fleet_service`), so the cap per paying key sees all their starts. Each configuration is made from the function's
environment alone, as data, and validated by the parser every rotator.toml goes through; a managed secret's own JSON
only has to agree with it (`rotator.aws_lambda.config`).

Only the standard library at import: the engine, httpx and boto3 load at the first call that needs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from rotator.aws_lambda.config import MANAGED, MANAGER, LambdaConfigError, ManagedSecret

if TYPE_CHECKING:
    from backends.base import SecretStore
    from rotator.config.loader import Config
    from rotator.ops.app import App

__all__ = [
    "CONFIG_SOURCE",
    "client",
    "credential_name",
    "current_json",
    "fleet_service",
    "managed",
    "service",
    "sweep",
]

log = logging.getLogger("rotator.lambda")

CONFIG_SOURCE: Final = "the function's configuration (ROTATOR_* variables)"
"""How configuration problems name what they were found in: there is no rotator.toml in a Lambda."""
clients: dict[str, Any] = {}
"""boto3 clients, kept across invocations of one function instance (made once: ~50 ms each)."""


def credential_name(arn: str) -> str:
    """The credential's name for one managed secret: the keys the rotator mints carry it in their name, so it must
    tell two secrets of one investor apart (a sweep revokes only its own credential's keys)."""
    return "sm-" + hashlib.sha256(arn.encode()).hexdigest()[:16]


def managed() -> dict[str, ManagedSecret]:
    """ROTATOR_SECRETS: the secrets this function manages (by ARN) and what the deployer says about each."""
    from rotator.aws_lambda.config import managed_secrets

    return managed_secrets(os.environ)


def service(secret: ManagedSecret) -> App:
    """The rotation service for one managed secret, assembled as every way in assembles it (`rotator.ops.app`), on
    the configuration of this call (`_config`)."""
    from rotator.ops.app import assemble

    config = _config(secret)
    manager = str(config.stores[MANAGER].options["secret_id"])
    table = str(config.stores[MANAGED].options["ledger_table"])
    return assemble(config, stores=_stores({MANAGED: secret}, manager, table))


def fleet_service(secrets: Mapping[str, ManagedSecret]) -> App:
    """One rotation service over `secrets` (credential name -> secret, their JSON already checked by the caller),
    each secret its own store and credential, one manager key paying for all."""
    from rotator.aws_lambda.config import manager_secret_id, scratch_dir
    from rotator.aws_lambda.schedule import fleet_config_data
    from rotator.config.loader import parse_config_data
    from rotator.ops.app import assemble

    manager = manager_secret_id(os.environ)
    data = fleet_config_data(os.environ, secrets, current_json(manager))
    config = parse_config_data(data, base_dir=scratch_dir(os.environ), source=CONFIG_SOURCE, store_types=("aws",))
    table = str(config.stores[MANAGER].options["ledger_table"])
    return assemble(config, stores=_stores(secrets, str(config.stores[MANAGER].options["secret_id"]), table))


def _stores(secrets: Mapping[str, ManagedSecret], manager: str, table: str) -> dict[str, SecretStore]:
    """Each managed secret's store (by store name) and the manager's, on the function instance's boto3 clients."""
    from backends.aws.store import AwsStore
    from rotator.core.model import Environment

    aws = {"secretsmanager": client("secretsmanager"), "dynamodb": client("dynamodb")}
    stores: dict[str, SecretStore] = {
        name: AwsStore(
            name,
            secret_id=secret.arn,
            ledger_table=table,
            # Every new version says what the deployer configured, whatever fields the current one had.
            fields=("key_id", "environment", "base_url"),
            environment=Environment(secret.environment),
            base_url=secret.effective_base_url(),
            **aws,
        )
        for name, secret in secrets.items()
    }
    stores[MANAGER] = AwsStore(MANAGER, secret_id=manager, ledger_table=table, **aws)
    return stores


def _config(secret: ManagedSecret) -> Config:
    """The configuration of one call, made from the function's environment alone, as data (`config_data`) and
    validated by the parser every rotator.toml goes through.

    The secret's own JSON only has to agree with it (`check_secret_json`); the manager secret's JSON gives its
    environment and base URL, and that base URL must be a host Bluum documents or the deployer named."""
    from rotator.aws_lambda.config import check_secret_json, config_data, manager_secret_id, scratch_dir
    from rotator.aws_lambda.schedule import with_schedule
    from rotator.config.loader import parse_config_data

    manager = manager_secret_id(os.environ)
    check_secret_json(secret, current_json(secret.arn))
    data = config_data(os.environ, secret, current_json(manager), credential=credential_name(secret.arn))
    data = with_schedule(os.environ, data)
    return parse_config_data(data, base_dir=scratch_dir(os.environ), source=CONFIG_SOURCE, store_types=("aws",))


def current_json(secret_id: str) -> dict[str, Any]:
    answer = client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    try:
        value = json.loads(answer.get("SecretString") or "")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LambdaConfigError(f"{secret_id}: its AWSCURRENT value must be a JSON object with api_key and api_secret")
    return value


def client(name: str) -> Any:  # noqa: ANN401 - boto3 clients are untyped
    if name not in clients:
        import boto3
        from botocore.config import Config

        from rotator.core.in_flight import aws_client_bounds  # every request bounded: the take-over wait counts on it

        region = os.environ.get("AWS_REGION") or None  # what a Lambda is given (boto3 itself reads AWS_DEFAULT_REGION)
        config = Config(**aws_client_bounds())
        clients[name] = boto3.client(name, region_name=region, config=config)
    return clients[name]


def sweep(service: Any) -> list[str]:  # noqa: ANN401 - RotationService, imported lazily
    """Revoke keys this rotator made for the service's secrets that no store holds (a createSecret whose answer was
    lost after Bluum made the key). Only its own keys: the key name carries the credential, so other keys of the
    investor (used by who knows what) are never touched."""
    revoked = []
    for finding in service.sweep(revoke=True):
        log.info("%s", finding.message, extra={"fields": {"step": "sweep", "kind": finding.kind}})
        if finding.kind == "revoked" and finding.key_id:
            revoked.append(finding.key_id)
    return revoked
