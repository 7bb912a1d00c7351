"""The AWS store: one credential in AWS Secrets Manager, its stages being AWS's own staging labels.

Applications read the AWSCURRENT version of `secret_id`: a JSON object `{"api_key", "api_secret"}` plus `key_id`,
`environment` and `base_url` when present or asked for (`fields`; `field_names` renames them); other fields in the
secret (an `investor_id`, a database password) are carried into every new version. PENDING is AWSPENDING, PREVIOUS is
AWSPREVIOUS, and a rotation's token is the version id (Secrets Manager's ClientRequestToken), so a rotation started by
Secrets Manager itself and one started by the CLI speak the same language.

Every stage call is idempotent for its token: a version is written with the token as ClientRequestToken (written
again, the same value is a no-op and another value is refused), and labels are moved one per call by the plans in
`backends.stages`, which look at the labels as they are, so a crash between two moves is repaired by calling again.
AWS's label rules are kept here rather than trusted to the service (moto, for one, does not enforce them): a label
is taken off the version that carries it in the same call that puts it elsewhere. Reads always name the version.

A rollback never leaves the old key AWSCURRENT on the version a promote's move names: it copies the key into a new
version and moves AWSCURRENT there first (`backends.aws.fence`), so a move another runner sent before it was frozen,
landing late, is refused by Secrets Manager. `drop_pending` takes off an AWSPENDING a late put left on a rotation that
is over (`rotator.rotation.stale_pending`, under `rotator sweep --revoke`).

The record and the lease live in DynamoDB (`backends.aws.ledger`): Secrets Manager has no compare-and-set on a value.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from backends import stages
from backends.aws import fence as aws_fence
from backends.aws.errors import error_code, translated
from backends.aws.ledger import DEFAULT_TABLE, DynamoLedger
from backends.key_fields import FieldMap
from backends.ledger import LedgerByDelegation
from backends.stages import CURRENT_LABEL, PENDING_LABEL, PREVIOUS_LABEL, LabelMove, Labels, StageLog, Stages
from rotator.core import in_flight, lease_clock
from rotator.core.errors import ConfigError, StoreConflict, StoreCorrupt, StoreError, StoreNotFound
from rotator.core.findings import Finding
from rotator.core.model import Environment, Stage, StoredKey

__all__ = ["AwsStore"]

log = logging.getLogger("rotator.store.aws")

AWS_LABELS: Final = {
    CURRENT_LABEL: "AWSCURRENT",
    PENDING_LABEL: "AWSPENDING",
    PREVIOUS_LABEL: "AWSPREVIOUS",
    aws_fence.FENCE_LABEL: aws_fence.FENCE_LABEL_AWS,
}
_OURS: Final = {aws: ours for ours, aws in AWS_LABELS.items()}
LANE_SUFFIX: Final = "#lane"
"""The paying-key lane's item is the secret's ledger item id plus this (`lane_ledger`)."""
_STAGE_LABEL: Final = {Stage.CURRENT: CURRENT_LABEL, Stage.PENDING: PENDING_LABEL, Stage.PREVIOUS: PREVIOUS_LABEL}
TOKEN_LENGTHS: Final = range(32, 65)
"""Secrets Manager's ClientRequestToken (the version id) is 32 to 64 characters."""


class AwsStore(LedgerByDelegation):
    """One credential in one Secrets Manager secret, with its record and lease in a DynamoDB table.

    `secretsmanager` and `dynamodb` are boto3 clients to use instead of building them (a Lambda reuses its own; tests
    point them at moto); otherwise boto3's own configuration applies (AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER,
    profiles), with `region` winning. `timeout`: seconds each request of the clients built here may take to connect,
    and again to answer (`rotator.core.in_flight`: the take-over wait counts on it).
    """

    _ledger: DynamoLedger

    def __init__(
        self,
        name: str,
        *,
        secret_id: str,
        region: str | None = None,
        ledger_table: str = DEFAULT_TABLE,
        fields: Sequence[str] = (),
        field_names: Mapping[str, str] | None = None,
        environment: Environment | None = None,
        base_url: str | None = None,
        secretsmanager: Any = None,  # noqa: ANN401 - boto3 clients are untyped
        dynamodb: Any = None,  # noqa: ANN401
        clock: Callable[[], float] | None = None,
        timeout: float = in_flight.AWS_DEFAULT_TIMEOUT,
    ) -> None:
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            seconds = 0.0
        if not seconds > 0:
            raise ConfigError(f"store {name!r}: timeout must be a number of seconds, e.g. timeout = 10")
        if not isinstance(secret_id, str) or not secret_id.strip():
            raise ConfigError(f"store {name!r}: secret_id must name the secret (its name or ARN)")
        if not isinstance(ledger_table, str) or not ledger_table.strip():
            raise ConfigError(f"store {name!r}: ledger_table must name a DynamoDB table")
        quiet_body_loggers()
        self.name = name
        self._secret_id = secret_id
        self._fields = FieldMap(
            name, fields=fields, field_names=field_names, environment=environment, base_url=base_url
        )
        self._sm = secretsmanager if secretsmanager is not None else _client("secretsmanager", region, seconds)
        self._arn: str | None = secret_id if secret_id.startswith("arn:") else None
        self._mutex = threading.Lock()
        ledger_client = dynamodb if dynamodb is not None else _client("dynamodb", region, seconds)
        extra = {} if clock is None else {"clock": clock}
        for client in (self._sm, ledger_client):  # every request, botocore's resends too: none from a frozen runner
            client.meta.events.register("before-send", _lease_guard, unique_id="rotator-lease-guard")
        self._table = ledger_table
        self._ledger = DynamoLedger(
            ledger_client, ledger_table, self._ledger_id, store=name, describe=self.describe(), **extra
        )
        self._lane_parts = (ledger_client, ledger_table, clock)
        self._log = StageLog(log, name, self.describe())

    def describe(self) -> str:
        return f"AWS Secrets Manager secret {self._secret_id}"

    def __repr__(self) -> str:
        return f"AwsStore(name={self.name!r}, secret_id={self._secret_id!r})"

    def check_access(self) -> list[Finding]:
        """The write actions a rotation will use, asked of IAM's policy simulator without writing
        (`backends.access`; reads prove themselves when the plan reads the secret and the ledger)."""
        from backends.aws.access import aws_access

        region = str(self._sm.meta.region_name)
        return aws_access(
            f"store {self.name} ({self.describe()})",
            secret_arn=self._ledger_id(),
            table=self._table,
            region=region,
            sts=_plain_client("sts", region),
            iam=_plain_client("iam", region),
        )

    # ----------------------------------------------------------------------------------------------- reads

    def read(self, stage: Stage) -> StoredKey | None:
        labels = self._labels()
        version = stages.holder(labels, _STAGE_LABEL[stage])
        if stage is Stage.PREVIOUS:
            return None if version is None else self._previous_at(version)
        key = None if version is None else self._key_at(version)
        if key is None:
            if stage is Stage.CURRENT:
                raise StoreNotFound(
                    f"{self._secret_id} has no AWSCURRENT version: put the key applications use there, or give the "
                    "credential its first key with `rotator enroll`",
                    store=self.name,
                )
            return None
        return key

    # ----------------------------------------------------------------------------------------------- writes

    def put_pending(self, key: StoredKey) -> stages.Staged:
        token = self._checked_token(stages.require_token(key))
        labels = self._labels()
        now = self._stages(labels)
        staged = stages.put_pending(now, key, where=self._secret_id, store=self.name)
        self._log.staging(staged)
        if not staged.changed:
            return staged
        existing = self._key_at(token) if token in labels else None
        if existing is not None:  # a version of this token exists without a stage label (a retried or deprecated put)
            if not existing.same_key(key):
                raise StoreConflict(
                    f"version {token} of {self._secret_id} holds another key; nothing was changed. A token names one "
                    "key: start a new rotation",
                    store=self.name,
                )
            self._move(stages.moves_to_stage(labels, token))
        else:  # a new version, or the empty one Secrets Manager made for its own rotation: the value goes in
            base = self._current_value(labels)
            secret = json.dumps(self._fields.wanted(key, base))
            with translated("storing the new key as AWSPENDING in", self._secret_id, store=self.name):
                self._sm.put_secret_value(
                    SecretId=self._secret_id,
                    ClientRequestToken=token,
                    SecretString=secret,
                    VersionStages=["AWSPENDING"],
                )
        self._log.staged(staged)
        return staged

    def promote(self, token: str) -> stages.Promotion:
        labels = self._labels()
        now = self._stages(labels)
        promotion = stages.promote(now, token, shown=lambda: now.current, where=self._secret_id, store=self.name)
        moves = stages.moves_to_promote(labels, token, where=self._secret_id, store=self.name)
        if promotion.changed:
            self._log.promoting(promotion)
        self._move(moves)
        if promotion.changed:
            self._log.promoted(promotion, token)
        return promotion

    def restore_previous(self, token: str) -> stages.Rollback:
        labels = self._labels()
        rollback = stages.restore_previous(self._stages(labels), token, where=self._secret_id, store=self.name)
        fence = aws_fence.plan(labels, token)
        if fence is not None:  # the old key into a new version first: a late move naming the old one is refused
            self._fence(fence)
            labels = self._labels()
        moves = aws_fence.cleanup(labels, token)
        self._move(moves + stages.moves_to_restore(labels, token, where=self._secret_id, store=self.name))
        if rollback.changed:
            self._log.rolled_back(rollback, token)
        return rollback

    def clear_previous(self, token: str) -> stages.Cleared:
        labels = self._labels()
        cleared = stages.clear_previous(self._stages(labels), token)
        self._move(stages.moves_to_clear(labels, token))
        self._log.cleared(cleared)
        return cleared

    def drop_pending(self, token: str) -> StoredKey | None:
        """AWSPENDING off version `token`, when it is there and AWSCURRENT is not (`rotator.rotation.stale_pending`:
        a late put of a rotation that is over). The move names the version, so it never takes the label off another
        one."""
        labels = self._labels()
        if stages.holder(labels, PENDING_LABEL) != token or stages.holder(labels, CURRENT_LABEL) == token:
            return None
        key = self._key_at(token)
        self._move([LabelMove(PENDING_LABEL, None, token)])
        log.warning(
            "%s: took AWSPENDING off version %s (%s), a rotation that is over; a key still active at Bluum is then "
            "an orphan for `rotator sweep --revoke`",
            self._secret_id,
            token,
            key.label if key is not None else "no value",
            extra={"fields": {"store": self.name, "token": token}},
        )
        return key

    # ----------------------------------------------------------------------------------------------- ledger
    # read_record, write_record, acquire, renew, release: LedgerByDelegation, to the DynamoDB ledger

    def close(self) -> None:
        self._ledger.release_all()

    # ----------------------------------------------------------------------------------------------- internals

    def lane_ledger(self) -> DynamoLedger:
        """The lease of the paying-key lane kept beside this secret's ledger (`backends.ledger.LaneSource`): the item
        `<secret ARN>#lane` in the same table, with the same conditional-write lease."""
        client, table, clock = self._lane_parts
        extra = {} if clock is None else {"clock": clock}
        describe = f"the paying-key lane of {self._secret_id}"
        return DynamoLedger(client, table, self._lane_id, store=self.name, describe=describe, **extra)

    def _lane_id(self) -> str:
        return f"{self._ledger_id()}{LANE_SUFFIX}"

    def _ledger_id(self) -> str:
        """The secret's ARN (the same item whether the secret is configured by name or by ARN)."""
        if self._arn is None:
            self._describe_secret()
        assert self._arn is not None
        return self._arn

    def _describe_secret(self) -> dict[str, Any]:
        with translated("reading the versions of", self._secret_id, store=self.name):
            answer: dict[str, Any] = self._sm.describe_secret(SecretId=self._secret_id)
        with self._mutex:
            self._arn = str(answer.get("ARN") or self._secret_id)
        return answer

    def _labels(self) -> Labels:
        """Version id → our stage labels (AWS's other labels are ignored)."""
        answer = self._describe_secret()
        labels: Labels = {}
        for version, carried in (answer.get("VersionIdsToStages") or {}).items():
            labels[str(version)] = frozenset(_OURS[label] for label in carried if label in _OURS)
        return labels

    def _stages(self, labels: Labels) -> Stages:
        """The keys the labels in `labels` (one describe, shared with the move plan) point at."""

        def key(label: str) -> StoredKey | None:
            version = stages.holder(labels, label)
            if version is None:
                return None
            return self._previous_at(version) if label == PREVIOUS_LABEL else self._key_at(version)

        return Stages(current=key(CURRENT_LABEL), pending=key(PENDING_LABEL), previous=key(PREVIOUS_LABEL))

    def _value_at(self, version: str) -> dict[str, Any] | None:
        """The JSON of a version; None for a version with no value yet (Secrets Manager makes an empty AWSPENDING
        version when it starts a rotation, and createSecret puts the value into it)."""
        try:
            with translated(f"reading version {version} of", self._secret_id, store=self.name):
                answer = self._sm.get_secret_value(SecretId=self._secret_id, VersionId=version)
        except StoreNotFound as exc:
            if error_code(exc.__cause__ or exc) == "ResourceNotFoundException" and self._arn is not None:
                return None
            raise
        text = answer.get("SecretString")
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise StoreCorrupt(
                f"version {version} of {self._secret_id} is not a JSON object: store the key as "
                '{"api_key": "...", "api_secret": "..."} (a SecretString, not binary)',
                store=self.name,
            )
        return value

    def _key_at(self, version: str) -> StoredKey | None:
        value = self._value_at(version)
        if value is None:
            return None
        key = self._fields.key_from(value, f"{self._secret_id} (version {version})")
        return StoredKey(
            api_key=key.api_key,
            api_secret=key.api_secret,
            key_id=key.key_id,
            environment=key.environment,
            base_url=key.base_url,
            token=version,
        )

    def _previous_at(self, version: str) -> StoredKey | None:
        """The key AWSPREVIOUS holds; None for a version with neither key field: the Terraform module's placeholder,
        which the first put-secret-value of today's key moved to AWSPREVIOUS (a rotation then failed at createSecret,
        reading it). It holds no key, so there is nothing to keep, restore or revoke there."""
        try:
            return self._key_at(version)
        except StoreNotFound:
            return None

    def _current_value(self, labels: Labels) -> dict[str, Any]:
        """The AWSCURRENT value (its other fields are carried into a new version); empty before a first key."""
        version = stages.holder(labels, CURRENT_LABEL)
        return (self._value_at(version) if version is not None else None) or {}

    def _fence(self, fence: aws_fence.Fence) -> None:
        """Copy the old key's version into `fence.version`, then move AWSCURRENT there off `fence.off` and AWSPREVIOUS
        back. Every call is idempotent: the same id with the same value is a no-op, and a move that already happened
        is found where it went (`_move`)."""
        with translated(f"reading version {fence.source} of", self._secret_id, store=self.name):
            text = self._sm.get_secret_value(SecretId=self._secret_id, VersionId=fence.source).get("SecretString")
        if not isinstance(text, str):
            raise StoreCorrupt(
                f"version {fence.source} of {self._secret_id} holds no SecretString, so the old key cannot be copied "
                "to a new version; nothing was changed. Store the key as a JSON SecretString",
                store=self.name,
            )
        with translated("copying the old key to a new version of", self._secret_id, store=self.name):
            self._sm.put_secret_value(
                SecretId=self._secret_id,
                ClientRequestToken=fence.version,
                SecretString=text,
                VersionStages=[aws_fence.FENCE_LABEL_AWS],
            )
        self._move(fence.moves())
        log.info(
            "%s: the old key is AWSCURRENT in a new version %s, off %s: a late move naming %s is refused",
            self._secret_id,
            fence.version,
            fence.off,
            fence.off,
            extra={"fields": {"store": self.name, "version": fence.version}},
        )

    def _move(self, moves: list[LabelMove]) -> None:
        for move in moves:
            call: dict[str, Any] = {"SecretId": self._secret_id, "VersionStage": AWS_LABELS[move.label]}
            if move.to is not None:
                call["MoveToVersionId"] = move.to
            if move.off is not None:
                call["RemoveFromVersionId"] = move.off
            try:
                with translated(f"moving {AWS_LABELS[move.label]} in", self._secret_id, store=self.name):
                    self._sm.update_secret_version_stage(**call)
            except StoreError:
                if not self._moved(move):
                    raise
                log.info("%s: %s was moved; its answer was lost", self._secret_id, AWS_LABELS[move.label])

    def _moved(self, move: LabelMove) -> bool:
        """Whether `move` is already done: botocore sends a move again when its answer was lost, and the resend of
        a move that was applied is refused (the label is no longer on the version it names to take it from)."""
        labels = self._labels()
        if move.to is not None and move.label not in labels.get(move.to, frozenset()):
            return False
        return move.off is None or move.off == move.to or move.label not in labels.get(move.off, frozenset())

    def _checked_token(self, token: str) -> str:
        if len(token) not in TOKEN_LENGTHS:
            raise StoreError(
                f"token {token!r} cannot be a Secrets Manager version id (32 to 64 characters); nothing was written. "
                "Use a longer token (`rotator` makes 32-character ones)",
                store=self.name,
            )
        return token


BODY_LOGGERS: Final = (
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.hooks",
)
"""botocore loggers that print request and response bodies or signed headers at DEBUG: a secret value, a session
token. They are kept at INFO whatever the root logger's level, so `-vv` or a debug Lambda never logs a secret."""


def quiet_body_loggers() -> None:
    """Keep the loggers that would print secrets at INFO or above."""
    for name in BODY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # its own level (NOTSET follows the root, which may be DEBUG later)
            logger.setLevel(logging.INFO)
        if _DROP_DEBUG not in logger.filters:  # survives a logging config that resets levels
            logger.addFilter(_DROP_DEBUG)


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


_DROP_DEBUG: Final = _drop_debug


def _lease_guard(**_: object) -> None:
    """botocore's before-send hook: the lease guard of the command this request serves (`rotator.core.lease_clock`)."""
    lease_clock.before_request(0.0)


def _client(service: str, region: str | None, timeout: float) -> Any:  # noqa: ANN401 - boto3 clients are untyped
    """A boto3 client with standard retries (only transient errors are retried, with backoff), each attempt bounded
    (`rotator.core.in_flight`): botocore's own 60 s + 60 s would outlive the take-over wait."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError(
            "the aws store needs boto3: `pip install 'bluum-rotator[aws]'` (a Lambda runtime already has it)"
        ) from exc
    config = Config(**in_flight.aws_client_bounds(timeout))
    return boto3.session.Session().client(service, region_name=region, config=config)


def _plain_client(service: str, region: str) -> Any:  # noqa: ANN401 - boto3 clients are untyped
    """A boto3 client for a read-only question of the plan (STS, IAM): boto3's own configuration, no retries (a server
    without the simulator answers at once)."""
    import boto3
    from botocore.config import Config

    bounds = Config(connect_timeout=5.0, read_timeout=5.0, retries={"total_max_attempts": 1})
    return boto3.session.Session().client(service, region_name=region, config=bounds)
