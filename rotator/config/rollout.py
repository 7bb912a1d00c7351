"""`reload_batch` and `health_timeout` in `[credentials.NAME]`: how a credential's reload actions roll out.

Kept apart from the rest of the credential table because they are about the applications, not the key: what they
mean is in rotator/rules/rollout.py (batches) and rotator/config/reloads.py (the `health` checks). Without them a
rotation runs every reload action at once, as it always did, with no extra record write and no extra request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from rotator.config.tables import Problems, Table
from rotator.core.durations import format_duration
from rotator.rules.rollout import BatchSize, parse_batch

if TYPE_CHECKING:
    from rotator.config.reloads import ReloadAction  # a type only: a file without reload actions never imports it

ROLLOUT_KEYS: Final = ("reload_batch", "health_timeout")
DEFAULT_HEALTH_TIMEOUT: Final = timedelta(seconds=60)
MAX_HEALTH_TIMEOUT: Final = timedelta(minutes=10)
"""One batch's checks are asked again until this is spent, with the credential's lease (15 minutes) renewed between
tries; like a reload action's timeout it stays well inside the lease."""


@dataclass(frozen=True, slots=True)
class Rollout:
    """How the reload actions of one credential run: in batches of `batch`, each batch's health checks given
    `health_timeout` to pass."""

    batch: BatchSize = field(default_factory=BatchSize)
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT


def parse_rollout(table: Table) -> Rollout | None:
    """The credential table's rollout keys; None when one is wrong (each problem is recorded)."""
    batch = BatchSize()
    if "reload_batch" in table.data:
        parsed = parse_batch(table.data["reload_batch"])
        if isinstance(parsed, str):
            table.problem(
                "reload_batch",
                parsed,
                'write reload_batch = 2 (actions per batch) or reload_batch = "25%" (a share of them), or leave it '
                "out to run every reload action at once",
            )
            return None
        batch = parsed
    timeout = table.duration("health_timeout", DEFAULT_HEALTH_TIMEOUT)
    if timeout is not None and not timedelta(0) < timeout <= MAX_HEALTH_TIMEOUT:
        table.problem(
            "health_timeout",
            f"must be longer than 0s and at most {format_duration(MAX_HEALTH_TIMEOUT)}: one batch's health checks are "
            "asked this long while the rotation holds the credential's lock",
            'write health_timeout = "60s"',
        )
        return None
    return None if timeout is None else Rollout(batch, timeout)


def check_rollouts(
    credentials: Mapping[str, tuple[Rollout, tuple[str, ...]]],
    reloads: Mapping[str, Sequence[ReloadAction]],
    problems: Problems,
) -> None:
    """A problem for each credential whose `reload_batch` cannot stagger anything: its targets (`credentials`: the
    rollout and the targets of each) have no reload action, or none with a `health` check to gate the next batch on
    (batches would only run one after the other, as without them)."""
    for name, (rollout, targets) in credentials.items():
        if not rollout.batch.staggered:
            continue
        actions = [action for target in targets for action in reloads.get(target, ())]
        tables = ", ".join(f"[stores.{target}]" for target in targets)
        if not actions:
            what = f"its stores ({', '.join(targets)}) have no reload actions to run in batches"
            fix = f"give `reload` actions to {tables}, or remove reload_batch"
        elif not any(action.health for action in actions):
            what = (
                "no reload action of its stores has a health check, so nothing gates one batch on the one before "
                "(batches would only run one after the other)"
            )
            fix = (
                f'add health = {{ url = "http://127.0.0.1:8080/healthz", status = 200 }} (or a command) to the reload '
                f"actions in {tables}, or remove reload_batch"
            )
        else:
            continue
        problems.add(f"credentials.{name}.reload_batch", what, fix)


def check_consumer_checks(
    targets: Mapping[str, tuple[str, ...]],
    reloads: Mapping[str, Sequence[ReloadAction]],
    consumers: Mapping[str, Collection[str]],
    problems: Problems,
) -> None:
    """A problem for each `health = { consumer = NAME }` that names no consumer of the action's credential
    (`targets`: each credential's stores; `consumers`: each credential's consumer names)."""
    for credential, stores in targets.items():
        known = consumers.get(credential, ())
        for store in stores:
            for index, action in enumerate(reloads.get(store, ())):
                if action.health is None or action.health.kind != "consumer" or action.health.consumer in known:
                    continue
                names = ", ".join(sorted(known)) or "none"
                named = action.health.consumer
                problems.add(
                    f"stores.{store}.reload[{index}].health.consumer",
                    f"{named!r} is not a consumer of credential {credential!r} (its consumers: {names})",
                    f"name one of them, or declare it in the `consumers` of [stores.{store}]",
                )
