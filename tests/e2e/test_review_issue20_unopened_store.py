"""A store that cannot even be opened (a Doppler store whose token variable is unset) and is not the rotating
credential's (review of issue 20).

rotator/rotation/preflight.py says another credential's store that cannot be read does not stop a rotation's start,
"least of all an emergency": it matters at the revoke, which waits for it (an emergency revokes anyway and says so).
A Doppler store with a wrong token was treated so, but one whose token variable is unset raised ConfigError while
being built, outside that rule: `rotate --emergency` of every other credential was refused (exit 2, the leaked key
left alive), and `rotator plan NAME` printed that one error instead of its findings.
"""

from __future__ import annotations

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace

UNSET = "ROTATOR_REVIEW_UNSET_DOPPLER_TOKEN"
SPARE = f"""
[stores.spare]
type = "doppler"
project = "backend"
config = "prd"
url = "http://127.0.0.1:9"
token_env = "{UNSET}"
"""


def test_an_emergency_is_not_stopped_by_another_store_that_cannot_be_opened(ws: Workspace):
    ws.add_config(SPARE)
    old = ws.pair_in()
    ws.excuse(old)

    done = ws.run("rotate", "trading", "--emergency", "--reason", "key in a ticket", env={UNSET: ""})

    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert ws.current_id() != old.key_id
    assert "This is an emergency, so the key was revoked anyway" in done.stdout, done.stdout
    assert not ws.works(old), "the leaked key is revoked"


def test_plan_names_another_store_that_cannot_be_opened_as_the_problem_it_is(ws: Workspace):
    ws.add_config(SPARE)

    planned = ws.run("plan", "trading", env={UNSET: ""})

    assert planned.returncode == ExitCode.BAD_INPUT, planned.stdout + planned.stderr
    line = next((line for line in planned.stdout.splitlines() if "store spare" in line), planned.stdout)
    assert line.startswith("trading  PROBLEM"), line
    assert "would be refused at its start (exit 2; an emergency goes on)" in line, line
    assert "-> fix: fix store spare" in line, line


def test_a_normal_rotation_is_refused_at_its_start_and_changes_nothing(ws: Workspace):
    """The same store is bad input (its token variable is unset), not an outage: a normal rotation refuses before it
    mints anything (exit 2) rather than starting one it could not finish (it would wait before the revoke, exit 4)."""
    ws.add_config(SPARE)
    before = ws.snapshot()
    refused = ws.run("rotate", "trading", env={UNSET: ""})
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout + refused.stderr
    assert UNSET in refused.stderr, refused.stderr
    assert ws.active_ids() == {ws.first.info.id}, "no key was minted"
    assert ws.snapshot() == before
