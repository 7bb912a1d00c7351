"""`rotator plan` during a grace window (review of issue 20): the schedule line is the new key's, with its own age and
due date, as `rotator status` shows it; the old key still active is named, with when it is revoked.

Before, plan printed the new key's id with the old key's age ("40d old") and the old key's due date, and its fix for
the unfinished rotation was a plain `rotator resume NAME`, which does nothing until the grace window ends.
"""

from __future__ import annotations

import json
import re
import time

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_status_grace import DAY, into_grace


def test_plan_in_the_grace_window_gives_the_new_key_its_own_age_and_names_the_old_key(ws: Workspace):
    old_key, new_key = into_grace(ws)

    planned = ws.run("plan", "trading", "--json")
    assert planned.returncode == ExitCode.OK, planned.stderr
    schedule = [f for f in json.loads(planned.stdout)["findings"] if f["part"] == "schedule"]
    key_line = next(f["problem"] for f in schedule if f["problem"].startswith("current key"))
    assert re.fullmatch(rf"current key {new_key}: \d+s old, due \S+", key_line), key_line
    due = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 90 * DAY))
    assert f"due {due}" in key_line, "the due date counts from the new key"

    unfinished = next(f for f in schedule if "unfinished" in f["problem"])
    assert (
        f"the old key {old_key} (40d old) is still active at Bluum until the grace window ends at"
        in (unfinished["problem"])
    )
    assert "`--now` at once" in unfinished["fix"]
