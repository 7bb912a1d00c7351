"""Fencing, end to end: a runner that was frozen past its lease changes nothing once thawed (issue 17, first half).

Runner A is a real `rotator` subprocess, frozen with SIGSTOP (parked at a fault point first, so the freeze lands
exactly there, or in the middle of a wait); the lease is short (`[ledger] lease_ttl`). Runner B is another "host":
`unshare --uts` with another host name, so B cannot judge A by its PID and has to wait for A's lease like a machine
elsewhere would; it takes over with `resume`, `rollback` or `rotate`. Then A is thawed (SIGCONT). Each test checks:
A exits 3 saying why, nothing changed after A lost its lease (store contents, the files, Bluum's key list, and no
request at all from A in the simulator's request log), and I1 (the workspace's sampler probes every target all
through). The env store's lease is a `flock`, which a frozen process keeps: there B is refused, and A, thawed,
still stops (its lease ran out on its clocks), leaving the rotation to `resume`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from tests.aws_fixtures import Moto
from tests.e2e.conftest import Workspace
from tests.e2e.test_aws_cli import AwsPrimary
from tests.e2e.test_review_scenarios import said
from tests.e2e.test_vault_e2e import (
    assert_back_to_first,
    assert_rotated,
    created_ids,
    digest,
    fingerprints,
    no_orphans,
)
from tests.e2e.vault_primary import Background, VaultPrimary
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow

LEASE_TTL = 3.0
CALL = 1.5
"""[bluum] timeout 1s + retry_budget 0.5s: the longest Bluum call, which a take-over waits for beyond the lease."""
TAKEOVER = LEASE_TTL + CALL
SHORT_LEASE = '\n[bluum]\ntimeout = "1s"\nretry_budget = "500ms"\nmax_attempts = 2\n\n[ledger]\nlease_ttl = "3s"\n'
STORE_TIMEOUT = "timeout = 0.75\n"
"""A Vault or AWS request may take 0.75 s to connect and 0.75 s to answer: no longer than CALL, so the take-over wait
and the lease's minimum stay as the Bluum call makes them (`rotator.core.in_flight`)."""
OTHER_HOST = "fencing-other-host"
STALLED = "frozen or stalled"


def _needs_another_host() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("another host needs `unshare --uts`, which needs root")


def elsewhere(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` as runner B on another host: its own UTS namespace with another host name."""
    command = [sys.executable, "-m", "rotator", "-vv", "--config", str(ws.config), *args]
    return ws.run_command(
        ["unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh", *command], what="other host's"
    )


def frozen_at(ws: Workspace, point: str, *args: str) -> Background:
    """A `rotator ARGS` parked at fault point `point` (its lease held), then frozen there with SIGSTOP."""
    run, release = Background.parked(ws, point, *args, name="frozen")
    run.proc.send_signal(signal.SIGSTOP)
    release.touch()  # it goes on from `point` only once thawed
    return run


def thaw(run: Background) -> subprocess.CompletedProcess[str]:
    run.proc.send_signal(signal.SIGCONT)
    return run.finish()


def requests(ws: Workspace) -> int:
    return len(ws.sim.request_log())


def changes(ws: Workspace) -> int:
    """Requests that could change something at Bluum (a create or a revoke): all but GETs."""
    return sum(1 for entry in ws.sim.request_log() if entry.get("method") != "GET")


def assert_stopped(late: subprocess.CompletedProcess[str], run: Background, point: str) -> None:
    assert late.returncode == ExitCode.IN_PROGRESS, f"{late.returncode}: {said(late)}"
    assert STALLED in said(late), said(late)
    assert "changes nothing more" in said(late), said(late)
    assert run.points()[-1] == point, f"the thawed runner went on past {point}: {run.points()}"


@pytest.fixture
def short_lease(ws: Workspace) -> Workspace:
    _needs_another_host()
    ws.add_config(SHORT_LEASE)
    return ws


@pytest.fixture
def vault(
    openbao: OpenBao, vault_path: str, short_lease: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VaultPrimary]:
    primary = VaultPrimary.install(short_lease, openbao, vault_path)
    short_lease.edit_config(f'path = "{primary.path}"\n', f'path = "{primary.path}"\n{STORE_TIMEOUT}')
    short_lease.add_config(SHORT_LEASE)
    monkeypatch.setenv("VAULT_TOKEN", primary.token)
    yield primary
    primary.close()


# ----------------------------------------------------------------------------- the env store: a flock


def test_env_store_a_runner_frozen_before_its_create_mints_nothing_once_thawed(short_lease: Workspace):
    """Frozen right after its STARTED record, before the create at Bluum. B, elsewhere, is refused (the frozen
    runner's flock is still held: nothing to take over). Thawed past its lease, A mints nothing, exits 3; `resume`
    then finishes with one new key."""
    ws = short_lease
    run = frozen_at(ws, "started.record", "rotate", "trading")
    try:
        time.sleep(TAKEOVER + 0.5)
        refused = elsewhere(ws, "resume", "trading")
        assert refused.returncode == ExitCode.IN_PROGRESS, said(refused)
        before, sent = ws.snapshot(), requests(ws)
        keys = ws.sim.keys()
        late = thaw(run)
    finally:
        run.kill()
    assert_stopped(late, run, "started.record")
    assert requests(ws) == sent, "the thawed runner sent requests to Bluum after its lease ran out"
    assert ws.sim.keys() == keys
    assert ws.snapshot() == before, "the thawed runner changed a file after its lease ran out"

    finished = elsewhere(ws, "resume", "trading")
    assert finished.returncode == ExitCode.OK, said(finished)
    (created,) = created_ids(ws)
    assert ws.current_id() == created == ws.current_id("mirror.env", "TRADING_")
    assert ws.active_ids() == {created}
    no_orphans(ws)


def test_env_store_a_runner_frozen_in_a_propagation_wait_stops_once_thawed(short_lease: Workspace):
    """SIGSTOP while A polls Bluum for its new key (not at a step boundary). Thawed past its lease, A sends no further
    request (not even a check) and exits 3; `resume` finishes, I1 all along."""
    ws = short_lease
    ws.write_config(verify_timeout="20s")
    ws.add_config(SHORT_LEASE)
    ws.delay_new_keys(2)
    run = Background.start(ws, "rotate", "trading", name="frozen")
    try:
        run.wait_for_point("staged.record")
        run.proc.send_signal(signal.SIGSTOP)
        time.sleep(TAKEOVER + 0.5)
        before, sent = ws.snapshot(), changes(ws)
        keys = ws.sim.keys()
        late = thaw(run)
    finally:
        run.kill()
    assert late.returncode == ExitCode.IN_PROGRESS, f"{late.returncode}: {said(late)}"
    assert STALLED in said(late), said(late)
    assert run.points()[-1] == "staged.record", run.points()
    # A check it had already sent when frozen may still be answered; nothing that changes anything is sent.
    assert changes(ws) == sent, "the thawed runner sent Bluum a create or a revoke after its lease ran out"
    assert ws.sim.keys() == keys
    assert ws.snapshot() == before

    finished = ws.run("resume", "trading")
    assert finished.returncode == ExitCode.OK, said(finished)
    no_orphans(ws)


# ----------------------------------------------------------------------------- OpenBao: a TTL lease, taken over


def test_vault_a_take_over_waits_for_the_lease_and_the_longest_call_then_the_thawed_runner_revokes_nothing(
    vault: VaultPrimary, short_lease: Workspace
):
    """A is frozen right before it revokes the old key. B, elsewhere, is refused until A's lease plus the longest
    Bluum call has passed, then takes over with `resume` and finishes. Thawed, A sends no revoke (no request at all),
    changes nothing, exits 3."""
    ws = short_lease
    # A longer call here (timeout 1 s + retry_budget 3 s), so that B's early try surely lands between the lease's end
    # and the take-over, however slowly B starts on a busy machine.
    ws.edit_config('retry_budget = "500ms"', 'retry_budget = "3s"')
    ws.edit_config('lease_ttl = "3s"', 'lease_ttl = "8s"')
    ttl, takeover = 8.0, 12.0
    run = frozen_at(ws, "revoking.record", "rotate", "trading")
    try:
        frozen_since = time.monotonic()
        time.sleep(ttl + 0.3)
        early = elsewhere(ws, "resume", "trading")
        assert time.monotonic() - frozen_since < takeover, "the machine is too slow for this check"
        assert early.returncode == ExitCode.IN_PROGRESS, said(early)
        time.sleep(max(0.0, takeover + 0.5 - (time.monotonic() - frozen_since)))
        taken_over = elsewhere(ws, "resume", "trading")
        assert taken_over.returncode == ExitCode.OK, said(taken_over)
        created = assert_rotated(ws, vault)
        before, sent = fingerprints(ws, vault), requests(ws)
        late = thaw(run)
    finally:
        run.kill()
    assert_stopped(late, run, "revoking.record")
    assert requests(ws) == sent, "the thawed runner sent requests to Bluum after it lost its lease"
    assert fingerprints(ws, vault) == before, "the thawed runner changed something after it lost its lease"
    assert created_ids(ws) == [created]
    no_orphans(ws)


def test_vault_a_runner_frozen_before_its_create_is_rolled_back_elsewhere_and_mints_nothing_once_thawed(
    vault: VaultPrimary, short_lease: Workspace
):
    """Frozen after its STARTED record, before the create: B, elsewhere, rolls the rotation back once the lease (and
    the longest call) has passed. Thawed, A creates no key at Bluum (which would be an orphan: B's rollback is over)
    and writes nothing to Vault or the files; it exits 3, and the first key is current everywhere."""
    ws = short_lease
    run = frozen_at(ws, "started.record", "rotate", "trading")
    try:
        time.sleep(TAKEOVER + 0.5)
        rolled = elsewhere(ws, "rollback", "trading")
        assert rolled.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), said(rolled)
        before, sent = fingerprints(ws, vault), requests(ws)
        late = thaw(run)
    finally:
        run.kill()
    assert_stopped(late, run, "started.record")
    assert requests(ws) == sent, "the thawed runner sent requests to Bluum after it lost its lease"
    assert fingerprints(ws, vault) == before, "the thawed runner changed something after it lost its lease"
    assert created_ids(ws) == []
    assert_back_to_first(ws, vault)
    no_orphans(ws)


def test_vault_a_runner_frozen_before_promote_changes_nothing_after_another_rotated(
    vault: VaultPrimary, short_lease: Workspace
):
    """Frozen once Bluum accepted its new key, before it writes the path applications read. B, elsewhere, runs
    `rotate` once the lease has passed (it finishes A's rotation: one rotation at a time). Thawed, A writes nothing
    (Vault's path, its stage document, the files) and revokes nothing; exit 3."""
    ws = short_lease
    run = frozen_at(ws, "accepted.record", "rotate", "trading")
    try:
        time.sleep(TAKEOVER + 0.5)
        other = elsewhere(ws, "rotate", "trading")
        assert other.returncode in (ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.INCOMPLETE), said(other)
        resumed = elsewhere(ws, "resume", "trading")
        assert resumed.returncode == ExitCode.OK, said(resumed)
        created = assert_rotated(ws, vault)
        before, sent = fingerprints(ws, vault), requests(ws)
        late = thaw(run)
    finally:
        run.kill()
    assert_stopped(late, run, "accepted.record")
    assert requests(ws) == sent, "the thawed runner sent requests to Bluum after it lost its lease"
    assert fingerprints(ws, vault) == before, "the thawed runner changed something after it lost its lease"
    assert created in created_ids(ws)
    no_orphans(ws)


# ----------------------------------------------------------------------------- Secrets Manager (moto): DynamoDB's lease


def aws_state(aws: AwsPrimary) -> str:
    """Every version of the secret with its labels and value, as one digest (the values hold secrets)."""
    described = aws.sm.describe_secret(SecretId=aws.name)["VersionIdsToStages"]
    values = {
        version: aws.sm.get_secret_value(SecretId=aws.name, VersionId=version)["SecretString"] for version in described
    }
    return digest([described, values])


def test_aws_a_runner_frozen_before_it_moves_labels_changes_nothing_after_a_rollback_elsewhere(
    moto_server: Moto, short_lease: Workspace
):
    """Frozen once Bluum accepted its new key, right before it moves AWSCURRENT. B, elsewhere, rolls back once the
    lease (and the longest call) has passed, revoking the new key. Thawed, A moves no label, puts no version, sends
    Bluum nothing; exit 3, and the first key is current everywhere (I1 all along)."""
    ws = short_lease
    aws = AwsPrimary(ws, moto_server)
    ws.edit_config('type = "aws"\n', f'type = "aws"\n{STORE_TIMEOUT}')
    run = frozen_at(ws, "accepted.record", "rotate", "trading")
    try:
        time.sleep(TAKEOVER + 0.5)
        rolled = elsewhere(ws, "rollback", "trading")
        assert rolled.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), said(rolled)
        before, files, sent = aws_state(aws), ws.snapshot(), requests(ws)
        keys = ws.sim.keys()
        late = thaw(run)
    finally:
        run.kill()
    assert_stopped(late, run, "accepted.record")
    assert requests(ws) == sent, "the thawed runner sent requests to Bluum after it lost its lease"
    assert aws_state(aws) == before, "the thawed runner changed the secret after it lost its lease"
    assert ws.snapshot() == files
    assert ws.sim.keys() == keys
    assert aws.pair() == ws.first.pair
    assert ws.active_ids() == {ws.first.info.id}
    sweep = ws.run("sweep", "--json")  # a subprocess: boto3 reaches moto through the workspace's environment
    assert sweep.returncode == ExitCode.OK, said(sweep)
    assert [f for f in json.loads(sweep.stdout) if f["kind"] in ("orphan", "in-flight")] == []


# ----------------------------------------------------------------------------- the setting itself


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"2s"', "shorter than 2 whole Bluum calls (3s"),
        ('"0s"', "must be longer than 0s"),
        ("900", "expected a duration in quotes"),
    ],
)
def test_a_lease_too_short_for_a_whole_bluum_call_is_refused_before_anything_changes(
    ws: Workspace, value: str, says: str
):
    ws.add_config(f'\n[bluum]\ntimeout = "1s"\nretry_budget = "500ms"\n\n[ledger]\nlease_ttl = {value}\n')
    before, sent = ws.snapshot(), requests(ws)
    result = ws.cli("rotate", "trading")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "ledger.lease_ttl" in result.output, result.output
    assert says in result.output, result.output
    assert ws.snapshot() == before
    assert requests(ws) == sent
