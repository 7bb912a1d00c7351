"""The paying-key lanes on the daemon's screen and in its metrics (`[fleet] lanes`, rotator/ops/lanes.py): which
lanes the last tick of this process held, and which it found held by another runner, so a person and a dashboard see
which host spends each tenant key, and that the waiting one waits on purpose.

Why a collector read at scrape time: the lanes a tick saw are kept with its runtime (`lanes.last_seen`), and a
rebuilt app (rotator.toml changed) brings a new runtime; reading through the attached one needs no bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rotator.rotation.runtime import Runtime

__all__ = ["LaneCollector", "lane_lines"]


def lane_lines(runtime: Runtime, tick: int) -> list[str]:
    """A line for each lane the last tick did not run: held by another runner (until when), or lost while running."""
    from rotator.core.timestamps import format_timestamp
    from rotator.ops.lanes import last_seen

    lines = []
    for seen in last_seen(runtime):
        if seen.lost is not None:
            lines.append(f"tick {tick}: {seen.lost}")
        elif not seen.here:
            holder = seen.holder or "another runner"
            until = f" until {format_timestamp(seen.until)}" if seen.until is not None else ""
            lines.append(
                f"tick {tick}: waiting: the lane of paying key {seen.payer} is held by {holder}{until}; its "
                "credentials run there (this daemon takes the lane over if it is not given up by then)"
            )
    return lines


class LaneCollector(Collector):
    """`bluum_rotator_lane_held{payer}`: 1 when this process held the paying key's lane in its last tick (and did not
    lose it), 0 when another runner held it (this one waited) or it was lost; absent with lanes off."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    def collect(self) -> Iterator[Metric]:
        from rotator.ops.lanes import last_seen

        held = GaugeMetricFamily(
            "bluum_rotator_lane_held",
            "1 when this process ran the paying key's lane in its last tick; 0 when another runner held it (this one "
            "waited) or this one lost it ([fleet] lanes).",
            labels=["payer"],
        )
        runtime = self.runtime
        for seen in last_seen(runtime) if runtime is not None else ():
            held.add_metric([seen.payer], 1.0 if seen.here and seen.lost is None else 0.0)
        yield held
