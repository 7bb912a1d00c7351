"""RecordKeeper.recall: a command that read the record under its lease to decide does not read it again to start."""

from __future__ import annotations

from backends.ledger import VersionedRecord
from backends.memory import MemoryStore
from rotator.rotation.driver import RecordKeeper
from rotator.rules.record import Phase, RotationRecord


class CountedReads(MemoryStore):
    reads = 0

    def read_record(self) -> VersionedRecord:
        self.reads += 1
        return super().read_record()


def record(phase: Phase) -> RotationRecord:
    return RotationRecord(credential="app", token="a" * 32, phase=phase, issuer="bluum", started_at=1.0, updated_at=1.0)


def test_recall_gives_the_record_read_under_the_lease_until_the_keeper_writes() -> None:
    ledger = CountedReads("app")
    with RecordKeeper(ledger, "runner 1") as keeper:
        assert keeper.recall(store="app") is None
        assert ledger.reads == 1, "nothing read before: recall reads"
        keeper.write(record(Phase.STARTED))
        assert keeper.recall(store="app") == record(Phase.STARTED)
        assert ledger.reads == 2, "written since: recall reads again"
        assert keeper.recall(store="app") == record(Phase.STARTED)
        assert ledger.reads == 2, "read once, recalled without a read"
        keeper.write(record(Phase.PENDING_STORED))  # the version recalled is the one written with
    with RecordKeeper(ledger, "runner 2") as keeper:
        assert keeper.recall(store="app") == record(Phase.PENDING_STORED)
        assert ledger.reads == 3, "a new lease reads anew"
