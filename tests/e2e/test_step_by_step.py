"""A rotation driven the way AWS Secrets Manager drives a rotation Lambda: one process per step, each step sent
twice (AWS retries), a crash in the middle of some of them, a token the caller brings (an AWS version id, 36
characters). Between any two processes I1–I4 hold: every target's key works (the sampler watches), no key is
lost, at most two keys are active, and nothing is an orphan that is not the unfinished rotation's own.
"""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import assert_rotated, current_everywhere, record, said

pytestmark = pytest.mark.slow

AWS_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
CRASH_IN = {  # a SIGKILL in the middle of these steps (after its change, before its record), then the step again
    "createSecret": "pending.store",
    "setSecret": "stage.mirror",
    "finishSecret": "promote.app",
}


def invariants_hold(ws: Workspace) -> None:
    """I2–I4 from outside (I1 is the sampler's): the first key stays until the end, at most two active keys, and
    every active key is current somewhere or is the unfinished rotation's."""
    active = ws.active_ids()
    assert len(active) <= 2, f"I4: {len(active)} active keys"
    assert ws.first.info.id in active, "I2: the old key was revoked before the rotation was finished"
    sweep = ws.run("sweep", "--json")
    assert sweep.returncode == ExitCode.OK, said(sweep)
    orphans = [f for f in json.loads(sweep.stdout) if f["kind"] == "orphan"]
    assert orphans == [], f"I3: {orphans}"


def test_the_four_aws_steps_as_separate_processes_each_twice_with_crashes(ws: Workspace):
    token = str(uuid.uuid4())  # AWS's ClientRequestToken: 36 characters
    for name in AWS_STEPS:
        if name in CRASH_IN:
            crashed = ws.run("step", "trading", name, "--token", token, env={CRASH_ENV: CRASH_IN[name]})
            assert crashed.returncode == -signal.SIGKILL, said(crashed)
            invariants_hold(ws)
        for attempt in (1, 2):
            done = ws.run("step", "trading", name, "--token", token)
            assert done.returncode == ExitCode.OK, f"{name} #{attempt}: {said(done)}"
            if attempt == 2 and name not in CRASH_IN:
                assert "done already" in said(done), said(done)
            invariants_hold(ws)
        assert record(ws)["token"] == token
    # finishSecret made the new key current everywhere; the old one still works (overlap) until the tick.
    new_id = current_everywhere(ws)
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.works(ws.first.pair)
    assert record(ws)["phase"] == "deployed"
    assert len([k for k in ws.investor_keys() if k["id"] != ws.first.info.id]) == 1, "one key made for one token"

    finished = ws.run("resume", "trading")  # the scheduled tick: confirm, grace (0s here), revoke, prove, clear
    assert finished.returncode == ExitCode.OK, said(finished)
    assert_rotated(ws)


def test_a_step_out_of_order_is_refused_and_changes_nothing(ws: Workspace):
    token = str(uuid.uuid4())
    files, keys = ws.snapshot(), ws.sim.keys()
    early = ws.run("step", "trading", "testSecret", "--token", token)
    assert early.returncode == ExitCode.BAD_INPUT, said(early)
    assert "start it with step create" in said(early)
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys

    assert ws.run("step", "trading", "createSecret", "--token", token).returncode == ExitCode.OK
    skipped = ws.run("step", "trading", "finishSecret", "--token", token)
    assert skipped.returncode == ExitCode.BAD_INPUT, said(skipped)
    assert "next step is stage" in said(skipped)
    assert record(ws)["phase"] == "pending_stored"


def test_a_second_token_while_one_rotation_is_unfinished_is_in_progress(ws: Workspace):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert ws.run("step", "trading", "createSecret", "--token", first).returncode == ExitCode.OK
    other = ws.run("step", "trading", "createSecret", "--token", second)
    assert other.returncode == ExitCode.IN_PROGRESS, said(other)
    assert first[:8] in said(other)
    assert record(ws)["token"] == first


def test_a_token_that_cannot_key_a_rotation_is_refused(ws: Workspace):
    files = ws.snapshot()
    proc = ws.run("step", "trading", "createSecret", "--token", "has:colon")
    assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
    assert "rotation token" in said(proc)
    assert ws.snapshot() == files
