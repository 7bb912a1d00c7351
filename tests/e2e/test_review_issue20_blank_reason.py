"""`rotate --emergency --reason "  "` (review of issue 20): a blank reason is refused before anything changes (exit 2),
as `pause` and `resume --revoke-anyway` refuse one. It ran a real emergency rotation (a key minted, the current key
revoked at once) with nothing in the record to say why."""

from __future__ import annotations

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace


@pytest.mark.parametrize("reason", ["   ", "\t"])
def test_a_blank_emergency_reason_is_refused_and_nothing_changes(ws: Workspace, reason: str):
    before = ws.snapshot()
    keys = ws.active_ids()

    done = ws.run("rotate", "trading", "--emergency", "--reason", reason)

    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert "--emergency needs --reason TEXT (not blank)" in done.stderr
    assert ws.active_ids() == keys, "no key minted or revoked at Bluum"
    assert ws.snapshot() == before, "no file changed"
