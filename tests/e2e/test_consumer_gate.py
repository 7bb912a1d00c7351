"""The consumer gate end to end (issue 19): the CLI against the simulator over HTTP, real dotenv stores, small real
HTTP consumers on loopback serving rotator.attest's WSGI app, and a command consumer (a script).

What it proves: the old key is NOT revoked while a consumer reports the old key, is unreachable, hangs past its
timeout, answers junk or redirects; the rotation waits in VERIFIED during the grace window (exit 0) and in
AWAITING_CONSUMERS after it (exit 4, naming each consumer, what it reported, and the three choices); it IS revoked
once every consumer reports the new key (the next run); `--revoke-anyway --reason` revokes and names who breaks; an
emergency revokes at once and names the unmoved; a rollback from AWAITING_CONSUMERS puts the old key back. Every
command's output (and the history file, and every notification) goes through the leak guard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rotator.core.errors import ExitCode
from tests.attest_consumers import FakeConsumer, command_consumer
from tests.e2e.conftest import Workspace
from tests.recording_http import RecordingHandler, RecordingServer

HOOK_SECRET = "hook-signing-key-for-tests-0123456789"


@pytest.fixture
def consumers() -> Iterator[list[FakeConsumer]]:
    made: list[FakeConsumer] = []
    yield made
    for consumer in made:
        consumer.stop()


@pytest.fixture
def hook(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    """A webhook receiver on loopback: every notification the commands send."""

    def ok(handler: RecordingHandler) -> None:
        handler.send_response(204)
        handler.end_headers()

    server = RecordingServer(ok)
    monkeypatch.setenv("ROTATOR_TEST_HOOK", HOOK_SECRET)
    ws.guard.watch(HOOK_SECRET)
    ws.add_config(f'\n[notifications.hook]\nurl = "{server.url}/hook"\nsecret_env = "ROTATOR_TEST_HOOK"\n')
    yield server
    server.stop()


def notifications(hook: RecordingServer, ws: Workspace) -> list[dict[str, Any]]:
    bodies = [json.loads(body) for _, _, _, body in hook.seen]
    ws.guard.check(json.dumps(bodies), "notifications")
    return bodies


def consumer(made: list[FakeConsumer], name: str, key: str) -> FakeConsumer:
    found = FakeConsumer(name, key)
    made.append(found)
    return found


def gate(ws: Workspace, entries: list[str], *, grace: str = "0s", wait: str = "1s") -> None:
    """Give the `app` store these consumers and the credential a short consumer_wait (a [notifications] table
    added before stays)."""
    text = ws.config.read_text()
    kept = text[text.index("\n[notifications.") :] if "\n[notifications." in text else ""
    ws.write_config(grace=grace)
    ws.add_config(kept)
    listed = ",\n  ".join(entries)
    ws.edit_config('path = "app.env"\n', f'path = "app.env"\nconsumers = [\n  {listed},\n]\n')
    ws.edit_config('rotate_every = "90d"\n', f'rotate_every = "90d"\nconsumer_wait = "{wait}"\n')


def row(ws: Workspace) -> dict[str, Any]:
    result = ws.cli("status", "--json")
    rows: dict[str, dict[str, Any]] = {r["name"]: r for r in json.loads(result.stdout)}
    return rows["trading"]


def history_text(ws: Workspace) -> str:
    result = ws.cli("history", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    ws.guard.check((ws.root / "rotator-history" / "trading.jsonl").read_text(), "history file")
    return result.output


def old_key_alive(ws: Workspace) -> bool:
    return ws.first.info.id in ws.active_ids() and ws.works(ws.first.pair)


def test_within_the_grace_window_the_old_key_waits_until_every_consumer_reports_the_new_key(
    ws: Workspace, consumers: list[FakeConsumer]
) -> None:
    trader = consumer(consumers, "trader-1", ws.first.pair.api_key)
    gate(ws, [trader.entry()], grace="1h")

    first = ws.cli("rotate", "trading")
    assert first.exit_code == ExitCode.OK, first.output
    assert "0 of 1 consumers report the new key; trader-1 (store app): reports the old key" in first.output
    assert old_key_alive(ws)
    assert row(ws)["stage"] == "verified"
    assert "trader-1 (store app): reports the old key" in row(ws)["consumers"]

    hurried = ws.cli("resume", "trading", "--now")  # skips the grace window, not the consumers
    assert hurried.exit_code == ExitCode.INCOMPLETE, hurried.output
    assert "`rotator resume trading --revoke-anyway --reason TEXT`" in hurried.output
    assert old_key_alive(ws)
    assert row(ws)["stage"] == "awaiting_consumers"

    trader.load(ws.pair_in().api_key)  # the application reloaded
    second = ws.cli("resume", "trading")
    assert second.exit_code == ExitCode.OK, second.output
    assert "all 1 consumer(s) report the new key" in second.output
    assert "stays active until the grace window ends" in second.output
    assert old_key_alive(ws), "the grace window still holds the old key"

    third = ws.cli("resume", "trading", "--now")
    assert third.exit_code == ExitCode.OK, third.output
    assert ws.active_ids() == {ws.current_id()}
    shown = history_text(ws)
    assert "trader-1 (store app): reports the old key" in shown
    assert "all 1 consumer(s) report the new key" in shown


def test_past_the_grace_window_no_consumer_that_is_not_on_the_new_key_lets_the_old_key_go(
    ws: Workspace, consumers: list[FakeConsumer], hook: RecordingServer
) -> None:
    old = ws.first.pair.api_key
    trader = consumer(consumers, "trader-1", old)
    hanging = consumer(consumers, "hanging", old)
    hanging.mode = "hang"
    junk = consumer(consumers, "junk", old)
    junk.mode = "malformed"
    bouncing = consumer(consumers, "bouncing", old)
    bouncing.mode = "redirect"
    gone = consumer(consumers, "gone", old)
    gone.stop()
    entries = [c.entry() for c in (trader, hanging, junk, bouncing, gone)]
    gate(ws, [*entries, command_consumer(ws.root, old)])

    held = ws.cli("rotate", "trading")
    assert held.exit_code == ExitCode.INCOMPLETE, held.output
    assert old_key_alive(ws), "nothing is revoked while any consumer is not on the new key"
    for line in (
        "trader-1 (store app): reports the old key",
        "hanging (store app): unreachable: timed out after 1s",
        "junk (store app): malformed answer",
        "bouncing (store app): unreachable: HTTP 307 (expected 200)",
        "gone (store app): unreachable: no answer (ConnectError)",
        "nightly (store app): reports the old key",
        "0 of 6 consumers report the new key",
        "`rotator resume trading` keeps waiting",
        "`rotator rollback trading`",
        "`rotator resume trading --revoke-anyway --reason TEXT`",
    ):
        assert line in held.output, line
    status = row(ws)
    assert status["stage"] == "awaiting_consumers"
    assert "gone (store app): unreachable" in status["waiting"]
    alerts = [n for n in notifications(hook, ws) if n["subject"] == "consumers_unmoved"]
    assert len(alerts) == 1, [(n["event"], n["subject"]) for n in notifications(hook, ws)]
    assert "hanging (store app): unreachable" in alerts[0]["message"]

    textfile = ws.root / "bluum_rotator.prom"
    again = ws.cli("run-due", "--metrics-textfile", str(textfile))  # the next tick asks again: no second page
    assert again.exit_code == ExitCode.INCOMPLETE, again.output
    assert old_key_alive(ws)
    gauge = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(textfile.read_text())
        if family.name == "bluum_rotator_consumers"
        for sample in family.samples
        if sample.labels["credential"] == "trading"
    }
    assert gauge == {"attested": 0, "unattested": 6}
    table = ws.cli("status")
    assert "consumers: 0 of 6 consumers report the new key" in table.output or "0 of 6 consumers" in table.output
    assert len([n for n in notifications(hook, ws) if n["subject"] == "consumers_unmoved"]) == 1

    new = ws.pair_in().api_key
    for moved in (trader, hanging, junk, bouncing):
        moved.mode = "answer"
        moved.load(new)
    back = consumer(consumers, "gone", new)  # the consumer came back on another port
    ws.edit_config(gone.url, back.url)
    (ws.root / "command-consumer.key").write_text(new)
    done = ws.cli("run-due")  # the next tick finds them all on the new key and finishes
    assert done.exit_code == ExitCode.OK, done.output
    assert "rotation complete" in done.output
    assert ws.active_ids() == {ws.current_id()}
    assert not ws.works(ws.first.pair)


def test_revoke_anyway_needs_a_reason_then_revokes_and_names_who_breaks(
    ws: Workspace, consumers: list[FakeConsumer], hook: RecordingServer
) -> None:
    """Through the real console entry point (`ws.run`: stdout and stderr captured apart, both leak-guarded)."""
    trader = consumer(consumers, "trader-1", ws.first.pair.api_key)
    gate(ws, [trader.entry()])
    held = ws.run("rotate", "trading")
    assert held.returncode == ExitCode.INCOMPLETE, held.stderr
    assert "trader-1 (store app): reports the old key" in held.stdout + held.stderr

    before = ws.snapshot()
    for wrong in (["--revoke-anyway"], ["--reason", "x"], ["--revoke-anyway", "--reason", " "]):
        refused = ws.run("resume", "trading", *wrong)
        assert refused.returncode == ExitCode.BAD_INPUT, refused.stderr
        assert "--revoke-anyway" in refused.stderr
    refused = ws.run("resume", "tenant", "--revoke-anyway", "--reason", "no consumers here")
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stderr
    assert ws.snapshot() == before
    assert old_key_alive(ws)

    forced = ws.run("resume", "trading", "--revoke-anyway", "--reason", "ticket 7: trader-1 is retired")
    assert forced.returncode == ExitCode.OK, forced.stderr
    assert ws.active_ids() == {ws.current_id()}
    shown = forced.stdout + forced.stderr
    assert "revoked anyway: ticket 7: trader-1 is retired" in shown
    assert "trader-1 (store app): reports the old key" in shown
    assert "revoking the old key anyway" in history_text(ws)
    told = [n["message"] for n in notifications(hook, ws) if n["subject"] == "consumers_unmoved"]
    assert any("revoked anyway" in m and "trader-1 (store app)" in m for m in told), told


def test_an_emergency_revokes_at_once_and_names_the_consumers_not_on_the_new_key(
    ws: Workspace, consumers: list[FakeConsumer], hook: RecordingServer
) -> None:
    trader = consumer(consumers, "trader-1", ws.first.pair.api_key)
    other = consumer(consumers, "other", "pk_test_some_other_key")  # reports a key of neither: named too
    gate(ws, [trader.entry(), other.entry()], grace="1h")
    ws.excuse(ws.first.pair)
    result = ws.cli("rotate", "trading", "--emergency", "--reason", "key pasted in a ticket")
    assert result.exit_code == ExitCode.OK, result.output
    assert ws.active_ids() == {ws.current_id()}, "an emergency does not wait for consumers"
    assert "emergency: key pasted in a ticket" in result.output
    assert "trader-1 (store app): reports the old key" in result.output
    assert "other (store app): reports another key" in result.output
    told = [n["message"] for n in notifications(hook, ws) if n["subject"] == "consumers_unmoved"]
    assert any("trader-1 (store app): reports the old key" in m for m in told), told


def test_a_rollback_from_awaiting_consumers_puts_the_old_key_back(ws: Workspace, consumers: list[FakeConsumer]) -> None:
    trader = consumer(consumers, "trader-1", ws.first.pair.api_key)
    gate(ws, [trader.entry()])
    assert ws.cli("rotate", "trading").exit_code == ExitCode.INCOMPLETE
    new_pair = ws.pair_in()
    ws.excuse(new_pair)

    result = ws.cli("rollback", "trading")
    assert result.exit_code == ExitCode.OK, result.output
    assert ws.current_id() == ws.first.info.id
    assert ws.active_ids() == {ws.first.info.id}
    assert not ws.works(new_pair)
    assert row(ws)["stage"] == "rolled back"


def test_step_by_step_the_revoke_step_waits_for_the_consumers_too(ws: Workspace, consumers: list[FakeConsumer]) -> None:
    """An orchestrator (`rotator step`, the Lambda's way) gets the same gate: `revoke` asks the consumers first."""
    trader = consumer(consumers, "trader-1", ws.first.pair.api_key)
    gate(ws, [trader.entry()])
    token = "orchestrated-rotation-0001"
    for name in ("create", "stage", "accept", "promote", "confirm"):
        done = ws.cli("step", "trading", name, "--token", token)
        assert done.exit_code == ExitCode.OK, done.output
    held = ws.cli("step", "trading", "revoke", "--token", token)
    assert held.exit_code == ExitCode.INCOMPLETE, held.output
    assert "trader-1 (store app): reports the old key" in held.output
    assert old_key_alive(ws)
    again = ws.cli("step", "trading", "confirm", "--token", token)
    assert again.exit_code == ExitCode.OK, again.output
    assert "done already" in again.output

    trader.load(ws.pair_in().api_key)
    revoked = ws.cli("step", "trading", "revoke", "--token", token)
    assert revoked.exit_code == ExitCode.OK, revoked.output
    assert ws.active_ids() == {ws.current_id()}
