"""The Lambda's ticks record what changed, not that they ran (issue 20, "found when tried as a new user would").

Each scheduled tick resumes the managed secret's rotation; while it waits out its grace window, each tick used to
add `resumed` and `waiting` to the history (and send both to the notification sinks). Played as Secrets Manager
plays it (tests/integration/test_lambda_grace_start.py): the four steps on moto and the simulator, then ticks at
chosen times on the function's clock.
"""

from __future__ import annotations

import json
from pathlib import Path

from rotator.aws_lambda import entry as aws_lambda
from tests.integration.test_aws_lambda import STEPS, Lambda
from tests.integration.test_lambda_grace_start import GRACE, Clock, clock, function

__all__ = ["clock", "function"]  # the fixtures, from the grace-window test


def history(folder: Path) -> list[str]:
    """Every history entry the function wrote (TMPDIR/rotator-history), as `event/step`."""
    found = []
    for path in sorted((folder / "rotator-history").glob("*.jsonl")):
        entries = map(json.loads, path.read_text().splitlines())
        found += [f"{entry['event']}/{entry.get('step', '')}" for entry in entries]
    return found


def test_ticks_in_the_grace_window_add_nothing_and_the_revoking_tick_adds_its_entries_once(
    function: Lambda, clock: Clock, tmp_path: Path
) -> None:
    old = function.account.first.pair
    token = function.start_rotation()
    for step in STEPS:
        aws_lambda.handler(function.event(token, step))
    clock.offset = GRACE - 600
    aws_lambda.handler({"rotator": "tick"})  # confirms the rotation: that is a change, and it is recorded
    confirmed = history(tmp_path)
    assert confirmed[-1] == "waiting/grace", confirmed

    for minutes_left in (8, 6, 4):
        clock.offset = GRACE - minutes_left * 60
        aws_lambda.handler({"rotator": "tick"})
        assert history(tmp_path) == confirmed, f"a tick {minutes_left} minutes before the window ends wrote history"
    assert function.works(old)

    clock.offset = GRACE + 60
    aws_lambda.handler({"rotator": "tick"})
    assert not function.works(old)
    added = history(tmp_path)[len(confirmed) :]
    assert added[0] == "resumed/resume", added
    assert added[-1].startswith("completed/"), added
    assert [entry.split("/")[0] for entry in added].count("resumed") == 1, added
    assert "waiting/grace" not in added, added
