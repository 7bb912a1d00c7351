"""The Lambda's tick as the scheduler (ROTATOR_SCHEDULER=tick): the handler called as EventBridge calls it
(`{"rotator": "tick"}`) and as a person invokes it, boto3 on moto (server mode), Bluum the simulator.

With no Secrets Manager rotation rule, the tick decides as `rotator run-due` and the daemon decide: a due secret is
rotated through the rotator's own steps (AWSPENDING, then AWSCURRENT moved, the old key revoked on a later tick once
the grace has passed); a paused one, or one outside its allow window or inside a deny window, is not started and the
tick says why; a person's rotate event (an emergency too) is never gated; Secrets Manager's steps are refused. The
function's clock is moved by an offset on its runtime (as tests/integration/test_lambda_grace_start.py does), so the
grace and the rotation period pass without sleeping; nothing in a record is edited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.aws_lambda import entry as aws_lambda
from rotator.bluum.client import BluumClient
from rotator.core.model import Environment
from rotator.simulator import Simulator
from tests.aws_fixtures import Moto
from tests.integration.test_aws_lambda import STEPS, Lambda, deployed, pair_json
from tests.integration.test_lambda_grace_start import Clock

TICK = {"rotator": "tick"}
"""What the Terraform module's EventBridge rule sends."""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every service the function assembles (the tick's and a person's) reads the time from `clock`."""
    from rotator.aws_lambda import scheduler as tick_scheduler

    fake = Clock()
    for name in ("fleet_service", "service"):
        made = getattr(tick_scheduler, name)

        def timed(secrets: Any, made: Any = made) -> Any:
            app = made(secrets)
            app.service.runtime.clock = fake
            return app

        monkeypatch.setattr(tick_scheduler, name, timed)
    return fake


def ticking(
    moto: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str
) -> Iterator[Lambda]:
    """A function deployed with the tick as the scheduler (as the module's scheduler = "tick" sets it), plus `env`."""
    extra = {"ROTATOR_SCHEDULER": "tick", "ROTATOR_GRACE": "1h", **env}
    yield from deployed(moto, sim, monkeypatch, tmp_path, lambda fn: extra)


@pytest.fixture
def due(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    """The secret's key was put in by hand and is rotated at the first tick (the module's rotate_immediately)."""
    yield from ticking(moto_server, sim, monkeypatch, tmp_path, ROTATOR_SEEDED_KEY_AGE="due")


@pytest.fixture
def counted(moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lambda]:
    """The secret's key is dated from Bluum's key list at the first tick (the default), so due 90 days on."""
    yield from ticking(moto_server, sim, monkeypatch, tmp_path)


def minted(fn: Lambda) -> int:
    return len([k for k in fn.sim.keys() if k.get("owner") == fn.account.investor])


def only_row(tick: dict[str, Any]) -> dict[str, Any]:
    assert tick["outcome"] == "ok", tick
    (row,) = tick["secrets"]
    return dict(row)


def daily_at(offset: timedelta) -> str:
    """A cron expression that fires daily at now + `offset` (to the minute, UTC)."""
    when = datetime.now(UTC) + offset
    return f"{when.minute} {when.hour} * * *"


def test_the_tick_rotates_a_due_secret_and_revokes_the_old_key_after_the_grace(due: Lambda, clock: Clock) -> None:
    old = due.account.first.pair
    row = only_row(aws_lambda.handler(TICK))
    new = due.pair_at("AWSCURRENT")
    assert new.api_key != old.api_key, row
    assert due.works(new)
    assert due.works(old), "the overlap: the old key lives through the grace"
    assert due.pair_at("AWSPREVIOUS").api_key == old.api_key
    assert {"AWSCURRENT"} in due.labels().values()
    assert {"AWSPREVIOUS"} in due.labels().values()
    assert row["phase"] == "verified", row

    clock.offset = 600.0  # a tick inside the grace revokes nothing and starts nothing
    assert only_row(aws_lambda.handler(TICK))["phase"] == "verified"
    assert due.works(old)
    assert minted(due) == 2

    clock.offset = 3601.0
    row = only_row(aws_lambda.handler(TICK))
    assert row["phase"] == "completed", row
    assert not due.works(old), "the later tick revokes the old key once the grace has passed"
    assert due.works(due.pair_at("AWSCURRENT"))
    assert list(due.labels().values()) == [{"AWSCURRENT"}]
    assert minted(due) == 2, "one rotation, one new key"


def test_a_paused_secret_is_not_started_says_so_and_still_alerts_when_overdue(
    counted: Lambda, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fn = counted
    first = only_row(aws_lambda.handler(TICK))  # dates the key put in by hand: Bluum made it just now
    assert "not due" in first["message"], first
    paused = aws_lambda.handler(
        {"rotator": "pause", "secret_id": fn.secret, "reason": "quarter-end freeze", "until": "200d"}
    )
    assert paused["outcome"] == "ok", paused
    assert "paused by" in paused["message"], paused

    clock.offset = 92 * 86400.0  # past the 90-day period and the day's slack
    with caplog.at_level("WARNING", logger="rotator.lambda"):
        row = only_row(aws_lambda.handler(TICK))
    assert "due, but not started: paused by" in row["message"], row
    assert "quarter-end freeze" in row["message"], row
    assert minted(fn) == 1, "nothing minted"
    assert fn.pair_at("AWSCURRENT").api_key == fn.account.first.pair.api_key
    assert row["overdue"] is True
    alerts = [r for r in caplog.records if getattr(r, "fields", {}).get("metric") == "key_overdue"]
    assert len(alerts) == 1, [r.getMessage() for r in alerts]
    assert "quarter-end freeze" in alerts[0].getMessage()

    assert aws_lambda.handler({"rotator": "unpause", "secret_id": fn.secret})["outcome"] == "ok"
    row = only_row(aws_lambda.handler(TICK))
    assert row["phase"] == "verified", row
    assert fn.pair_at("AWSCURRENT").api_key != fn.account.first.pair.api_key


@pytest.mark.parametrize(
    ("windows", "said"),
    [
        ({"allow": [{"cron": daily_at(timedelta(hours=2)), "duration": "1h"}]}, "due, waiting: outside its allow"),
        ({"deny": [{"cron": daily_at(timedelta(minutes=-5)), "duration": "1h"}]}, "due, waiting: inside deny window"),
    ],
    ids=["outside-allow", "inside-deny"],
)
def test_a_due_secret_outside_its_windows_is_not_started(
    due: Lambda, monkeypatch: pytest.MonkeyPatch, windows: dict[str, Any], said: str
) -> None:
    monkeypatch.setenv("ROTATOR_WINDOWS", json.dumps({"timezone": "UTC", "starts_per_window": None, **windows}))
    row = only_row(aws_lambda.handler(TICK))
    assert said in row["message"], row
    assert "next allowed start" in row["message"], row
    assert minted(due) == 1
    assert list(due.labels().values()) == [{"AWSCURRENT"}]


def test_inside_an_allow_window_the_tick_rotates(due: Lambda, monkeypatch: pytest.MonkeyPatch) -> None:
    allow = [{"cron": daily_at(timedelta(minutes=-5)), "duration": "1h"}]
    monkeypatch.setenv("ROTATOR_WINDOWS", json.dumps({"timezone": "UTC", "allow": allow}))
    assert only_row(aws_lambda.handler(TICK))["phase"] == "verified"
    assert due.pair_at("AWSCURRENT").api_key != due.account.first.pair.api_key


def test_an_emergency_by_invoke_event_goes_on_inside_a_deny_window(due: Lambda, monkeypatch: pytest.MonkeyPatch):
    deny = [{"cron": daily_at(timedelta(minutes=-5)), "duration": "1h"}]
    monkeypatch.setenv("ROTATOR_WINDOWS", json.dumps({"timezone": "UTC", "deny": deny}))
    old = due.account.first.pair
    event = {"rotator": "rotate", "secret_id": due.secret, "emergency": True, "reason": "key in a public repo"}
    result = aws_lambda.handler(event)
    assert result["outcome"] == "ok", result
    assert "an emergency ignores rotation windows" in result["message"], result
    assert not due.works(old), "an emergency revokes the old key at once"
    new = due.pair_at("AWSCURRENT")
    assert new.api_key != old.api_key
    assert due.works(new)
    with pytest.raises(aws_lambda.LambdaConfigError, match="reason"):
        aws_lambda.handler({"rotator": "rotate", "secret_id": due.secret, "emergency": "yes"})


def test_secrets_managers_steps_are_refused_and_change_nothing(due: Lambda) -> None:
    token = due.start_rotation()
    with pytest.raises(aws_lambda.LambdaConfigError, match="ROTATOR_SCHEDULER=tick"):
        aws_lambda.handler(due.event(token, STEPS[0]))
    assert minted(due) == 1


def test_the_cap_spreads_a_fleet_that_fell_due_together(due: Lambda, monkeypatch: pytest.MonkeyPatch) -> None:
    fn = due
    with BluumClient(fn.sim.base_url) as bluum:
        second_key = bluum.create_investor_key(
            fn.account.tenant_pair,
            fn.account.investor,
            name="second",
            environment=Environment.SANDBOX,
            idempotency_key=uuid.uuid4().hex,
        )
    second = fn.sm.create_secret(
        Name=f"bluum/second-{uuid.uuid4().hex[:10]}",
        SecretString=pair_json(second_key.pair, fn.sim, investor_id=fn.account.investor),
    )["ARN"]
    monkeypatch.setenv("ROTATOR_SECRETS", fn.configured(fn.secret, second))
    monkeypatch.setenv("ROTATOR_WINDOWS", json.dumps({"starts_per_window": 1, "cap_window": "1h"}))
    rows = aws_lambda.handler(TICK)["secrets"]
    started = [row for row in rows if row["phase"] == "verified"]
    waiting = [row for row in rows if "due, waiting" in row["message"]]
    assert len(started) == 1, rows
    assert len(waiting) == 1, rows
    assert minted(fn) == 3, "two keys put in by hand, one rotation"


def test_a_secret_still_holding_the_placeholder_waits_for_its_key(due: Lambda) -> None:
    placeholder = json.dumps({"environment": "sandbox", "investor_id": due.account.investor})
    due.sm.put_secret_value(SecretId=due.secret, SecretString=placeholder)
    row = only_row(aws_lambda.handler(TICK))
    assert row["outcome"] == "no key yet", row
    assert "First rotation" in row["message"], row
    assert minted(due) == 1


@pytest.fixture
def default_mode(
    moto_server: Moto, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Lambda]:
    yield from deployed(moto_server, sim, monkeypatch, tmp_path)


def test_by_default_the_tick_starts_nothing_and_refuses_tick_only_settings(
    default_mode: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = default_mode
    assert aws_lambda.handler(TICK)["outcome"] == "ok"
    assert minted(fn) == 1, "Secrets Manager's rotation rule starts rotations: the tick only finishes them"
    with pytest.raises(aws_lambda.LambdaConfigError, match="is for ROTATOR_SCHEDULER=tick"):
        aws_lambda.handler({"rotator": "rotate", "secret_id": fn.secret, "reason": "now"})
    monkeypatch.setenv("ROTATOR_WINDOWS", json.dumps({"allow": [{"cron": "0 1 * * *", "duration": "4h"}]}))
    with pytest.raises(aws_lambda.LambdaConfigError, match="apply only with ROTATOR_SCHEDULER=tick"):
        aws_lambda.handler(TICK)


class LambdaContext:
    """The part of AWS's context object the tick reads: the invocation's remaining time."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_tick_short_of_time_leaves_the_secret_for_the_next_tick(due: Lambda) -> None:
    short = aws_lambda.handler(TICK, LambdaContext(20_000))  # less than ROTATOR_VERIFY_TIMEOUT (3s) + 30 s
    row = only_row(short)
    assert row["outcome"] == "next tick", row
    assert minted(due) == 1
    assert only_row(aws_lambda.handler(TICK, LambdaContext(300_000)))["phase"] == "verified"


def test_a_rotation_secrets_manager_started_is_finished_by_the_tick_after_the_switch(
    default_mode: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = default_mode
    old = fn.account.first.pair
    token = fn.start_rotation()
    for step in STEPS[:2]:  # createSecret and setSecret ran; then the module was applied with scheduler = "tick"
        aws_lambda.handler(fn.event(token, step))
    monkeypatch.setenv("ROTATOR_SCHEDULER", "tick")
    row = only_row(aws_lambda.handler(TICK))
    assert row["phase"] == "completed", row  # the grace is 0 here: confirmed and revoked in the same tick
    assert fn.labels()[token] == {"AWSCURRENT"}
    assert not fn.works(old)
    assert fn.works(fn.pair_at("AWSCURRENT"))
    assert minted(fn) == 2


def test_a_secret_another_runner_holds_is_left_to_it(due: Lambda, moto_server: Moto) -> None:
    from backends.ledger import held_lease
    from tests.integration.test_pause_lambda import ledger_of

    with held_lease(ledger_of(due, moto_server), "a person's rotate event", 60):
        row = only_row(aws_lambda.handler(TICK))  # no error: the holder finishes what it started
    assert row["outcome"] == "in progress", row
    assert "a person's rotate event" in row["message"], row
    assert minted(due) == 1
