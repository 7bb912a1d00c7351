"""The e2e workspace with real consumers of its `trading` key (issue 19), shared by tests/e2e/test_consumers_*.py.

`fleet(ws)` starts consumer processes (tests/consumer_app.py) calling the workspace's simulator, stops them at the
end (no process left) and hands their logs to the leak guard; `declare(ws, fleet, ...)` points a store's `reload`
actions at each consumer's `POST /-/reload` and declares each as a consumer attested at `GET /-/bluum-key`.

The simulator's rate limit is raised for these tests: the consumers share one key with the rotator, and a few calls
per second each would otherwise spend the 10 per second a sandbox key gets and make the rotator's own calls wait.
Consumers call `GET /v1/accounts`, a route nothing else in these tests calls, so every `/v1/accounts` line in the
simulator's request log is a consumer's call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rotator.attest import fingerprint
from rotator.core.model import KeyPair
from tests.consumer_fixtures import ConsumerFleet, consumer_fleet
from tests.e2e.conftest import Workspace

CONSUMER_PATH = "/v1/accounts"
RATE_LIMITS = {"TEST": 1000.0, "PRODUCTION": 1000.0}


@contextmanager
def fleet(ws: Workspace, *, rate: float = 3.0) -> Iterator[ConsumerFleet]:
    ws.sim.configure(rate_limits=RATE_LIMITS)
    root = ws.root / "consumers"
    with consumer_fleet(root, ws.sim.base_url, rate=rate) as running:
        yield running
    for path in sorted(root.iterdir()):
        ws.guard.check(path.read_text(), f"consumer file {path.name}")


def declare(
    ws: Workspace,
    consumers: ConsumerFleet,
    *,
    table_line: str = 'path = "app.env"\n',
    credential_store: str = 'store = "app"\n',
    consumer_wait: str = "4s",
    timeout: str = "2s",
) -> None:
    """`reload` and `consumers` for every consumer, in the store table whose line is `table_line`, and the
    `consumer_wait` of the credential whose primary line is `credential_store`."""
    ws.edit_config(table_line, table_line + consumers.rotator_toml(timeout=timeout))
    ws.edit_config(credential_store, f'{credential_store}consumer_wait = "{consumer_wait}"\n')


def fp(pair: KeyPair) -> str:
    return fingerprint(pair.api_key)


def revoked_at(ws: Workspace, key_id: str) -> float:
    """When the simulator answered the revoke of `key_id` (its clock, the wall clock in these tests)."""
    revokes = [
        e
        for e in ws.sim.request_log()
        if e["method"] == "POST" and e["path"].endswith(f"/{key_id}/revoke") and e["status"] == 200
    ]
    assert len(revokes) == 1, revokes
    return float(revokes[0]["time"])


def consumer_calls(ws: Workspace, status: int | None = None) -> list[dict[str, Any]]:
    """The simulator's log of the consumers' calls (answered `status`, when given)."""
    return [e for e in ws.sim.request_log() if e["path"] == CONSUMER_PATH and (status is None or e["status"] == status)]
