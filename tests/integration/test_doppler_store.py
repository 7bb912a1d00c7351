"""The Doppler store against the Doppler stand-in (real HTTP on loopback): the shared stage contract, Doppler's own
terms, and its faults (429 with Retry-After, 5xx, timeouts, a lost answer, bad tokens, unknown project or config)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends.base import SecretStore, WriteChecked, load_store_factories
from backends.doppler import DopplerStore
from backends.doppler.api import DopplerRetry
from backends.ledger import Ledger
from rotator.core.errors import ConfigError, StoreCorrupt, StoreDenied, StoreNotFound, StoreUnavailable
from rotator.core.model import Stage, StoredKey
from tests.conftest import LeakGuard
from tests.doppler_standin import DopplerStandIn, doppler_standin
from tests.store_contract import StageContract, assert_holds, make_key, tok

TOKEN = "dp.st.prd.standin0000000000000000000000000000000000"
PERSONAL = "dp.pt.standin1111111111111111111111111111111111111"

MakeStore = Callable[..., DopplerStore]


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def standin() -> Iterator[DopplerStandIn]:
    with doppler_standin() as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_store(standin: DopplerStandIn, sleeps: Sleeps, leak_guard: LeakGuard) -> Iterator[MakeStore]:
    leak_guard.watch(TOKEN, PERSONAL)  # every output and log line of every test here is searched for them
    standin.state.faults.clear()
    standin.add_config("backend", "prd", {"DATABASE_URL": "postgres://db"})
    standin.add_config("backend", "prd_rotator")
    standin.add_token(TOKEN, project="backend", config="prd")
    standin.add_token(PERSONAL)
    made: list[DopplerStore] = []

    def make(**options: Any) -> DopplerStore:
        options.setdefault("environ", {"DOPPLER_TOKEN": TOKEN})
        options.setdefault("retry", DopplerRetry(sleep=sleeps))
        options.setdefault("timeout", 2.0)
        options.setdefault("project", "backend")
        options.setdefault("config", "prd")
        store = DopplerStore("doppler", url=standin.url, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def seed(standin: DopplerStandIn, key: StoredKey) -> None:
    secrets = standin.secrets("backend", "prd")
    secrets |= {"BLUUM_API_KEY": key.api_key, "BLUUM_API_SECRET": key.api_secret.reveal()}
    if key.key_id:
        secrets["BLUUM_KEY_ID"] = key.key_id
    standin.add_config("backend", "prd", secrets)


class TestDopplerStoreContract(StageContract):
    """Every stage promise of `backends.base.SecretStore` (Doppler is never a ledger: see test_never_a_ledger)."""

    @pytest.fixture
    def store(self, standin: DopplerStandIn, make_store: MakeStore, seed_key: StoredKey) -> SecretStore:
        seed(standin, seed_key)
        return make_store()


# --------------------------------------------------------------------------------------------- Doppler's own terms


def test_never_a_ledger_and_checks_before_writing(make_store: MakeStore) -> None:
    store = make_store()
    assert not isinstance(store, Ledger)
    assert isinstance(store, WriteChecked)
    assert "doppler" in load_store_factories(["doppler"])


def test_applications_see_current_only_and_other_secrets_are_kept(
    standin: DopplerStandIn, make_store: MakeStore
) -> None:
    seed(standin, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token=tok(1)))
    secrets = standin.secrets("backend", "prd")
    assert secrets["BLUUM_API_KEY"] == make_key(0).api_key, "PENDING is not shown to applications"
    store.promote(tok(1))
    secrets = standin.secrets("backend", "prd")
    assert secrets["BLUUM_API_KEY"] == make_key(1).api_key
    assert secrets["BLUUM_API_SECRET"] == make_key(1).api_secret.reveal()
    assert secrets["DATABASE_URL"] == "postgres://db"
    document = json.loads(secrets["BLUUM_ROTATOR_STATE"])
    assert document["previous"]["api_key"] == make_key(0).api_key


def test_state_config_keeps_pending_and_previous_out_of_the_applications_config(
    standin: DopplerStandIn, make_store: MakeStore
) -> None:
    seed(standin, make_key(0))
    store = make_store(state_config="prd_rotator", environ={"DOPPLER_TOKEN": PERSONAL})
    store.put_pending(make_key(1, token=tok(1)))
    store.promote(tok(1))
    assert "BLUUM_ROTATOR_STATE" not in standin.secrets("backend", "prd")
    assert "BLUUM_ROTATOR_STATE" in standin.secrets("backend", "prd_rotator")
    assert_holds(store.read(Stage.PREVIOUS), make_key(0))


# --------------------------------------------------------------------------------------------- faults


def test_429_is_waited_out_with_its_retry_after(standin: DopplerStandIn, make_store: MakeStore, sleeps: Sleeps) -> None:
    seed(standin, make_key(0))
    store = make_store()
    standin.fail_next(2, status=429, retry_after=3)
    assert_holds(store.read(Stage.CURRENT), make_key(0))
    assert len(sleeps.waits) == 2
    assert all(wait >= 3 for wait in sleeps.waits)


def test_the_stand_in_rate_limit_answers_429_with_its_headers(standin: DopplerStandIn, make_store: MakeStore) -> None:
    import httpx

    standin.add_token("dp.st.limited", project="backend", config="prd")
    standin.state.rate_limit = 2
    try:
        answers = [
            httpx.get(
                f"{standin.url}/v3/configs/config/secrets",
                params={"project": "backend", "config": "prd"},
                headers={"Authorization": "Bearer dp.st.limited"},
            )
            for _ in range(3)
        ]
    finally:
        standin.state.rate_limit = 10_000
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {"messages": ["Rate limit exceeded"], "success": False}
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].headers["X-RateLimit-Remaining"] == "0"


def test_5xx_is_retried_then_reported_as_unavailable(
    standin: DopplerStandIn, make_store: MakeStore, sleeps: Sleeps
) -> None:
    seed(standin, make_key(0))
    store = make_store()
    standin.fail_next(1, status=503)
    assert_holds(store.read(Stage.CURRENT), make_key(0))
    standin.fail_next(5, status=500)
    with pytest.raises(StoreUnavailable, match="failed to answer") as failed:
        store.read(Stage.CURRENT)
    assert "rotator resume" in str(failed.value)
    standin.state.faults.clear()


def test_a_timeout_and_a_lost_answer_are_retried(standin: DopplerStandIn, make_store: MakeStore) -> None:
    seed(standin, make_key(0))
    store = make_store(timeout=0.3)
    standin.fail_next(1, method="POST", drop=True)  # the update is applied, its answer lost
    store.put_pending(make_key(1, token=tok(1)))
    standin.fail_next(1, method="GET", delay=0.6)
    store.promote(tok(1))
    assert standin.secrets("backend", "prd")["BLUUM_API_KEY"] == make_key(1).api_key


def test_bad_token_401_says_which_variable(standin: DopplerStandIn, make_store: MakeStore) -> None:
    store = make_store(environ={"DOPPLER_TOKEN": "dp.st.not-a-token-we-know"})
    with pytest.raises(StoreDenied, match=r"401.*\$DOPPLER_TOKEN is not valid") as denied:
        store.check_writable()
    assert "dp.st.not-a-token-we-know" not in str(denied.value)


def test_403_from_a_token_of_another_config_and_from_a_read_only_token(
    standin: DopplerStandIn, make_store: MakeStore
) -> None:
    seed(standin, make_key(0))
    standin.add_token("dp.st.other", project="backend", config="dev")
    with pytest.raises(StoreDenied, match=r"403.*read/write access"):
        make_store(environ={"DOPPLER_TOKEN": "dp.st.other"}).check_writable()
    standin.add_token("dp.st.readonly", project="backend", config="prd", write=False)
    store = make_store(environ={"DOPPLER_TOKEN": "dp.st.readonly"})
    store.check_writable()
    with pytest.raises(StoreDenied, match="403"):
        store.put_pending(make_key(1, token=tok(1)))


def test_unknown_project_or_config_404(standin: DopplerStandIn, make_store: MakeStore) -> None:
    personal = {"DOPPLER_TOKEN": PERSONAL}
    with pytest.raises(StoreNotFound, match=r"404.*Could not find requested config 'stg'.*`config`"):
        make_store(config="stg", environ=personal).check_writable()
    with pytest.raises(StoreNotFound, match=r"404.*Could not find requested project 'frontend'"):
        make_store(project="frontend", environ=personal).check_writable()


def test_no_token_and_a_plain_http_url_are_config_errors(standin: DopplerStandIn, make_store: MakeStore) -> None:
    with pytest.raises(ConfigError, match="set the environment variable DOPPLER_TOKEN"):
        make_store(environ={})
    with pytest.raises(ConfigError, match="state_secret must differ"):
        make_store(state_secret="BLUUM_API_KEY")
    with pytest.raises(ConfigError, match="uppercase letters"):
        make_store(prefix="bluum_")
    with pytest.raises(ConfigError, match="url"):
        DopplerStore("d", project="p", config="c", url="http://doppler.example.com", environ={"DOPPLER_TOKEN": TOKEN})


def test_the_token_is_never_in_a_message_or_repr(standin: DopplerStandIn, make_store: MakeStore) -> None:
    store = make_store()
    standin.fail_next(5, status=500)
    with pytest.raises(StoreUnavailable) as failed:
        store.read(Stage.CURRENT)
    standin.state.faults.clear()
    for text in (str(failed.value), repr(store), store.describe()):
        assert TOKEN not in text


def test_the_stand_in_answers_the_reference_shapes(standin: DopplerStandIn, make_store: MakeStore) -> None:
    """The paths and shapes the store does not use are served too, as the reference gives them (so the stand-in can
    be checked against it), and its errors are `{"messages": [...], "success": false}`."""
    import httpx

    make_store()
    standin.add_config("backend", "prd", {"HOST": "db", "URL": "postgres://${HOST}"})
    query = {"project": "backend", "config": "prd"}
    auth = {"Authorization": f"Bearer {PERSONAL}"}
    with httpx.Client(base_url=standin.url, headers=auth) as client:
        listed = client.get("/v3/configs/config/secrets", params=query).json()
        assert listed["success"] is True
        assert listed["secrets"]["URL"] == {"raw": "postgres://${HOST}", "computed": "postgres://db", "note": ""}
        one = client.get("/v3/configs/config/secret", params=query | {"name": "URL"}).json()
        assert one["name"] == "URL"
        assert one["value"]["computed"] == "postgres://db"
        download = client.get("/v3/configs/config/secrets/download", params=query | {"format": "json"}).json()
        assert download == {"HOST": "db", "URL": "postgres://db"}
        updated = client.post("/v3/configs/config/secrets", json=query | {"secrets": {"HOST": "db2", "URL": None}})
        assert updated.json()["secrets"] == {"HOST": {"raw": "db2", "computed": "db2", "note": ""}}
        both = client.post("/v3/configs/config/secrets", json=query | {"secrets": {}, "change_requests": []})
        assert both.status_code == 400
        assert both.json()["success"] is False
        missing = client.get("/v3/configs/config/secret", params=query | {"name": "NOPE"})
        assert missing.status_code == 404
        assert missing.json() == {"messages": ["Could not find requested secret 'NOPE'"], "success": False}
        anonymous = httpx.get(f"{standin.url}/v3/configs/config/secrets", params=query)
        assert anonymous.status_code == 401
        assert anonymous.json() == {"messages": ["Invalid Auth token"], "success": False}


def test_retry_after_as_an_http_date_is_honoured() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    import httpx

    from backends.doppler.api import _retry_after

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (_retry_after(httpx.Response(429, headers={"Retry-After": later})) or 0) <= 30
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
    assert _retry_after(httpx.Response(429)) is None


def test_an_empty_key_secret_is_named_with_the_doppler_fix(standin: DopplerStandIn, make_store: MakeStore) -> None:
    seed(standin, make_key(0))
    standin.add_config("backend", "prd", standin.secrets("backend", "prd") | {"BLUUM_API_SECRET": ""})
    with pytest.raises(StoreCorrupt, match="'BLUUM_API_SECRET' must be a non-empty string: set it in the Doppler"):
        make_store().read(Stage.CURRENT)
