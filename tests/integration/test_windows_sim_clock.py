"""The real `run_due` on the simulator's clock over three simulated weeks: a fleet whose keys Bluum mints with a
10-day life (the simulator's key_ttl), a nightly allow window with a deny window inside it, and a cap of 3 scheduled
starts per paying key per window.

The service's clock is the simulator's (`clock=sim.now`), which the test moves an hour per tick; stores are dotenv
files, Bluum is the simulator over HTTP. Checked against the simulator and the records, by plain arithmetic: no key
expires, no start falls inside the deny window or outside the allow window, no window holds more than 3 starts.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rotator.config.loader import load_config
from rotator.rotation.service import RotationService
from rotator.simulator import Simulator
from tests.integration.test_fleet import fleet_workspace

DAY = 86400.0
CREDENTIALS = 6
CAP = 3
WINDOWS = """
[windows]
timezone = "UTC"
allow = [{ cron = "0 22 * * *", duration = "4h" }]
deny = [{ cron = "0 23 * * *", duration = "30m" }]
expiry_lead = "3d"
starts_per_window = 3
"""


def test_run_due_on_the_simulators_clock_keeps_windows_cap_and_expiry(sim: Simulator, tmp_path: Path) -> None:
    sim.configure(propagation_delay=0.0, key_ttl=10 * DAY, rate_limits={"TEST": 1000, "PRODUCTION": 1000})
    config, _, _ = fleet_workspace(sim, tmp_path, CREDENTIALS)
    config.write_text(config.read_text() + WINDOWS + "\n[bluum]\nrate_limit_sandbox = 1000\n")  # no pacing waits
    names = [f"app{n}" for n in range(CREDENTIALS)]
    starts: list[float] = []
    seen: dict[str, str] = {}
    waited = 0
    with RotationService(load_config(config), clock=sim.now) as service:
        for _ in range(int(21 * DAY / 3600)):  # 21 simulated days, a tick an hour
            sim.advance_clock(3600)
            for name in names:
                outcome = service.run_due(name)
                waited += "due, waiting:" in outcome.message
                record = outcome.record
                if record is not None and record.age_source is None and seen.get(name) != record.token:
                    seen[name] = record.token
                    starts.append(record.started_at)
    assert [k["id"] for k in sim.keys() if k["status"] == "expired"] == []  # 0 keys expired
    assert len(starts) >= 2 * CREDENTIALS  # each key rotated at least twice (a 10-day life, due 3 days early)
    assert waited > 0  # keys fell due outside the windows and waited
    nights: Counter[str] = Counter()
    for started in starts:
        at = datetime.fromtimestamp(started, UTC)
        assert not (at.hour == 23 and at.minute < 30), f"a start inside the deny window: {at}"
        assert at.hour >= 22 or at.hour < 2, f"a start outside the allow window: {at}"
        nights[(at - timedelta(hours=2)).date().isoformat()] += 1
    assert max(nights.values()) <= CAP, nights
    assert max(nights.values()) == CAP  # the fleet, due together, was spread by the cap
