"""`rotator status` during a grace window shows each key with its own age (issue 20, "found when tried as a new
user would").

The stores' CURRENT is the new key from promote on, but the age came from the record's `current_since`, which is the
old key's until the rotation completes: a key made a second ago showed as 40 days old (and its next due date as the
old key's). Now the row is the new key with its own age, and a line under it is the old key, in grace, with its age
and when it is revoked.
"""

from __future__ import annotations

import json
import re

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace

DAY = 86400.0


def age_the_current_key(ws: Workspace, days: float) -> None:
    """Date the current key `days` back in the rotation record (as if its rotation had completed then)."""
    path = ws.sidecar_path()
    text = path.read_text()
    document = json.loads(text)
    found = [node for node in walk(document) if isinstance(node, dict) and "current_since" in node]
    assert len(found) == 1, f"expected one record with current_since in {path}"
    found[0]["current_since"] -= days * DAY
    path.write_text(json.dumps(document))


def walk(node: object):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def into_grace(ws: Workspace) -> tuple[str | None, str | None]:
    """A rotated key dated 40 days back, then a rotation with a 1 h grace window: (the old key, the new key)."""
    ws.write_config(grace="0s")
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    old_key = ws.current_id()
    age_the_current_key(ws, 40)
    ws.write_config(grace="1h")
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    new_key = ws.current_id()
    assert new_key != old_key
    return old_key, new_key


def test_status_in_the_grace_window_shows_each_key_with_its_own_age(ws: Workspace):
    old_key, new_key = into_grace(ws)

    shown = ws.run("status", "--json")
    assert shown.returncode == ExitCode.OK, shown.stderr
    row = next(r for r in json.loads(shown.stdout) if r["name"] == "trading")
    assert row["current_key"] == new_key
    assert 0 <= row["age_seconds"] < 600, "the new key's age is its own, not the old key's"
    assert row["previous_key"] == old_key
    assert 40 * DAY <= row["previous_age_seconds"] < 40 * DAY + 600
    assert row["grace_until"] is not None
    assert row["next_due"].startswith(_in_days(row, 90)), "the next due date counts from the new key"

    table = ws.run("status").stdout.splitlines()
    current = next(line for line in table if line.startswith("trading "))
    assert re.search(rf"{new_key}\s+\d+s\s", current), current
    under = table[table.index(current) + 1]
    assert re.search(rf"^\s+{old_key}\s+40d\s+in grace\s", under), under
    assert "previous key, still active at Bluum; revoked at " in under
    assert "`rotator resume trading --now`" in under


def _in_days(row: dict[str, object], days: int) -> str:
    """The date `days` after the grace window's start (the new key verified then), as status prints it: YYYY-MM-DD."""
    import time

    stamp = float(row["grace_until"]) - 3600 + days * DAY  # type: ignore[arg-type]
    return time.strftime("%Y-%m-%d", time.gmtime(stamp))
