"""How often a rotation reads its credential's record, and builds its context, before it first writes (issue 18).

One read to decide (is it due? unfinished? waiting out its grace window?) and one under the lease (the version the
first write names): a scheduled rotation reads the record at most twice and builds one `RotationContext` before its
STARTED record is written; a Lambda step reads it once. The stores are real (dotenv files, Secrets Manager and
DynamoDB on moto) and Bluum is the simulator: the counts are taken by wrapping the store's own `read_record` and
`write_record`, and the context's constructor, so they say what a run really did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backends.aws.store import AwsStore
from backends.env.store import EnvStore
from rotator.aws_lambda import entry as aws_lambda
from rotator.config.loader import load_config
from rotator.core.errors import ExitCode
from rotator.rotation import service as service_module
from rotator.rotation.context import RotationContext
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.integration.test_aws_lambda import Lambda, function
from tests.integration.test_fleet import fleet_workspace

__all__ = ["function"]  # the Lambda fixture, re-used


@dataclass
class Tally:
    """What one command did to the record and contexts, in order: "read", "write", "context"."""

    events: list[str] = field(default_factory=list)

    def before_first_write(self, kind: str) -> int:
        upto = self.events.index("write") if "write" in self.events else len(self.events)
        return self.events[:upto].count(kind)

    def clear(self) -> None:
        self.events.clear()


def counting(monkeypatch: pytest.MonkeyPatch, store_class: type[Any], *, store: str | None = None) -> Tally:
    """Count `store_class`'s record reads and writes (of the store called `store`, or all) and every context built."""
    tally = Tally()
    read, write = store_class.read_record, store_class.write_record

    def counted_read(self: Any) -> Any:
        if store is None or self.name == store:
            tally.events.append("read")
        return read(self)

    def counted_write(self: Any, record: dict[str, Any], **kwargs: Any) -> int:
        if store is None or self.name == store:
            tally.events.append("write")
        result: int = write(self, record, **kwargs)
        return result

    class CountedContext(RotationContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            tally.events.append("context")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(store_class, "read_record", counted_read)
    monkeypatch.setattr(store_class, "write_record", counted_write)
    monkeypatch.setattr(service_module, "RotationContext", CountedContext)
    return tally


@pytest.fixture
def due_app(sim: Simulator, tmp_path: Path) -> Path:
    """One investor credential `app0` in a dotenv file, rotated every 30 days, its seeded key counted as due."""
    config, _, _ = fleet_workspace(sim, tmp_path, 1)
    text = config.read_text().replace('grace = "0s"', 'grace = "0s"\nrotate_every = "30d"\nseeded_key_age = "due"')
    config.write_text(text)
    sim.configure(propagation_delay=0.0)
    return config


def scheduled(config: Path, clock: Callable[[], float] = time.time) -> str:
    """One scheduler tick for app0; what it said (it must have succeeded)."""
    with RotationService(load_config(config), clock=clock) as service:
        outcome = service.run_due("app0")
    assert outcome.exit_code is ExitCode.OK, outcome.message
    return outcome.message


def test_a_scheduled_rotation_reads_its_record_twice_and_builds_one_context_before_it_writes(
    due_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before issue 18: 4 reads (run_due, the grace check, the due check under the lease, the start) and 2 contexts
    (run_due's, rotate's)."""
    tally = counting(monkeypatch, EnvStore, store="app0")
    scheduled(due_app)  # the first: a seeded key, no record yet
    assert "write" in tally.events
    assert (tally.before_first_write("read"), tally.before_first_write("context")) == (2, 1), tally.events
    tally.clear()
    scheduled(due_app, clock=lambda: time.time() + 31 * 86400)  # a month on: the record says it is due again
    assert "write" in tally.events
    assert (tally.before_first_write("read"), tally.before_first_write("context")) == (2, 1), tally.events


def test_a_rotate_command_reads_its_record_twice_before_it_writes(
    due_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rotator rotate` reads to decide (its grace window) and under the lease; before: 3 (with only_if_due, as a
    scheduler that saw it due calls it), 2 (without)."""
    tally = counting(monkeypatch, EnvStore, store="app0")
    for only_if_due in (True, False):
        tally.clear()
        with RotationService(load_config(due_app)) as service:
            outcome = service.rotate("app0", only_if_due=only_if_due)
        assert outcome.exit_code is ExitCode.OK, outcome.message
        assert "write" in tally.events, outcome.message
        assert (tally.before_first_write("read"), tally.before_first_write("context")) == (2, 1), tally.events


def test_a_lambda_step_reads_its_record_once(function: Lambda, monkeypatch: pytest.MonkeyPatch) -> None:
    """createSecret read it twice before (under the lease, then again to start); setSecret and finishSecret once.
    testSecret asks once more, outside the lease, to tell Secrets Manager's configuration test from a rotation; the
    ledger answers the read under the lease from that one (test_lambda_ledger_requests.py counts DynamoDB's reads)."""
    tally = counting(monkeypatch, AwsStore)
    token = function.start_rotation()
    reads = {}
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        tally.clear()
        result = aws_lambda.handler(function.event(token, step))
        assert result["outcome"] == "ok", result
        reads[step] = (tally.before_first_write("read"), tally.events.count("read"), tally.events.count("context"))
    assert reads == {
        "createSecret": (1, 1, 1),
        "setSecret": (1, 1, 1),
        "testSecret": (2, 2, 1),
        "finishSecret": (1, 1, 1),
    }
