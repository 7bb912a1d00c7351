"""The CLI end to end with Vault (a real OpenBao server) as the primary store of `trading`, dotenv files beside it.

The workspace's `trading` credential keeps its key first in Vault KV v2 (seeded by hand with the root token, as an
operator would), and deploys to `mirror.env` (and `app.env` where a test says so). Every `rotator` runs in a
subprocess with a token holding exactly the minimal policy (create, read, update on the two data paths), which the
leak guard watches like any secret. The I1 sampler probes the key at Vault's latest version beside the files, all
through each test (`tests/e2e/vault_primary.py`).

Each test asserts what an operator would check afterwards: the exit code and what was said, which key Vault's latest
version and the files hold, which keys Bluum still accepts, and what the stage document at `state_path` keeps.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Iterator

import pytest

from rotator.core.errors import ExitCode
from rotator.core.faultpoints import CRASH_ENV, HOLD_ENV, RELEASE_ENV, TRACE_ENV
from rotator.core.model import KeyPair
from rotator.core.secret import Secret
from tests.e2e.conftest import Workspace
from tests.e2e.test_review_scenarios import said
from tests.e2e.vault_primary import Background, VaultPrimary, run_with_library_logs, vault_points
from tests.fault_points import FORWARD_POINTS, ROLLBACK_POINTS
from tests.openbao import OpenBao

pytestmark = pytest.mark.slow  # about 80 s in all: every run is a subprocess, and crashes are tried at 22 points

DEAD = {"revoked", "expired"}
"""Key statuses that never come back (an `inactive` key can be reactivated in Bluum's dashboard)."""

OTHER_FIELD = "db-password-5f1c9e0a7b"
"""A field at the Vault path that is not the rotator's: kept through every write, and watched as a secret."""


@pytest.fixture
def vault(openbao: OpenBao, vault_path: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultPrimary]:
    """`trading` kept first in Vault on the session's dev server, deployed to mirror.env too."""
    primary = VaultPrimary.install(ws, openbao, vault_path)
    monkeypatch.setenv("VAULT_TOKEN", primary.token)  # for `ws.cli`, in this process
    yield primary
    primary.close()


@pytest.fixture
def down_vault(file_backed_openbao: OpenBao, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultPrimary]:
    """The same on this test's own file-backed server, which it may stop and start (its data survives). Two attempts
    per Vault call (`max_attempts`): a call on the stopped server gives up after one short wait, not the default six
    attempts' 3 s, and what the rotation does then is the same."""
    primary = VaultPrimary.install(ws, file_backed_openbao, "apps")
    ws.edit_config(f'path = "{primary.path}"\n', f'path = "{primary.path}"\nmax_attempts = 2\n')
    monkeypatch.setenv("VAULT_TOKEN", primary.token)
    yield primary
    primary.close()


# ----------------------------------------------------------------------------- what every test checks


def created_ids(ws: Workspace) -> list[str]:
    """Investor keys made after the first one, in creation order."""
    return [str(k["id"]) for k in ws.investor_keys() if k["id"] != ws.first.info.id]


def key_status(ws: Workspace, key_id: str) -> str:
    return str(next(k for k in ws.sim.keys() if k["id"] == key_id)["status"])


def same_everywhere(ws: Workspace, vault: VaultPrimary) -> KeyPair:
    """The pair Vault's latest version holds, after checking every deployed file holds the very same pair."""
    pair = vault.pair()
    assert ws.pair_in("mirror.env", "TRADING_") == pair, "mirror.env and Vault hold different pairs"
    if "app" in vault.also:
        assert ws.pair_in() == pair, "app.env and Vault hold different pairs"
    return pair


def assert_rotated(ws: Workspace, vault: VaultPrimary) -> str:
    """The new key is current in Vault and the files, works, and is the only active key; the old one is dead."""
    pair = same_everywhere(ws, vault)
    new_id = pair.key_id
    assert new_id
    assert new_id != ws.first.info.id
    assert ws.active_ids() == {new_id}
    assert ws.works(pair)
    assert not ws.works(ws.first.pair)
    assert key_status(ws, ws.first.info.id) == "revoked"
    return new_id


def assert_back_to_first(ws: Workspace, vault: VaultPrimary) -> None:
    """Rolled back: the first key is current in Vault and the files and works; every key made since is dead for good."""
    pair = same_everywhere(ws, vault)
    assert pair == ws.first.pair, "Vault does not hold the old pair again"
    assert ws.works(ws.first.pair)
    assert ws.active_ids() == {ws.first.info.id}
    left = {key: key_status(ws, key) for key in created_ids(ws)}
    assert set(left.values()) <= DEAD, f"a key the rotation made can still be used, or be reactivated: {left}"


def assert_settled(vault: VaultPrimary, phase: str) -> None:
    """The stage document once a rotation is over: no PENDING, no PREVIOUS, the lease released, the record's phase."""
    stages = vault.stages()
    assert stages["pending"] is None, "PENDING left in the stage document"
    assert stages["previous"] is None, "PREVIOUS left in the stage document"
    assert stages["lease_owner"] is None, "the lease is still held"
    assert stages["phase"] == phase


def digest(value: object) -> str:
    """A short hash of a value that holds secrets, for assertions whose failure message must not show them."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def fingerprints(ws: Workspace, vault: VaultPrimary) -> dict[str, str]:
    """Everything a runner could change, as one digest per place: an assertion on these names what changed without
    printing the secrets inside."""

    places: dict[str, object] = {"vault latest": [vault.latest(), vault.version()], "stage document": vault.document()}
    places |= {name: data.decode() for name, data in ws.snapshot().items()}
    places["keys at Bluum"] = ws.sim.keys()
    return {name: digest(value) for name, value in places.items()}


def no_orphans(ws: Workspace) -> None:
    """I3: sweep finds no active key at Bluum that no store knows (in-process: read-only, and a second faster)."""
    sweep = ws.cli("sweep", "--json")
    assert sweep.exit_code == ExitCode.OK, sweep.output
    findings = [f for f in json.loads(sweep.stdout) if f["kind"] in ("orphan", "in-flight")]
    assert findings == [], f"I3: {findings}"


# ----------------------------------------------------------------------------- 1. rotate, both stores, read back


def test_rotate_writes_vault_and_both_files_and_revokes_the_old_key_after_grace(
    openbao: OpenBao, vault_path: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch
):
    ws.guard.watch(OTHER_FIELD)
    vault = VaultPrimary.install(ws, openbao, vault_path, also=("app", "mirror"), other_fields={"db": OTHER_FIELD})
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    try:
        vault.configure(grace="1h")
        seeded_version = vault.version()

        rotated = run_with_library_logs(ws, "rotate", "trading")
        assert rotated.returncode == ExitCode.OK, said(rotated)
        pair = same_everywhere(ws, vault)
        new_id = pair.key_id
        assert new_id
        assert new_id != ws.first.info.id
        assert new_id in said(rotated)
        assert ws.works(pair), "the new key in Vault does not work at Bluum"
        assert vault.field("db") == OTHER_FIELD, "a field that is not the rotator's was lost"
        assert vault.version() > seeded_version
        # The grace window: both keys active, the old one still works and is PREVIOUS in the stage document.
        assert ws.active_ids() == {ws.first.info.id, new_id}
        assert ws.works(ws.first.pair)
        stages = vault.stages()
        assert (stages["current"], stages["previous"], stages["pending"]) == (new_id, ws.first.info.id, None)
        assert stages["phase"] == "verified"
        assert stages["lease_owner"] is None

        # hvac/urllib3 debug logs were on, and did reach Vault's two paths: none of them carries a secret.
        library = [line for line in rotated.stderr.splitlines() if line.startswith("LIB ")]
        for path in (vault.path, vault.state_path):
            assert any("urllib3" in line and f"/v1/secret/data/{path}" in line for line in library), path
        secrets = [vault.token, OTHER_FIELD, pair.api_secret.reveal(), ws.first.pair.api_secret.reveal()]
        assert not any(s in rotated.stderr or s in rotated.stdout for s in secrets), "a secret in the -vv output"
        token_kept = vault.token in json.dumps(vault.document())
        assert not token_kept, "the Vault token was written into the stage document"

        done = ws.run("resume", "trading", "--now")
        assert done.returncode == ExitCode.OK, said(done)
        assert assert_rotated(ws, vault) == new_id
        assert_settled(vault, "completed")
        assert vault.field("db") == OTHER_FIELD
        history = ws.root / "rotator-history" / "trading.jsonl"
        ws.guard.check(history.read_text(), "the rotation history")
    finally:
        vault.close()


# ----------------------------------------------------------------------------- 1b. verification fails: rolled back


def test_a_key_that_never_works_is_rolled_back_in_vault_and_the_file(vault: VaultPrimary, ws: Workspace):
    vault.configure(verify_timeout="1s")
    ws.delay_new_keys(3600)  # the new key never starts working
    mirror_before = (ws.root / "mirror.env").read_bytes()
    latest_before = digest([vault.latest(), vault.version()])

    result = ws.run("rotate", "trading")
    assert result.returncode == ExitCode.ROLLED_BACK, said(result)
    assert "rolled back" in said(result)
    assert_back_to_first(ws, vault)
    assert digest([vault.latest(), vault.version()]) == latest_before, "Vault's path was written"
    assert (ws.root / "mirror.env").read_bytes() == mirror_before
    (created,) = created_ids(ws)
    assert key_status(ws, created) == "revoked"
    assert_settled(vault, "rolled_back")


@pytest.mark.parametrize("spoil", ["expire_key", "deactivate_key"])
def test_a_key_that_fails_after_the_cut_over_is_rolled_back_in_vault_and_the_file_together(
    vault: VaultPrimary, ws: Workspace, spoil: str
):
    """The new key is current in Vault (a new latest version) and in mirror.env when Bluum stops accepting it: both
    show the old key again, and the new key is dead for good at Bluum (I1 across stores)."""
    cut_over, release = Background.parked(ws, "deployed.record", "rotate", "trading", library_logs=True)
    try:
        new = vault.pair()
        assert new.key_id
        assert new.key_id != ws.first.info.id
        assert ws.pair_in("mirror.env", "TRADING_") == new
        version_with_new = vault.version()
        ws.excuse(new)  # broken on purpose, below: its outages are this test's
        getattr(ws.sim, spoil)(new.key_id)
        release.touch()
        result = cut_over.finish()
    finally:
        cut_over.kill()
    assert result.returncode == ExitCode.ROLLED_BACK, said(result)
    assert "rolled back" in said(result)
    assert vault.version() > version_with_new, "the old key must be written back as a new latest version"
    assert_settled(vault, "rolled_back")
    no_orphans(ws)
    assert_back_to_first(ws, vault)


# ----------------------------------------------------------------------------- 3. SIGKILL at every step boundary

VAULT_FORWARD = vault_points(FORWARD_POINTS)
VAULT_ROLLBACK = vault_points(ROLLBACK_POINTS)


def check_invariants(ws: Workspace, vault: VaultPrimary, *, after_resume: bool) -> None:
    """I1, I2, I4 after a crash (and I3 after resume), reading the current keys from Vault and mirror.env."""
    active = ws.active_ids()
    in_vault, in_mirror = vault.current_id(), ws.current_id("mirror.env", "TRADING_")
    assert in_vault in active, "I1: Vault's latest version holds a key Bluum does not consider active"
    assert in_mirror in active, "I1: mirror.env holds a key Bluum does not consider active"
    assert len(active) <= 2, f"I4: {len(active)} active keys"
    if ws.first.info.id not in active:
        assert in_vault == in_mirror != ws.first.info.id, "I2: the old key is gone before its successor is everywhere"
    if after_resume:
        assert active == {in_vault}, "after resume exactly the current key is active"
        assert in_vault == in_mirror
        no_orphans(ws)


@pytest.mark.parametrize("way", ["forward", "rollback"])
def test_a_vault_rotation_passes_exactly_the_declared_fault_points(vault: VaultPrimary, ws: Workspace, way: str):
    """The parametrized crash tests below cover every boundary only if a real run passes exactly these."""
    if way == "rollback":
        vault.configure(verify_timeout="1s")
        ws.delay_new_keys(3600)
    trace = ws.root / f"{way}.trace"
    result = ws.run("rotate", "trading", env={TRACE_ENV: str(trace)})
    points = trace.read_text().split()
    if way == "forward":
        assert result.returncode == ExitCode.OK, said(result)
        assert points == VAULT_FORWARD
        assert_rotated(ws, vault)
    else:
        assert result.returncode == ExitCode.ROLLED_BACK, said(result)
        assert points[points.index("rolling_back.record") :] == VAULT_ROLLBACK
        assert_back_to_first(ws, vault)


@pytest.mark.parametrize("point", VAULT_FORWARD)
def test_sigkill_at_a_forward_boundary_then_resume_finishes(vault: VaultPrimary, ws: Workspace, point: str):
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
    assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {said(crashed)}"
    check_invariants(ws, vault, after_resume=False)

    resumed = ws.run("resume", "trading")  # at once: the dead runner's lease is taken over (see the next test)
    assert resumed.returncode == ExitCode.OK, f"{point}: {said(resumed)}"
    check_invariants(ws, vault, after_resume=True)
    assert_rotated(ws, vault)
    assert len(created_ids(ws)) == 1, "resume made another key instead of finishing with the one created"
    assert_settled(vault, "completed")


def test_a_crashed_runners_lease_is_taken_over_at_once_here_and_waited_for_from_elsewhere(
    vault: VaultPrimary, ws: Workspace
):
    """Vault's lease is a TTL in the stage document, not a lock the kernel drops when its holder dies. It records where
    its runner ran: a runner that crashed on this machine is seen to be gone and its lease taken over at once; one
    that ran elsewhere cannot be seen, so `resume` changes nothing, exits 3 and says when the lease ends."""
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "pending.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    vault.move_lease_holder("another-host.example")
    before = fingerprints(ws, vault)
    early = ws.run("resume", "trading")
    assert early.returncode == ExitCode.IN_PROGRESS, said(early)
    assert "lease until" in said(early)
    assert "`rotator resume` finishes" in said(early)
    assert fingerprints(ws, vault) == before, "a resume refused for the lease changed something"

    vault.expire_lease()  # as its 15 minutes would
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert "taking over the expired rotation lease" in resumed.stderr
    assert_rotated(ws, vault)
    assert_settled(vault, "completed")


def test_a_runner_killed_on_this_machine_is_seen_gone_and_resume_takes_over_at_once(vault: VaultPrimary, ws: Workspace):
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: "accepted.record"})
    assert crashed.returncode == -signal.SIGKILL, said(crashed)
    assert vault.stages()["lease_owner"], "the killed runner's lease is still in the stage document"
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    assert "that runner's process is gone from this machine" in resumed.stderr
    assert_rotated(ws, vault)
    assert_settled(vault, "completed")


@pytest.mark.parametrize("point", VAULT_ROLLBACK)
def test_sigkill_at_a_rollback_boundary_then_resume_rolls_back(vault: VaultPrimary, ws: Workspace, point: str):
    vault.configure(verify_timeout="1s")
    ws.delay_new_keys(3600)
    crashed = ws.run("rotate", "trading", env={CRASH_ENV: point})
    assert crashed.returncode == -signal.SIGKILL, f"{point}: {crashed.returncode} {said(crashed)}"
    check_invariants(ws, vault, after_resume=False)
    assert ws.first.info.id in ws.active_ids(), f"{point}: a failed rotation revoked the old key"

    resumed = ws.run("resume", "trading")
    assert resumed.returncode in (ExitCode.OK, ExitCode.ROLLED_BACK), f"{point}: {said(resumed)}"
    assert_back_to_first(ws, vault)
    check_invariants(ws, vault, after_resume=True)
    assert_settled(vault, "rolled_back")


# ----------------------------------------------------------------------------- 4. a lease that expires mid-rotation


@pytest.mark.parametrize("point", ["pending.record", "accepted.record"])
def test_a_runner_whose_lease_expired_changes_nothing_after_another_finished(
    vault: VaultPrimary, ws: Workspace, point: str
):
    """Runner A stalls at `point` past its lease (its expiry is moved into the past in the stage document, as the
    clock would); `rotator resume` takes over and finishes; A, continued, must change nothing and exit 3.

    pending.record: A's next step writes mirror.env (not fenced by Vault itself); accepted.record: A's next step
    moves Vault's stages."""
    stale, release = Background.parked(ws, point, "rotate", "trading", name="stale")
    try:
        (created,) = created_ids(ws)
        fence = vault.expire_lease()

        taken_over = ws.run("resume", "trading")
        assert taken_over.returncode == ExitCode.OK, said(taken_over)
        assert assert_rotated(ws, vault) == created, "the new holder must finish with the key A created"
        assert vault.stages()["lease_fence"] == fence + 1
        before = fingerprints(ws, vault)

        release.touch()
        late = stale.finish()
    finally:
        stale.kill()
    assert late.returncode == ExitCode.IN_PROGRESS, f"{late.returncode}: {said(late)}"
    assert "changes nothing more" in said(late), said(late)
    assert stale.points()[-1] == point, f"the stale runner went on past {point}: {stale.points()}"
    assert fingerprints(ws, vault) == before, "the stale runner changed something after the take-over"
    assert created_ids(ws) == [created]
    assert_rotated(ws, vault)
    assert_settled(vault, "completed")
    no_orphans(ws)


def test_a_runner_frozen_while_waiting_for_bluum_changes_nothing_once_thawed(vault: VaultPrimary, ws: Workspace):
    """SIGSTOP while the new key propagates (not at a step boundary), the lease expires, `resume` takes over and
    finishes; SIGCONT: the frozen runner's next write is refused, it exits 3, and nothing is changed by it."""
    vault.configure(verify_timeout="10s")
    ws.delay_new_keys(2)
    frozen = Background.start(ws, "rotate", "trading", name="frozen")
    try:
        frozen.wait_for_point("staged.record")  # next: accept, polling Bluum until the new key propagates
        frozen.proc.send_signal(signal.SIGSTOP)
        (created,) = created_ids(ws)
        vault.expire_lease()

        taken_over = ws.run("resume", "trading")
        assert taken_over.returncode == ExitCode.OK, said(taken_over)
        assert assert_rotated(ws, vault) == created
        before = fingerprints(ws, vault)

        frozen.proc.send_signal(signal.SIGCONT)
        late = frozen.finish()
    finally:
        frozen.kill()
    assert late.returncode == ExitCode.IN_PROGRESS, f"{late.returncode}: {said(late)}"
    assert "changes nothing more" in said(late), said(late)
    assert frozen.points()[-1] == "staged.record", frozen.points()
    assert fingerprints(ws, vault) == before, "the thawed runner changed something after the take-over"
    assert created_ids(ws) == [created]
    assert_settled(vault, "completed")


# ----------------------------------------------------------------------------- 5. ten at once


def test_ten_concurrent_rotations_one_wins(vault: VaultPrimary, ws: Workspace):
    """Ten `rotator rotate trading` at once. The winner parks once the new key is created, stored and staged, so the
    other nine meet its lease (or lose the check-and-set race for it) whenever they get there; they must give up at
    once, changing nothing."""
    release = ws.root / "winner.release"
    env = {HOLD_ENV: "staged.record", RELEASE_ENV: str(release)}
    runs = [Background.start(ws, "rotate", "trading", name=f"run{i}", env=env) for i in range(10)]
    try:
        deadline = time.monotonic() + 60
        while sum(run.proc.poll() is not None for run in runs) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [run for run in runs if run.proc.poll() is not None]
        assert len(losers) == 9, f"{len(losers)} of 10 runs finished while one holds the lease"
        (winner,) = (run for run in runs if run.proc.poll() is None)
        for run in losers:
            result = run.finish()
            assert result.returncode == ExitCode.IN_PROGRESS, f"{run.out.name}: {result.returncode} {said(result)}"
            assert "another" in said(result), said(result)
            assert "nothing was changed" in said(result), said(result)
            assert run.points() == [], f"a loser passed fault points: {run.points()}"
        winner.wait_for_point("staged.record")
        assert len(created_ids(ws)) == 1
        assert vault.stages()["phase"] == "staged"

        release.touch()
        won = winner.finish()
        assert won.returncode == ExitCode.OK, said(won)
    finally:
        for run in runs:
            run.kill()
    assert len(created_ids(ws)) == 1, "exactly one new key was created"
    assert_rotated(ws, vault)
    assert_settled(vault, "completed")


# ----------------------------------------------------------------------------- 6. the Vault server goes away


def test_vault_down_before_a_rotation_changes_nothing_and_exits_5(down_vault: VaultPrimary, ws: Workspace):
    vault = down_vault
    mirror_before = (ws.root / "mirror.env").read_bytes()
    with vault.server_down():
        vault.bao.stop()
        result = ws.run("rotate", "trading")
        vault.bao.start()
    assert result.returncode == ExitCode.UNAVAILABLE, said(result)
    assert "Vault" in said(result)
    assert vault.bao.url in said(result)
    assert created_ids(ws) == [], "a key was created while its primary store was unreachable"
    assert (ws.root / "mirror.env").read_bytes() == mirror_before
    assert vault.pair() == ws.first.pair

    again = ws.run("rotate", "trading")
    assert again.returncode == ExitCode.OK, said(again)
    assert_rotated(ws, vault)


@pytest.mark.parametrize(
    "point",
    [
        "started.record",  # the record is written; next: mint at Bluum (the lease is renewed first: Vault is down)
        "pending.record",  # the new key's secret is PENDING in Vault only; next: staged in mirror.env, then Vault
        "deployed.record",  # Vault's latest version and mirror.env show the new key; next: read back from Vault
    ],
)
def test_vault_stopped_mid_rotation_exits_4_keeps_the_new_key_and_resume_finishes(
    down_vault: VaultPrimary, ws: Workspace, point: str
):
    """The server stops while a rotation is parked at `point`, and the rotation goes on: it must stop at once saying
    Vault is unreachable and to resume, lose nothing, and be finished by `rotator resume` once Vault is back."""
    vault = down_vault
    parked, release = Background.parked(ws, point, "rotate", "trading", library_logs=True)
    try:
        with vault.server_down():
            vault.bao.stop()
            release.touch()
            stopped = parked.finish()
            vault.bao.start()
    finally:
        parked.kill()
    message = said(stopped)
    assert "Vault" in message, message
    assert vault.bao.url in message, message
    assert "rotator resume" in message, message
    # hvac's and urllib3's debug logs were on while Vault went away (the leak guard reads them all)
    assert any(line.startswith("LIB urllib3") for line in stopped.stderr.splitlines())
    assert parked.points()[-1] == point, f"went on past {point} with Vault down: {parked.points()}"
    made = created_ids(ws)
    assert len(made) == (0 if point == "started.record" else 1), made
    assert ws.first.info.id in ws.active_ids(), "the old key was revoked while Vault was down"
    check_invariants(ws, vault, after_resume=False)
    if made:
        # Nothing was lost: the new key's secret is still PENDING or CURRENT in the stage document, and it works.
        stages = vault.stages()
        assert made[0] in (stages["pending"], stages["current"]), stages
        document, _ = vault.document()
        kept = document["pending"] if stages["pending"] == made[0] else document["current"]
        kept_pair = KeyPair(kept["api_key"], Secret(kept["api_secret"]), ws.first.pair.environment, made[0])
        works = ws.works(kept_pair)
        assert works, "the new key's pair kept in the stage document does not work at Bluum"

    # It could not release its lease while Vault was down; it has exited, so resume here takes the lease over.
    resumed = ws.run("resume", "trading")
    assert resumed.returncode == ExitCode.OK, said(resumed)
    new_id = assert_rotated(ws, vault)
    assert created_ids(ws) == (made or [new_id]), "resume must finish with the key created before the outage"
    assert_settled(vault, "completed")
    no_orphans(ws)

    assert stopped.returncode == ExitCode.INCOMPLETE, f"{stopped.returncode}: {message}"
