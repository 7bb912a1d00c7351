"""The tenant calls one rotation makes (issue 18): the revoke finds the old key in the key list preflight read
seconds ago in the same command, so a rotation without a grace window makes 3 (list, create, revoke; before: 4, a
second list before the revoke). A list made old by a grace window (which always ends the command) or by a long wait
is read again. Against the simulator, counting the requests the tenant key paid for."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rotator.config.loader import load_config
from rotator.core.errors import ExitCode
from rotator.rotation import context
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.integration.test_fleet import active_keys, fleet_workspace, tenant_log


def key_calls(sim: Simulator, tenant_id: str, since: int) -> list[str]:
    """The tenant's calls on investor keys since request `since`: "list", "create" or "revoke"."""
    calls = []
    for entry in tenant_log(sim, tenant_id, since):
        path = str(entry["path"])
        if "api-keys" in path:
            calls.append("list" if entry["method"] == "GET" else "revoke" if path.endswith("/revoke") else "create")
    return calls


def test_a_rotation_without_a_grace_window_makes_three_tenant_calls(sim: Simulator, tmp_path: Path) -> None:
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, 1)
    sim.configure(propagation_delay=0.2)
    old = active_keys(sim, investors[0])
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        outcome = service.rotate("app0")
    assert outcome.exit_code is ExitCode.OK, outcome.message
    assert key_calls(sim, tenant_id, before) == ["list", "create", "revoke"]
    assert active_keys(sim, investors[0]) != old
    assert len(active_keys(sim, investors[0])) == 1


def test_after_a_grace_window_the_revoke_lists_the_keys_again(sim: Simulator, tmp_path: Path) -> None:
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, 1)
    config.write_text(config.read_text().replace('grace = "0s"', 'grace = "1s"'))
    sim.configure(propagation_delay=0.0)
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        waiting = service.rotate("app0")
        assert "grace window" in waiting.message, waiting.message
        assert key_calls(sim, tenant_id, before) == ["list", "create"]
        time.sleep(1.1)
        resumed = service.resume("app0")  # the same process, a later command: the first list is not used
    assert resumed.exit_code is ExitCode.OK, resumed.message
    assert key_calls(sim, tenant_id, before) == ["list", "create", "list", "revoke"]
    assert len(active_keys(sim, investors[0])) == 1


def test_a_list_older_than_the_bound_is_read_again(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A propagation wait longer than KEY_LIST_REUSE_SECONDS (here made 0.1 s, the wait 0.3 s) makes the list old."""
    config, tenant_id, investors = fleet_workspace(sim, tmp_path, 1)
    sim.configure(propagation_delay=0.3)
    monkeypatch.setattr(context, "KEY_LIST_REUSE_SECONDS", 0.1)
    before = len(sim.request_log())
    with RotationService(load_config(config)) as service:
        outcome = service.rotate("app0")
    assert outcome.exit_code is ExitCode.OK, outcome.message
    assert key_calls(sim, tenant_id, before) == ["list", "create", "list", "revoke"]
    assert len(active_keys(sim, investors[0])) == 1
