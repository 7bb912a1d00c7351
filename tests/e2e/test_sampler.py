"""The I1 sampler is itself tested: it must see an outage when a target's key stops working, and only then."""

from __future__ import annotations

from pathlib import Path

from rotator.cli.demo import open_account
from rotator.simulator import Simulator
from tests.e2e.conftest import dotenv_text
from tests.e2e.sampler import KeySampler, PairSource


def sampler_over(sim: Simulator, tmp_path: Path) -> tuple[KeySampler, str]:
    account = open_account(sim, "sampled")
    (tmp_path / "app.env").write_text(dotenv_text(account.first.pair, "sandbox", sim.base_url))
    return KeySampler(sim.root_url, tmp_path, lambda: [("app.env", "BLUUM_")], interval=0.01), account.first.info.id


def test_a_working_key_gives_no_outage_and_costs_bluum_nothing(sim: Simulator, tmp_path: Path):
    sampler, _ = sampler_over(sim, tmp_path)
    logged = len(sim.request_log())
    sampler.start()
    while sampler.probes < 5:
        sampler.round()
    assert sampler.stop() == []
    assert len(sim.request_log()) == logged, "probes must not appear in the request log nor use the rate budget"


def test_a_revoked_key_is_an_outage_naming_the_file_and_key(sim: Simulator, tmp_path: Path):
    sampler, key_id = sampler_over(sim, tmp_path)
    sampler.start()
    sim.revoke_key(key_id)
    outages = sampler.stop()
    assert outages
    assert outages[0].target == "app.env"
    assert outages[0].label == key_id
    assert outages[0].status == 401


def test_a_file_without_a_pair_is_an_outage(sim: Simulator, tmp_path: Path):
    sampler, _ = sampler_over(sim, tmp_path)
    (tmp_path / "app.env").write_text("APP_NAME=x\n")
    outages = sampler.stop()
    assert outages
    assert {(o.target, o.status) for o in outages} == {("app.env", None)}


def test_an_excused_pair_is_not_counted_but_others_are(sim: Simulator, tmp_path: Path):
    """Excused by pair, not by file: the other target's outage still counts."""
    excused = open_account(sim, "broken on purpose").first
    watched = open_account(sim, "still watched").first
    (tmp_path / "app.env").write_text(dotenv_text(excused.pair, "sandbox", sim.base_url))
    (tmp_path / "other.env").write_text(dotenv_text(watched.pair, "sandbox", sim.base_url))
    sampler = KeySampler(sim.root_url, tmp_path, lambda: [("app.env", "BLUUM_"), ("other.env", "BLUUM_")])
    sampler.excuse(excused.pair.api_key, excused.pair.api_secret.reveal())
    sim.revoke_key(str(excused.info.id))
    sim.revoke_key(str(watched.info.id))
    assert {o.target for o in sampler.stop()} == {"other.env"}


def test_a_pair_source_is_probed_like_a_file_and_named_in_its_outages(sim: Simulator, tmp_path: Path):
    """A target that is not a dotenv file (a Vault path) is a `PairSource`: a name and a callable returning the pair."""
    account = open_account(sim, "kept in vault")
    pair = account.first.pair
    source = PairSource("vault", lambda: (pair.api_key, pair.api_secret.reveal(), pair.key_id))
    sampler = KeySampler(sim.root_url, tmp_path, lambda: [source], interval=0.01).start()
    while sampler.probes < 3:
        sampler.round()
    sim.revoke_key(account.first.info.id)
    outages = sampler.stop()
    assert outages
    assert {(o.target, o.label, o.status) for o in outages} == {("vault", account.first.info.id, 401)}


def test_a_pair_source_that_cannot_be_read_is_an_outage_unless_the_test_made_it_so(sim: Simulator, tmp_path: Path):
    """None: the test stopped the server on purpose, the round skips it; an exception: an outage naming its type."""
    state = {"down": True}

    def read() -> tuple[str | None, str | None, str | None] | None:
        if state["down"]:
            return None
        raise ConnectionRefusedError("the message could hold anything, and is not shown")

    sampler = KeySampler(sim.root_url, tmp_path, lambda: [PairSource("vault", read)])
    sampler.round()
    assert (sampler.outages, sampler.skipped) == ([], 1)
    state["down"] = False
    outages = sampler.stop()
    assert outages
    assert {(o.target, o.label, o.status) for o in outages} == {("vault", "unreadable (ConnectionRefusedError)", None)}
    assert all("message" not in str(o) for o in outages)
