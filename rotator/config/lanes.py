"""`[fleet] lanes`: whether a scheduler tick takes a lease per paying key before it runs that key's credentials.

Why a switch, off by default: a lane is a lease in the paying key's primary store (rotator/ops/lanes.py), at a place
of its own (Vault `<state_path>.lane`, the DynamoDB item `<secret ARN>#lane`, `<file>.lane.rotator.lock`): a
deployment whose Vault policy names its two paths exactly must allow the third first, or every tick would fail on
it. One runner alone needs no lane; turn it on where several runners (hosts, a daemon and cron) share a tenant key.
Parsed here, not in config/settings.py, so the `[fleet]` table grows by a call, not by a module's worth of lines.
"""

from __future__ import annotations

from typing import Final

from rotator.config.tables import Table, show

__all__ = ["LANE_KEYS", "parse_lanes"]

LANE_KEYS: Final = ("lanes",)


def parse_lanes(table: Table) -> bool | None:
    """`lanes` of the `[fleet]` table (default false); None after a problem, recorded in the table's problems."""
    value = table.data.get("lanes", False)
    if isinstance(value, bool):
        return value
    table.problem(
        "lanes",
        f"expected true or false, got {show(value)}",
        "write lanes = true (runners on several hosts share a tenant key) or leave it out",
    )
    return None
