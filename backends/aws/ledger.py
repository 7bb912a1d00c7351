"""The AWS store's ledger: one DynamoDB item per secret, holding the rotation record and the lease.

Why DynamoDB and not the secret itself: Secrets Manager has no compare-and-set on a value (a put is idempotent by
token, not conditional on the version read) and every version it keeps counts against the secret's version limit,
while a record is written at every step and a lease renewed through every wait. A DynamoDB conditional write is a
real compare-and-set, costs nothing in the secret's history, and one table serves every secret (the Terraform module
creates it; a CLI and the rotation Lambda share it, which is what keeps a CLI rotation and a scheduled one from both
proceeding).

Item (key `ledger_id`, the secret's ARN)::

    {"ledger_id": "arn:aws:secretsmanager:...", "fence": 7, "owner": "ops@host pid 42" (absent: released),
     "expires_at": 1800000000.5, "ttl_seconds": 900, "holder": "{...}" (where the holder runs, backends.holder),
     "record": "{...the rotation record as JSON...}", "record_version": 3}

Every write names what it expects (`ConditionExpression`): `acquire` the item as it read it (the fencing number, the
lease as it was and the record version), a record write the lease it holds (not expired on the writer's clock) and the
record version it read. A refused write is read again to
say why: the lease was lost (LeaseLost, exit 3) or the record moved on (StoreConflict). Or neither: botocore sends
a write again when its answer was lost (standard retries), and the resend of a write that was applied fails its own
condition; a write that finds exactly what it wrote (the same lease, or the record it meant at the version it meant)
under its own lease succeeded, and says so. Lease times are wall-clock seconds of the runners, so their clocks should
agree to well within the lease's 15 minutes.

One read per command (issue 18): the handle keeps the item as it last read or wrote it. `acquire` takes the lease on
that item without reading it again, its write conditional on the item being just as seen, so the record read before
(to decide) is the record under the lease: nobody wrote it in between, and after the lease is taken only its holder
can. Under a lease this handle holds, `read_record` answers from that item; when the write is refused (something
changed), the item is read again and decided on anew, as before.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from backends.aws.errors import error_code, translated
from backends.holder import HandleLeases, HeldLease, HolderProcess, contend, refuse_write, this_process
from backends.ledger import Lease, VersionedRecord
from rotator.core.errors import LeaseLost, RotationInProgress, StoreConflict, StoreCorrupt, StoreError, StoreNotFound

__all__ = ["DEFAULT_TABLE", "DynamoLedger"]

log = logging.getLogger("rotator.store.aws")

DEFAULT_TABLE: Final = "bluum-rotator-ledger"
KEY: Final = "ledger_id"
_REFUSED: Final = "ConditionalCheckFailedException"


@dataclass(frozen=True, slots=True)
class _Item:
    """The ledger item as read (an absent item reads as fence 0, nothing held, no record)."""

    fence: int = 0
    owner: str | None = None
    expires_at: float | None = None
    expires_text: str | None = None
    """`expires_at` as DynamoDB holds it (a number's text): what a write conditional on the lease as read names."""
    holder: HolderProcess | None = None
    record: dict[str, Any] | None = None
    record_version: int = 0


class DynamoLedger:
    """The record and lease of one secret in a DynamoDB table. `client` is a boto3 DynamoDB client."""

    def __init__(
        self,
        client: Any,  # noqa: ANN401 - a boto3 client; boto3 has no types
        table: str,
        ledger_id: Callable[[], str],
        *,
        store: str,
        describe: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = store
        self._client = client
        self._table = table
        self._ledger_id = ledger_id
        self._describe = describe
        self._clock = clock
        self._held = HandleLeases()
        self._seen: _Item | None = None
        """The item as this handle last read or wrote it (None: unknown, after a write whose outcome is unknown)."""

    @property
    def where(self) -> str:
        return f"DynamoDB table {self._table}"

    # ----------------------------------------------------------------------------------------------- record

    def read_record(self) -> VersionedRecord:
        """The record and its version: under a lease this handle holds, as this handle last read or wrote it (only the
        holder writes it while the lease holds, and a holder whose lease ran out is stopped by its lease clock and
        refused by every write's condition); read now otherwise."""
        seen, mine = self._seen, self._held.latest()
        item = seen if seen is not None and seen.owner is not None and seen.fence == mine else self._read()
        return VersionedRecord(item.record, item.record_version)

    def write_record(self, record: dict[str, Any], *, lease: Lease, version: int) -> int:
        """Replace the record if `lease` still holds (on this writer's clock) and the record is still at `version`."""
        try:
            text = json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the rotation record is not JSON-serializable: {exc}", store=self.name) from exc
        now, seen = self._clock(), self._seen
        if now >= lease.expires_at:
            self._refuse(self._read(), lease, what="the rotation record was not written")
        try:
            self._update(
                "SET #record = :record, record_version = :next",
                "fence = :fence AND attribute_exists(#owner) AND expires_at > :now AND record_version = :version",
                {
                    ":record": {"S": text},
                    ":next": {"N": str(version + 1)},
                    ":fence": {"N": str(lease.fence)},
                    ":now": {"N": repr(now)},
                    ":version": {"N": str(version)},
                },
                action="writing the rotation record to",
            )
        except _Refused:
            item = self._read()
            if _holds(item, lease) and item.record_version == version + 1 and item.record == json.loads(text):
                log.info(
                    "the rotation record in %s was written (version %d); its answer was lost", self.where, version + 1
                )
                return version + 1  # botocore sent it again after a lost answer, and the resend failed our condition
            self._refuse(item, lease, what="the rotation record was not written")
            raise StoreConflict(
                f"the rotation record in {self.where} changed since it was read (version {item.record_version}, not "
                f"{version}); nothing was written",
                store=self.name,
            ) from None
        if seen is not None and (seen.fence, seen.record_version) == (lease.fence, version):
            self._seen = replace(seen, record=json.loads(text), record_version=version + 1)
        return version + 1

    # ----------------------------------------------------------------------------------------------- lease

    def acquire(self, owner: str, ttl_seconds: float) -> Lease:
        """A lease with the next fencing number, or RotationInProgress while another is held.

        Taken on the item as this handle last saw it, when it did (no read): the write's condition is that item, so
        it applies only while nothing changed since, and the record seen then is the record under the lease. When the
        item changed, or the lease seen was live then, the item is read now and decided on again, as a handle that
        saw nothing does."""
        seen = self._seen
        if seen is not None:
            try:
                return self._take(seen, owner, ttl_seconds)
            except RotationInProgress:
                pass  # live when seen: it may have ended since
            except _Refused as refused:
                taken = self._read()
                return self._answer_lost(taken, refused.lease) or self._take_or_refuse(taken, owner, ttl_seconds)
        return self._take_or_refuse(self._read(), owner, ttl_seconds)

    def _take_or_refuse(self, item: _Item, owner: str, ttl_seconds: float) -> Lease:
        """The lease taken on `item` just read; RotationInProgress when another runner changed it meanwhile."""
        try:
            return self._take(item, owner, ttl_seconds)
        except _Refused as refused:
            lease = self._answer_lost(self._read(), refused.lease)
            if lease is not None:
                return lease
            raise RotationInProgress(
                f"another runner took the rotation lease in {self.where} at the same moment; nothing was changed. "
                "Wait for it, or run the command again"
            ) from None

    def _take(self, item: _Item, owner: str, ttl_seconds: float) -> Lease:
        """Take the lease over `item` (RotationInProgress while its lease is live) by a write conditional on the item
        being as read: the same fencing number, the lease as it was (released, or the same owner and expiry: not
        renewed since) and the same record version. _Refused otherwise."""
        held = HeldLease(item.fence, item.owner, item.expires_at, item.holder)
        lease = contend(
            held, owner=owner, ttl_seconds=ttl_seconds, now=self._clock(), where=self.where, store=self.name
        )
        holder = this_process()
        values = {
            ":next": {"N": str(lease.fence)},
            ":owner": {"S": owner},
            ":expires": {"N": repr(lease.expires_at)},
            ":ttl": {"N": repr(ttl_seconds)},
            ":holder": {"S": json.dumps(holder.to_json())},
            ":zero": {"N": "0"},
            ":fence": {"N": str(item.fence)},
            ":version": {"N": str(item.record_version)},
        }
        # An item never written has no fence; one that was must still have its own (not deleted and made anew).
        same_fence = "(attribute_not_exists(fence) OR fence = :fence)" if item.fence == 0 else "fence = :fence"
        if item.owner is None:
            as_held = "attribute_not_exists(#owner)"
        else:
            as_held = "#owner = :held_owner AND " + (
                "attribute_not_exists(expires_at)" if item.expires_text is None else "expires_at = :held_expires"
            )
            values[":held_owner"] = {"S": item.owner}
            if item.expires_text is not None:
                values[":held_expires"] = {"N": item.expires_text}
        try:
            self._update(
                "SET fence = :next, #owner = :owner, expires_at = :expires, ttl_seconds = :ttl, holder = :holder, "
                "record_version = if_not_exists(record_version, :zero)",
                f"{same_fence} AND (attribute_not_exists(record_version) OR record_version = :version) AND {as_held}",
                values,
                action="taking the rotation lease in",
            )
        except _Refused:
            raise _Refused(lease) from None
        self._held.add(lease.fence)
        self._seen = replace(
            item,
            fence=lease.fence,
            owner=owner,
            expires_at=lease.expires_at,
            expires_text=repr(lease.expires_at),
            holder=holder,
        )
        return lease

    def _answer_lost(self, taken: _Item, lease: Lease | None) -> Lease | None:
        """`lease` when `taken` (read after the lease write was refused) holds it as this process wrote it: botocore
        sent the write again after its answer was lost, and the resend found ours. None otherwise."""
        if lease is None or not (
            _holds(taken, lease) and taken.expires_at == lease.expires_at and taken.holder == this_process()
        ):
            return None
        log.info("took the rotation lease in %s (fence %d); its answer was lost", self.where, lease.fence)
        self._held.add(lease.fence)
        return lease

    def renew(self, lease: Lease, ttl_seconds: float) -> Lease:
        now, seen = self._clock(), self._seen
        expires_at = now + ttl_seconds
        try:
            self._update(
                "SET expires_at = :expires, ttl_seconds = :ttl",
                "fence = :fence AND attribute_exists(#owner)",
                {
                    ":expires": {"N": repr(expires_at)},
                    ":ttl": {"N": repr(ttl_seconds)},
                    ":fence": {"N": str(lease.fence)},
                },
                action="renewing the rotation lease in",
            )
        except _Refused:
            item = self._read()
            raise LeaseLost(
                f"{self._describe}: the rotation lease of {lease.owner} (fence {lease.fence}) is no longer held (the "
                f"lease in {self.where} is fence {item.fence}, {item.owner or 'released'}); this runner changes "
                "nothing more"
            ) from None
        if seen is not None and seen.fence == lease.fence and seen.owner is not None:
            self._seen = replace(seen, expires_at=expires_at, expires_text=repr(expires_at))
        return Lease(owner=lease.owner, fence=lease.fence, expires_at=expires_at, ttl_seconds=ttl_seconds)

    def release(self, lease: Lease) -> None:
        self._held.discard(lease.fence)
        seen = self._seen
        try:
            self._update(
                "REMOVE #owner, expires_at, holder",
                "fence = :fence",
                {":fence": {"N": str(lease.fence)}},
                action="releasing the rotation lease in",
            )
        except _Refused:
            log.warning(
                "the rotation lease of %s (fence %d) in %s had been taken over before it was released",
                lease.owner,
                lease.fence,
                self.where,
                extra={"fields": {"store": self.name, "owner": lease.owner}},
            )
            return
        if seen is not None and seen.fence == lease.fence:
            self._seen = replace(seen, owner=None, expires_at=None, expires_text=None, holder=None)

    def release_all(self) -> None:
        """Release the leases this handle still holds (a runner that stops without releasing)."""
        self._held.release_all(self.release, self.where)

    # ----------------------------------------------------------------------------------------------- internals

    def _refuse(self, item: _Item, lease: Lease, *, what: str) -> None:
        held = HeldLease(item.fence, item.owner, item.expires_at, item.holder)
        refuse_write(held, lease, now=self._clock(), describe=self._describe, what=what)

    def _read(self) -> _Item:
        """The item now (strongly consistent), kept as this handle's last view of it."""
        self._seen = None
        with self._calling("reading the rotation ledger in"):
            answer = self._client.get_item(
                TableName=self._table, Key={KEY: {"S": self._ledger_id()}}, ConsistentRead=True
            )
        raw = answer.get("Item")
        if raw is None:
            self._seen = _Item()
            return self._seen
        try:
            record_text = raw.get("record", {}).get("S")
            holder_text = raw.get("holder", {}).get("S")
            expires_text = raw["expires_at"]["N"] if "expires_at" in raw else None
            self._seen = _Item(
                fence=int(raw.get("fence", {}).get("N", "0")),
                owner=raw.get("owner", {}).get("S"),
                expires_at=float(Decimal(expires_text)) if expires_text is not None else None,
                expires_text=expires_text,
                holder=HolderProcess.from_json(json.loads(holder_text)) if holder_text else None,
                record=json.loads(record_text) if record_text else None,
                record_version=int(raw.get("record_version", {}).get("N", "0")),
            )
            return self._seen
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupt(
                f"{self.where}: the item for {self._ledger_id()} cannot be read ({type(exc).__name__}): restore it, "
                "or, if no rotation is under way, delete it",
                store=self.name,
            ) from None

    def _update(self, expression: str, condition: str, values: dict[str, Any], *, action: str) -> None:
        """One conditional write; _Refused when its condition did not hold. What this handle saw is forgotten first
        (the caller says what the item is after a write that was applied)."""
        self._seen = None
        names = {name: name[1:] for name in ("#owner", "#record") if name in expression or name in condition}
        call: dict[str, Any] = {
            "TableName": self._table,
            "Key": {KEY: {"S": self._ledger_id()}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            call["ExpressionAttributeNames"] = names
        try:
            with self._calling(action):
                self._client.update_item(**call)
        except StoreError as exc:
            if error_code(exc.__cause__ or exc) == _REFUSED:
                raise _Refused from None
            raise

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """AWS errors translated; a missing table says how to make one."""
        try:
            with translated(action, self.where, store=self.name):
                yield
        except StoreNotFound as exc:
            if error_code(exc.__cause__ or exc) != "ResourceNotFoundException":
                raise
            raise StoreNotFound(
                f"{exc} (the ledger table {self._table} must exist in this account and region: the Terraform module "
                f"creates it; by hand: `aws dynamodb create-table --table-name {self._table} --attribute-definitions "
                f"AttributeName={KEY},AttributeType=S --key-schema AttributeName={KEY},KeyType=HASH "
                "--billing-mode PAY_PER_REQUEST`)",
                store=self.name,
            ) from exc.__cause__


def _holds(item: _Item, lease: Lease) -> bool:
    """Whether `item` holds exactly `lease` (its fencing number, under its owner)."""
    return item.fence == lease.fence and item.owner == lease.owner


class _Refused(Exception):
    """A conditional write whose condition did not hold; for a lease write, the lease it tried to take."""

    def __init__(self, lease: Lease | None = None) -> None:
        super().__init__()
        self.lease = lease
