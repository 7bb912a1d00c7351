"""Rotation windows through the real CLI against the simulator: `run-due` outside an allow window (or inside a deny
window) starts nothing and says when it may; inside, it rotates; a person's `rotate` inside a deny window rotates
and says it ignored the window; `status` says when the next allowed start is and why a due key waits.

The windows are written around the real clock (the CLI reads it): a daily cron that opened a few minutes ago (open
now) or opens in two hours (closed now), in UTC.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.test_cli_rotation import assert_rotated
from tests.e2e.test_fleet_cli import add_investor_credential


def daily_at(offset: timedelta) -> str:
    """A cron expression that fires daily at now + `offset` (to the minute, UTC)."""
    when = datetime.now(UTC) + offset
    return f"{when.minute} {when.hour} * * *"


def due_with_windows(ws: Workspace, windows: str) -> None:
    """trading's seeded key is due at the first scheduled run; `windows` is its [credentials.trading.windows]."""
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\nseeded_key_age = "due"')
    ws.add_config(f'\n[credentials.trading.windows]\ntimezone = "UTC"\n{windows}\n')


def test_run_due_outside_an_allow_window_starts_nothing_and_says_when(ws: Workspace) -> None:
    opens = daily_at(timedelta(hours=2))
    due_with_windows(ws, f'allow = [{{ cron = "{opens}", duration = "1h" }}]')
    tick = ws.cli("run-due")
    assert tick.exit_code == ExitCode.OK, tick.output
    assert "trading: due, waiting: outside its allow windows" in tick.output
    assert "next allowed start" in tick.output
    assert ws.active_ids() == {ws.first.info.id}  # nothing minted
    assert ws.current_id() == ws.first.info.id
    row = next(r for r in json.loads(ws.cli("status", "--json").stdout) if r["name"] == "trading")
    assert row["waiting"].startswith("due, waiting: outside its allow windows")
    expected = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    assert abs(datetime.fromisoformat(row["next_start"].replace("Z", "+00:00")) - expected) < timedelta(minutes=2)


def test_run_due_inside_an_allow_window_rotates(ws: Workspace) -> None:
    due_with_windows(ws, f'allow = [{{ cron = "{daily_at(timedelta(minutes=-5))}", duration = "1h" }}]')
    tick = ws.cli("run-due")
    assert "of trading started" in tick.output, tick.output
    assert ws.current_id() != ws.first.info.id


def test_run_due_inside_a_deny_window_starts_nothing(ws: Workspace) -> None:
    due_with_windows(ws, f'deny = [{{ cron = "{daily_at(timedelta(minutes=-5))}", duration = "1h" }}]')
    tick = ws.cli("run-due")
    assert tick.exit_code == ExitCode.OK, tick.output
    assert "trading: due, waiting: inside deny window" in tick.output
    assert ws.active_ids() == {ws.first.info.id}


def test_a_persons_rotate_inside_a_deny_window_rotates_and_says_it_ignored_the_window(ws: Workspace) -> None:
    ws.write_config(grace="1s")
    due_with_windows(ws, f'deny = [{{ cron = "{daily_at(timedelta(minutes=-5))}", duration = "1h" }}]')
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    assert "a person's rotate ignores rotation windows" in result.output
    assert "inside deny window" in result.output
    time.sleep(1.1)
    ws.cli("resume", "trading")
    assert_rotated(ws)


def test_an_emergency_inside_a_deny_window_rotates_and_says_so(ws: Workspace) -> None:
    due_with_windows(ws, f'deny = [{{ cron = "{daily_at(timedelta(minutes=-5))}", duration = "1h" }}]')
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "leaked in a log")
    assert result.exit_code == ExitCode.OK, result.output
    assert "an emergency ignores rotation windows" in result.output
    assert_rotated(ws)


def test_a_key_bluum_lists_with_an_expiry_is_due_before_it_expires(ws: Workspace) -> None:
    """Keys minted with a life of 7 days and 4 seconds (the simulator's key_ttl) are due expiry_lead (7 days) before
    they expire, though rotate_every is 90 days: 4 seconds after the first rotation, run-due rotates again."""
    ws.write_config(grace="1s")
    ws.sim.configure(key_ttl=7 * 86400 + 4)
    started = time.monotonic()
    assert ws.cli("rotate", "trading").exit_code == ExitCode.OK
    time.sleep(1.1)
    assert "rotation complete" in ws.cli("run-due").output
    rotated = ws.current_id()
    record = json.loads(ws.sidecar_path("app.env").read_text())["record"]
    assert record["expires_at"] is not None  # Bluum's expires_at, carried in the record
    assert "trading: not due" in ws.cli("run-due").output
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))
    tick = ws.cli("run-due")
    assert "of trading started" in tick.output, tick.output
    assert ws.current_id() != rotated


def test_one_run_due_over_a_fleet_due_together_starts_no_more_than_the_cap(ws: Workspace) -> None:
    """Four investor keys of one tenant key, all due at once, rotated by one `run-due` (threads, one lane per paying
    key): starts_per_window = 2 lets two start; the others wait for the next window and say so; the next run in the
    same window starts none."""
    for name in ("reports", "ledger", "billing"):
        add_investor_credential(ws, name)
        ws.edit_config(f'store = "{name}"\n', f'store = "{name}"\nseeded_key_age = "due"\n')
    due_with_windows(ws, 'starts_per_window = 2\ncap_window = "1d"')
    for name in ("reports", "ledger", "billing"):
        ws.add_config(f'\n[credentials.{name}.windows]\nstarts_per_window = 2\ncap_window = "1d"\n')
    tick = said_lines(ws.cli("run-due").output)
    assert len([line for line in tick if ": rotation complete;" in line]) == 2, tick
    assert (
        len([line for line in tick if "already in this window for its paying key (starts_per_window = 2)" in line]) == 2
    )
    again = said_lines(ws.cli("run-due").output)
    assert len([line for line in again if "already in this window for its paying key" in line]) == 2, again
    assert not [line for line in again if ": rotation complete;" in line]  # the second run, in the window, starts none


def said_lines(output: str) -> list[str]:
    """The command's own lines (one per credential): not the JSON log lines, nor the indented step lines."""
    return [line for line in output.splitlines() if line and not line.startswith(("{", " "))]
