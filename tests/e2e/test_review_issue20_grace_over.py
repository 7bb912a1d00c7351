"""`rotator status` once a grace window is over but the old key is not revoked yet (review of issue 20): no cron tick
ran since, or the revoke waits for a store it cannot read. The old key's line said "in grace" and "revoked at <a time
already past> (the grace window's end)", which reads as done; it now says the window ended and what revokes it."""

from __future__ import annotations

import json

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_status_grace import walk


def end_the_grace_window(ws: Workspace, seconds_ago: float) -> None:
    """Move the rotation record's grace window end `seconds_ago` into the past (as if an hour had gone by)."""
    path = ws.sidecar_path()
    document = json.loads(path.read_text())
    found = [node for node in walk(document) if isinstance(node, dict) and node.get("revoke_after")]
    assert len(found) == 1, f"expected one record with revoke_after in {path}"
    found[0]["revoke_after"] -= 3600 + seconds_ago
    path.write_text(json.dumps(document))


def test_status_says_a_grace_window_is_over_not_a_revoke_time_in_the_past(ws: Workspace):
    ws.write_config(grace="1h")
    old_key = ws.current_id()
    assert old_key is not None
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    end_the_grace_window(ws, 60)

    table = ws.run("status")
    assert table.returncode == ExitCode.OK, table.stderr
    under = next(line for line in table.stdout.splitlines() if line.startswith(" ") and old_key in line)
    assert "grace over" in under, under
    assert "in grace" not in under, under
    assert "its grace window ended at" in under, under
    assert "`rotator resume trading` (or the next scheduled run) revokes it" in under, under


def test_waiting_on_says_the_window_ended_instead_of_a_past_time(ws: Workspace):
    """WAITING ON repeated the record's "stays active until the grace window ends at <a time already past>" until the
    next run rewrote it; it now says the window ended and what revokes the old key (found by the review)."""
    ws.write_config(grace="1h")
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    inside = ws.run("status", "--json")
    row = next(item for item in json.loads(inside.stdout) if item["name"] == "trading")
    assert "stays active until the grace window ends at" in row["waiting"], row["waiting"]
    end_the_grace_window(ws, 60)

    after = ws.run("status", "--json")
    assert after.returncode == ExitCode.OK, after.stderr
    row = next(item for item in json.loads(after.stdout) if item["name"] == "trading")
    assert "stays active until" not in row["waiting"], row["waiting"]
    assert "the grace window ended at" in row["waiting"], row["waiting"]
    assert "`rotator resume trading` (or the next scheduled run) revokes the old key" in row["waiting"], row["waiting"]
