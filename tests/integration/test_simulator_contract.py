"""The simulator's HTTP contract (bluum-api.md §11 plus the decisions in rotator/simulator/__init__.py).

Everything goes over real HTTP with httpx against the session simulator (reset per test by `sim`), except the
lifecycle tests, which start their own server or a `python -m rotator simulator` subprocess.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rotator.core.errors import ConfigError
from rotator.simulator import Simulator

REQUEST_ID = re.compile(r"req_[0-9a-hjkmnp-tv-z]{26}")
KEY_ID = re.compile(r"apk_[0-9a-hjkmnp-tv-z]{26}")
TRACE_ID = re.compile(r"[0-9a-f]{32}")
UNLIMITED = {"TEST": 100_000, "PRODUCTION": 100_000}
# httpx builds a fresh TLS context (loading the CA bundle, ~25 ms) for every client unless handed one; the
# simulator is plain HTTP, so one shared context keeps per-test set-up cheap.
TLS = ssl.create_default_context()
KEY_FIELDS = {
    "id",
    "object",
    "created",
    "livemode",
    "account_id",
    "name",
    "environment",
    "status",
    "public_key",
    "expires_at",
    "metadata",
}


# ---------------------------------------------------------------------------------------------------- helpers


def client_for(sim: Simulator, key: dict[str, Any] | None = None) -> httpx.Client:
    auth = (key["public_key"], key["secret_key"]) if key is not None else None
    return httpx.Client(base_url=sim.root_url, auth=auth, timeout=10, verify=TLS)


def error_of(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a wrapped-style error with this status and code; return the inner error object."""
    assert resp.status_code == status, resp.text
    assert REQUEST_ID.fullmatch(resp.headers["x-request-id"])
    inner: dict[str, Any] = resp.json()["error"]
    assert inner["code"] == code
    assert TRACE_ID.fullmatch(inner["trace_id"])
    assert inner["message"]
    return inner


def create_key(api: httpx.Client, investor: str, **body: Any) -> dict[str, Any]:
    resp = api.post(f"/v1/investors/{investor}/api-keys", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.fixture
def tenant(sim: Simulator) -> dict[str, Any]:
    return sim.create_tenant_key("TEST")


@pytest.fixture
def investor(sim: Simulator) -> str:
    return sim.create_investor()


@pytest.fixture
def api(sim: Simulator, tenant: dict[str, Any]) -> Iterator[httpx.Client]:
    with client_for(sim, tenant) as client:
        yield client


@pytest.fixture
def anon(sim: Simulator) -> Iterator[httpx.Client]:
    with client_for(sim) as client:
        yield client


@pytest.fixture
def investor_key(api: httpx.Client, investor: str) -> dict[str, Any]:
    created = create_key(api, investor, name="investor key")
    return {"public_key": created["public_key"], "secret_key": created["secret_key"], "id": created["id"]}


def route_list(investor: str) -> list[tuple[str, str]]:
    apk = "apk_" + "0" * 26
    return [
        ("GET", "/v1/assets"),
        ("GET", "/v1/assets/list"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/investors"),
        ("POST", f"/v1/investors/{investor}/api-keys"),
        ("GET", f"/v1/investors/{investor}/api-keys"),
        ("POST", f"/v1/investors/{investor}/api-keys/{apk}/revoke"),
    ]


ROUTE_INDEXES = range(7)
TENANT_ONLY = [3, 4, 5, 6]
SHARED = [0, 1, 2]


# ---------------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("route", ROUTE_INDEXES)
def test_missing_authorization_is_401_001_on_every_route(anon: httpx.Client, investor: str, route: int) -> None:
    method, path = route_list(investor)[route]
    inner = error_of(anon.request(method, path), 401, "BLUM-401-001")
    assert inner["type"] == "authentication_error"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sk_test_abcdefgh",
        "Digest username=x",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:bad-utf8").decode(),
    ],
)
def test_malformed_authorization_is_401_002(anon: httpx.Client, header: str) -> None:
    inner = error_of(anon.get("/v1/assets", headers={"Authorization": header}), 401, "BLUM-401-002")
    assert inner["type"] == "authentication_error"


def test_unknown_key_wrong_secret_and_revoked_are_all_401_003(sim: Simulator, tenant: dict[str, Any]) -> None:
    other = sim.create_tenant_key("TEST")
    cases = [
        ("pk_test_" + "0" * 26, tenant["secret_key"]),  # unknown key
        (tenant["public_key"], tenant["secret_key"] + "x"),  # wrong secret
        (tenant["public_key"], other["secret_key"]),  # another key's secret
    ]
    with client_for(sim) as client:
        for user, password in cases:
            error_of(client.get("/v1/assets", auth=(user, password)), 401, "BLUM-401-003")
        assert client.get("/v1/assets", auth=(tenant["public_key"], tenant["secret_key"])).status_code == 200
        sim.revoke_key(tenant["id"])
        error_of(client.get("/v1/assets", auth=(tenant["public_key"], tenant["secret_key"])), 401, "BLUM-401-003")
    assert all(entry["key_id"] is None for entry in sim.request_log() if entry["status"] == 401)


def test_deactivated_key_is_401_004(sim: Simulator, api: httpx.Client, tenant: dict[str, Any]) -> None:
    assert api.get("/v1/accounts").status_code == 200
    view = sim.deactivate_key(tenant["id"])
    assert view["status"] == "inactive"
    error_of(api.get("/v1/accounts"), 401, "BLUM-401-004")
    # a wrong secret still says 003: the status of a key is not revealed to someone without its secret
    error_of(api.get("/v1/accounts", auth=(tenant["public_key"], "wrong-secret")), 401, "BLUM-401-003")


def test_expired_key_is_401_005_and_its_status_becomes_expired(
    sim: Simulator, api: httpx.Client, tenant: dict[str, Any]
) -> None:
    assert api.get("/v1/assets").status_code == 200
    sim.expire_key(tenant["id"])
    error_of(api.get("/v1/assets"), 401, "BLUM-401-005")
    (view,) = [k for k in sim.keys() if k["id"] == tenant["id"]]
    assert view["status"] == "expired"
    assert view["expires_at"] is not None


def test_key_ttl_sets_expires_at_and_the_clock_expires_the_key(
    sim: Simulator, api: httpx.Client, investor: str
) -> None:
    sim.configure(key_ttl=3600)
    created = create_key(api, investor)
    assert created["expires_at"] is not None
    expires = calendar.timegm(time.strptime(created["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(expires - (created["created"] + 3600)) <= 1
    with client_for(sim, created) as own:
        assert own.get("/v1/assets").status_code == 200
        sim.advance_clock(3599)
        assert own.get("/v1/assets").status_code == 200
        sim.advance_clock(2)
        error_of(own.get("/v1/assets"), 401, "BLUM-401-005")
    listed = api.get(f"/v1/investors/{investor}/api-keys").json()["data"]
    assert [k["status"] for k in listed] == ["expired"]
    assert api.get("/v1/assets").status_code == 200  # tenant keys get no TTL


@pytest.mark.parametrize("route", TENANT_ONLY)
def test_investor_key_is_403_001_on_tenant_only_routes(
    sim: Simulator, investor: str, investor_key: dict[str, Any], route: int
) -> None:
    method, path = route_list(investor)[route]
    with client_for(sim, investor_key) as client:
        inner = error_of(client.request(method, path, json={} if method == "POST" else None), 403, "BLUM-403-001")
    assert inner["type"] == "permission_error"
    assert len(sim.keys()) == 2  # the forbidden create made nothing


@pytest.mark.parametrize("route", SHARED)
def test_investor_key_works_on_shared_routes(
    sim: Simulator, investor: str, investor_key: dict[str, Any], route: int
) -> None:
    sim.create_investor()  # another investor the investor key must not see in /accounts
    method, path = route_list(investor)[route]
    with client_for(sim, investor_key) as client:
        resp = client.request(method, path)
    assert resp.status_code == 200
    if path == "/v1/accounts":
        assert [a["id"] for a in resp.json()] == [investor]
    assert sim.request_log()[-1]["key_id"] == investor_key["id"]


def test_basic_auth_uses_public_key_and_secret_key(sim: Simulator, tenant: dict[str, Any]) -> None:
    token = base64.b64encode(f"{tenant['public_key']}:{tenant['secret_key']}".encode()).decode()
    with client_for(sim) as client:
        assert client.get("/v1/assets", headers={"Authorization": f"basic {token}"}).status_code == 200
        error_of(
            client.get("/v1/assets", auth=(tenant["id"], tenant["secret_key"])), 401, "BLUM-401-003"
        )  # the key id is not the user name


# ---------------------------------------------------------------------------------------------------- headers, errors


def test_every_response_carries_a_unique_request_id(sim: Simulator, api: httpx.Client, anon: httpx.Client) -> None:
    sim.inject_fault(method="GET", path="/v1/accounts", count=1, status=503)
    sim.inject_fault(method="GET", path="/v1/investors", count=1, status=429)
    responses = [
        api.get("/v1/assets"),  # 200
        anon.get("/v1/assets"),  # 401
        api.get("/v1/nothing-here"),  # 404 under /v1
        anon.get("/elsewhere"),  # 404 outside /v1
        anon.get("/_sim/health"),  # control plane
        anon.post("/_sim/config", json={"bogus": 1}),  # control plane 400
        api.get("/v1/accounts"),  # injected 503
        api.get("/v1/investors"),  # injected 429
        api.post("/v1/investors/not-an-id/api-keys"),  # 400
    ]
    assert [r.status_code for r in responses] == [200, 401, 404, 404, 200, 400, 503, 429, 400]
    request_ids = [r.headers["x-request-id"] for r in responses]
    assert all(REQUEST_ID.fullmatch(rid) for rid in request_ids)
    assert len(set(request_ids)) == len(request_ids)
    logged = {entry["request_id"] for entry in sim.request_log()}
    assert {request_ids[i] for i in (0, 1, 2, 3, 6, 7, 8)} <= logged  # /_sim calls are not logged


@pytest.mark.parametrize(
    "raw",
    [b"BREW /v1/assets HTTP/1.1\r\nHost: x\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET /v1/assets HTTP/9.9\r\n\r\n"],
)
def test_malformed_requests_still_get_a_json_error_and_a_request_id(sim: Simulator, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert 400 <= status < 600
    assert REQUEST_ID.fullmatch(headers["X-Request-Id"])
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body)["error"]["code"] == f"BLUM-{status}-001"


@pytest.mark.parametrize(
    ("content_length", "code"), [("2000000", "BLUM-400-008"), ("ten", "BLUM-400-001"), ("-1", "BLUM-400-001")]
)
def test_unreadable_bodies_are_400_and_close_the_connection(sim: Simulator, content_length: str, code: str) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        conn.sendall(f"POST /v1/assets HTTP/1.1\r\nHost: x\r\nContent-Length: {content_length}\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):  # the server closes: the loop ends without us sending a body
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nConnection: close" in head
    assert json.loads(body)["error"]["code"] == code


@pytest.mark.parametrize(
    ("style", "keys"),
    [
        ("wrapped", {"error"}),
        ("flat", {"code", "message", "trace_id"}),
        ("legacy", {"status", "code", "message", "trace_id"}),
    ],
)
def test_error_styles(sim: Simulator, anon: httpx.Client, style: str, keys: set[str]) -> None:
    assert anon.post("/_sim/config", json={"error_style": style}).json()["error_style"] == style
    resp = anon.get("/v1/assets")
    assert resp.status_code == 401
    body = resp.json()
    assert set(body) == keys
    inner = body["error"] if style == "wrapped" else body
    assert inner["code"] == "BLUM-401-001"
    assert TRACE_ID.fullmatch(inner["trace_id"])
    if style == "wrapped":
        assert set(inner) == {"type", "code", "message", "trace_id"}
    if style == "legacy":
        assert body["status"] == "error"


def test_error_style_none_restores_wrapped(sim: Simulator, anon: httpx.Client) -> None:
    sim.configure(error_style="flat")
    assert "code" in anon.get("/v1/assets").json()
    sim.configure(error_style=None)
    assert anon.get("/v1/assets").json()["error"]["code"] == "BLUM-401-001"


# ---------------------------------------------------------------------------------------------------- read routes


def test_assets_is_a_json_array_and_assets_list_an_envelope(api: httpx.Client) -> None:
    assets = api.get("/v1/assets").json()
    assert isinstance(assets, list)
    assert len(assets) >= 3
    assert {"AAPL", "BTC/USD"} <= {a["symbol"] for a in assets}
    listed = api.get("/v1/assets/list").json()
    assert listed["status"] == "success"
    assert listed["count"] == len(listed["data"]) == len(assets)


def test_asset_filters(api: httpx.Client) -> None:
    resp = api.get("/v1/assets", params={"asset_class": "us_equity", "tradable": "true"})
    assets = resp.json()
    assert assets
    assert all(a["asset_class"] == "us_equity" and a["tradable"] is True for a in assets)
    assert "BTC/USD" not in {a["symbol"] for a in assets}
    crypto = api.get("/v1/assets/list", params={"asset_class": "crypto"}).json()
    assert [a["symbol"] for a in crypto["data"]] == ["BTC/USD"]
    assert crypto["count"] == 1
    found = api.get("/v1/assets/search", params={"q": "apple"}).json()
    assert [a["symbol"] for a in found["data"]] == ["AAPL"]


def test_accounts_is_a_bare_array_of_the_tenants_investors(sim: Simulator, api: httpx.Client) -> None:
    assert api.get("/v1/accounts").json() == []
    first, second = sim.create_investor(), sim.create_investor()
    accounts = api.get("/v1/accounts").json()
    assert isinstance(accounts, list)
    assert [a["id"] for a in accounts] == [first, second]


def test_investors_list_envelope(sim: Simulator, api: httpx.Client) -> None:
    created = [sim.create_investor() for _ in range(3)]
    body = api.get("/v1/investors").json()
    assert body["object"] == "list"
    assert body["url"] == "/v1/investors"
    assert body["has_more"] is False
    assert [i["id"] for i in body["data"]] == created
    assert all(re.fullmatch(r"inv_[0-9a-hjkmnp-tv-z]{26}", i) for i in created)
    page = api.get("/v1/investors", params={"limit": 2}).json()
    assert page["has_more"] is True
    assert len(page["data"]) == 2


# ---------------------------------------------------------------------------------------------------- create


def test_create_returns_201_and_the_documented_key_object(sim: Simulator, api: httpx.Client, investor: str) -> None:
    before = int(sim.now())
    resp = api.post(f"/v1/investors/{investor}/api-keys", json={"name": "svc"})
    assert resp.status_code == 201
    assert REQUEST_ID.fullmatch(resp.headers["x-request-id"])
    key = resp.json()
    assert set(key) == KEY_FIELDS | {"secret_key"}
    assert KEY_ID.fullmatch(key["id"])
    assert key["object"] == "api_key"
    assert isinstance(key["created"], int)
    assert before <= key["created"] <= sim.now()
    assert key["livemode"] is False
    assert key["account_id"] == investor
    assert key["name"] == "svc"
    assert key["environment"] == "TEST"  # the default
    assert key["status"] == "active"
    assert key["public_key"].startswith("pk_test_")
    assert key["expires_at"] is None
    assert key["metadata"] == {}
    assert isinstance(key["secret_key"], str)
    assert len(key["secret_key"]) >= 32


def test_production_tenant_key_creates_livemode_production_keys(sim: Simulator, investor: str) -> None:
    prod = sim.create_tenant_key("PRODUCTION")
    with client_for(sim, prod) as client:
        key = create_key(client, investor, environment="PRODUCTION")
    assert key["livemode"] is True
    assert key["environment"] == "PRODUCTION"
    assert key["public_key"].startswith("pk_live_")


def test_created_key_authenticates_and_the_log_names_it(sim: Simulator, api: httpx.Client, investor: str) -> None:
    key = create_key(api, investor)
    with client_for(sim, key) as own:
        assert own.get("/v1/assets").status_code == 200
    last = sim.request_log()[-1]
    assert last["key_id"] == key["id"]
    assert last["method"] == "GET"
    assert last["path"] == "/v1/assets"
    assert last["status"] == 200
    assert isinstance(last["time"], float)


def test_secret_appears_only_in_the_create_response(
    sim: Simulator, api: httpx.Client, anon: httpx.Client, investor: str
) -> None:
    key = create_key(api, investor)
    secret = key["secret_key"]
    texts = [
        api.get(f"/v1/investors/{investor}/api-keys").text,
        api.post(f"/v1/investors/{investor}/api-keys/{key['id']}/revoke").text,
        anon.get("/_sim/keys").text,
        anon.get("/_sim/log").text,
        json.dumps(sim.keys()),
        json.dumps(sim.request_log()),
        repr(sim._state._keys),  # the dataclass repr must hide it too
    ]
    assert all(secret not in text for text in texts)
    assert all("secret_key" not in text for text in texts[:-1])
    assert secret in sim.all_secrets()


def test_create_accepts_a_chunked_body(api: httpx.Client, investor: str) -> None:
    resp = api.post(f"/v1/investors/{investor}/api-keys", content=iter([b'{"name":', b'"chunked"}']))
    assert resp.status_code == 201
    assert resp.json()["name"] == "chunked"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"name": "x" * 121}, 400, "BLUM-400-001", "name"),
        ({"name": 5}, 400, "BLUM-400-003", "name"),
        ({"environment": "STAGING"}, 400, "BLUM-400-004", "environment"),
        ({"environment": "test"}, 400, "BLUM-400-004", "environment"),
        ({"colour": "blue"}, 400, "BLUM-400-001", "colour"),
        ({"environment": "PRODUCTION"}, 403, "BLUM-403-003", "environment"),
    ],
)
def test_create_rejects_bad_bodies(
    sim: Simulator, api: httpx.Client, investor: str, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    inner = error_of(api.post(f"/v1/investors/{investor}/api-keys", json=body), status, code)
    assert inner["param"] == param
    assert [k for k in sim.keys() if k["owner"] == investor] == []


def test_name_of_exactly_120_characters_is_fine(api: httpx.Client, investor: str) -> None:
    assert create_key(api, investor, name="n" * 120)["name"] == "n" * 120


def test_create_rejects_invalid_json(api: httpx.Client, investor: str) -> None:
    resp = api.post(
        f"/v1/investors/{investor}/api-keys", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    error_of(resp, 400, "BLUM-400-001")
    error_of(api.post(f"/v1/investors/{investor}/api-keys", json=["a", "list"]), 400, "BLUM-400-001")


@pytest.mark.parametrize(
    "bad_id", ["d78a5f4b-a8bb-4473-bdd7-77be5cd8296d", "inv_short", "inv_" + "I" * 26, "inv_" + "u" * 26]
)
def test_malformed_investor_id_is_400_003(api: httpx.Client, bad_id: str) -> None:
    inner = error_of(api.post(f"/v1/investors/{bad_id}/api-keys", json={}), 400, "BLUM-400-003")
    assert inner["param"] == "investor_id"
    error_of(api.get(f"/v1/investors/{bad_id}/api-keys"), 400, "BLUM-400-003")


def test_unknown_investor_is_404_001(api: httpx.Client) -> None:
    ghost = "inv_" + "2" * 26
    error_of(api.post(f"/v1/investors/{ghost}/api-keys", json={}), 404, "BLUM-404-001")
    error_of(api.get(f"/v1/investors/{ghost}/api-keys"), 404, "BLUM-404-001")
    error_of(api.post(f"/v1/investors/{ghost}/api-keys/apk_{'3' * 26}/revoke"), 404, "BLUM-404-001")


def test_production_tenant_key_cannot_mint_test_keys(sim: Simulator, investor: str) -> None:
    prod = sim.create_tenant_key("PRODUCTION")
    with client_for(sim, prod) as client:
        # `environment` defaults to TEST, so a production caller must send PRODUCTION explicitly
        error_of(client.post(f"/v1/investors/{investor}/api-keys", json={}), 403, "BLUM-403-003")
        error_of(client.post(f"/v1/investors/{investor}/api-keys", json={"environment": "TEST"}), 403, "BLUM-403-003")


# ---------------------------------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_stored_response(sim: Simulator, api: httpx.Client, investor: str) -> None:
    url = f"/v1/investors/{investor}/api-keys"
    headers = {"Idempotency-Key": "rotation-42"}
    first = api.post(url, json={"name": "a"}, headers=headers)
    second = api.post(url, json={"name": "a"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()  # same key, same secret
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert [k["id"] for k in sim.keys() if k["owner"] == investor] == [first.json()["id"]]
    other = api.post(url, json={"name": "a"}, headers={"Idempotency-Key": "rotation-43"})
    assert other.json()["id"] != first.json()["id"]  # a new Idempotency-Key is a new request


def test_idempotency_key_with_another_body_or_path_is_409(sim: Simulator, api: httpx.Client, investor: str) -> None:
    headers = {"Idempotency-Key": "k1"}
    create_url = f"/v1/investors/{investor}/api-keys"
    assert api.post(create_url, json={"name": "a"}, headers=headers).status_code == 201
    inner = error_of(api.post(create_url, json={"name": "b"}, headers=headers), 409, "BLUM-409-001")
    assert inner["type"] == "invalid_request_error"
    elsewhere = sim.create_investor()
    error_of(api.post(f"/v1/investors/{elsewhere}/api-keys", json={"name": "a"}, headers=headers), 409, "BLUM-409-001")
    assert len([k for k in sim.keys() if k["owner"] != "tenant"]) == 1


def test_idempotency_records_expire_after_24_hours(sim: Simulator, api: httpx.Client, investor: str) -> None:
    url = f"/v1/investors/{investor}/api-keys"
    headers = {"Idempotency-Key": "daily"}
    first = api.post(url, json={}, headers=headers).json()
    sim.advance_clock(24 * 3600 - 5)
    assert api.post(url, json={}, headers=headers).json()["id"] == first["id"]
    sim.advance_clock(10)
    again = api.post(url, json={}, headers=headers)
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first["id"]


def test_concurrent_creates_with_one_idempotency_key_make_one_key(sim: Simulator, tenant: dict[str, Any]) -> None:
    sim.configure(rate_limits=UNLIMITED)
    investor = sim.create_investor()
    barrier = threading.Barrier(8)
    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        with client_for(sim, tenant) as client:
            barrier.wait()
            resp = client.post(
                f"/v1/investors/{investor}/api-keys", json={"name": "same"}, headers={"Idempotency-Key": "race"}
            )
        assert resp.status_code == 201
        with lock:
            bodies.append(resp.json())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == 8
    assert all(body == bodies[0] for body in bodies)
    assert len([k for k in sim.keys() if k["owner"] == investor]) == 1


# ---------------------------------------------------------------------------------------------------- list


def test_list_is_paged_with_limit_offset_and_has_more(sim: Simulator, api: httpx.Client, investor: str) -> None:
    sim.configure(rate_limits=UNLIMITED)
    created = [create_key(api, investor, name=f"k{i}")["id"] for i in range(5)]
    url = f"/v1/investors/{investor}/api-keys"
    pages = [api.get(url, params={"limit": 2, "offset": offset}).json() for offset in (0, 2, 4)]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [k["id"] for p in pages for k in p["data"]] == created
    assert all(p["url"] == url and p["object"] == "list" for p in pages)
    assert all(set(k) == KEY_FIELDS for p in pages for k in p["data"])
    everything = api.get(url).json()
    assert [k["id"] for k in everything["data"]] == created
    assert everything["has_more"] is False
    assert api.get(url, params={"limit": 200}).status_code == 200
    assert api.get(url, params={"offset": 5}).json()["data"] == []


def test_list_default_limit_is_50(sim: Simulator, api: httpx.Client, investor: str) -> None:
    sim.configure(rate_limits=UNLIMITED)
    for _ in range(51):
        create_key(api, investor)
    page = api.get(f"/v1/investors/{investor}/api-keys").json()
    assert len(page["data"]) == 50
    assert page["has_more"] is True


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 201}, "BLUM-400-001"),
        ({"limit": 0}, "BLUM-400-001"),
        ({"limit": "ten"}, "BLUM-400-003"),
        ({"offset": -1}, "BLUM-400-001"),
    ],
)
def test_list_rejects_bad_paging(api: httpx.Client, investor: str, params: dict[str, Any], code: str) -> None:
    inner = error_of(api.get(f"/v1/investors/{investor}/api-keys", params=params), 400, code)
    assert inner["param"] == next(iter(params))


def test_environments_are_separate_worlds(sim: Simulator, api: httpx.Client, investor: str) -> None:
    test_key = create_key(api, investor)
    prod = sim.create_tenant_key("PRODUCTION")
    with client_for(sim, prod) as client:
        prod_key = create_key(client, investor, environment="PRODUCTION")
        listed = client.get(f"/v1/investors/{investor}/api-keys").json()["data"]
        assert [k["id"] for k in listed] == [prod_key["id"]]
        error_of(client.post(f"/v1/investors/{investor}/api-keys/{test_key['id']}/revoke"), 404, "BLUM-404-001")
    assert [k["id"] for k in api.get(f"/v1/investors/{investor}/api-keys").json()["data"]] == [test_key["id"]]


# ---------------------------------------------------------------------------------------------------- revoke


def test_revoke_returns_the_revoked_key_and_it_stops_working_at_once(
    sim: Simulator, api: httpx.Client, investor: str
) -> None:
    key = create_key(api, investor)
    with client_for(sim, key) as own:
        assert own.get("/v1/assets").status_code == 200
        resp = api.post(f"/v1/investors/{investor}/api-keys/{key['id']}/revoke")
        assert resp.status_code == 200
        revoked = resp.json()
        assert set(revoked) == KEY_FIELDS
        assert revoked["status"] == "revoked"
        assert revoked["id"] == key["id"]
        error_of(own.get("/v1/assets"), 401, "BLUM-401-003")
    assert api.get(f"/v1/investors/{investor}/api-keys").json()["data"][0]["status"] == "revoked"
    assert [k["status"] for k in sim.keys() if k["id"] == key["id"]] == ["revoked"]


def test_revoke_of_unknown_or_foreign_key_is_404_001(sim: Simulator, api: httpx.Client, investor: str) -> None:
    error_of(api.post(f"/v1/investors/{investor}/api-keys/apk_{'4' * 26}/revoke"), 404, "BLUM-404-001")
    other = sim.create_investor()
    key = create_key(api, other)
    error_of(api.post(f"/v1/investors/{investor}/api-keys/{key['id']}/revoke"), 404, "BLUM-404-001")
    error_of(api.post(f"/v1/investors/{investor}/api-keys/{uuid.uuid4()!s}/revoke"), 400, "BLUM-400-003")
    assert [k["status"] for k in sim.keys() if k["id"] == key["id"]] == ["active"]


def test_repeat_revoke_is_200_unchanged_or_409_when_configured(
    sim: Simulator, api: httpx.Client, investor: str
) -> None:
    key = create_key(api, investor)
    url = f"/v1/investors/{investor}/api-keys/{key['id']}/revoke"
    first = api.post(url)
    second = api.post(url)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    sim.configure(revoke_repeat="conflict")
    error_of(api.post(url), 409, "BLUM-409-002")
    fresh = create_key(api, investor)
    assert api.post(f"/v1/investors/{investor}/api-keys/{fresh['id']}/revoke").status_code == 200


def test_unknown_paths_are_404_002(api: httpx.Client, anon: httpx.Client) -> None:
    for resp in (
        api.get("/v1/nothing"),
        api.get("/v1/assets/"),
        api.delete("/v1/assets"),
        api.post("/v1/accounts"),
        api.get("/v1"),
        anon.get("/elsewhere"),
        anon.get("/_sim/nothing"),
    ):
        error_of(resp, 404, "BLUM-404-002")
    # under /v1 authentication comes first
    error_of(anon.get("/v1/nothing"), 401, "BLUM-401-001")


# ---------------------------------------------------------------------------------------------------- rate limit


@pytest.mark.parametrize(("environment", "limit"), [("TEST", 10), ("PRODUCTION", 25)])
def test_rate_limit_per_key_pair(sim: Simulator, environment: str, limit: int) -> None:
    key = sim.create_tenant_key(environment)
    other = sim.create_tenant_key(environment)
    with client_for(sim, key) as client, client_for(sim, other) as second:
        statuses = [client.get("/v1/assets").status_code for _ in range(limit)]
        assert statuses == [200] * limit
        limited = client.get("/v1/assets")
        inner = error_of(limited, 429, "BLUM-429-001")
        assert inner["type"] == "rate_limit_error"
        retry_after = limited.headers["retry-after"]
        assert retry_after.isdigit()
        assert int(retry_after) >= 1
        assert second.get("/v1/assets").status_code == 200  # another key pair has its own window
        sim.advance_clock(int(retry_after))
        assert client.get("/v1/assets").status_code == 200
    statuses_logged = [e["status"] for e in sim.request_log() if e["key_id"] == key["id"]]
    assert statuses_logged == [200] * limit + [429, 200]


def test_401s_do_not_count_against_the_rate_limit(sim: Simulator, tenant: dict[str, Any]) -> None:
    with client_for(sim) as client:
        for _ in range(15):
            assert client.get("/v1/assets", auth=(tenant["public_key"], "wrong")).status_code == 401
        auth = (tenant["public_key"], tenant["secret_key"])
        assert [client.get("/v1/assets", auth=auth).status_code for _ in range(10)] == [200] * 10
        assert client.get("/v1/assets", auth=auth).status_code == 429


def test_rate_limits_can_be_lifted_and_restored(sim: Simulator, api: httpx.Client) -> None:
    config = sim.configure(rate_limits={"TEST": 40})
    assert config["rate_limits"] == {"TEST": 40.0, "PRODUCTION": 25.0}
    assert [api.get("/v1/assets").status_code for _ in range(40)] == [200] * 40
    assert api.get("/v1/assets").status_code == 429
    assert sim.configure(rate_limits=None)["rate_limits"] == {"TEST": 10.0, "PRODUCTION": 25.0}


# ---------------------------------------------------------------------------------------------------- propagation


def test_propagation_delay_keeps_new_keys_at_401_003(sim: Simulator, investor: str) -> None:
    sim.configure(propagation_delay=30)
    tenant = sim.create_tenant_key("TEST")  # control-plane keys are valid at once
    with client_for(sim, tenant) as api:
        assert api.get("/v1/assets").status_code == 200
        key = create_key(api, investor)
    with client_for(sim, key) as own:
        error_of(own.get("/v1/assets"), 401, "BLUM-401-003")
        sim.advance_clock(29)
        error_of(own.get("/v1/assets"), 401, "BLUM-401-003")
        sim.advance_clock(1.5)
        assert own.get("/v1/assets").status_code == 200


def test_huge_propagation_delay_means_the_new_key_never_works(sim: Simulator, api: httpx.Client, investor: str) -> None:
    sim.configure(propagation_delay=10**9)
    key = create_key(api, investor)
    with client_for(sim, key) as own:
        sim.advance_clock(30 * 24 * 3600)
        error_of(own.get("/v1/assets"), 401, "BLUM-401-003")
    assert [k["status"] for k in sim.keys() if k["id"] == key["id"]] == ["active"]  # listed as active all along


# ---------------------------------------------------------------------------------------------------- faults


def test_status_fault_fails_the_next_count_matching_requests(
    sim: Simulator, api: httpx.Client, tenant: dict[str, Any]
) -> None:
    sim.inject_fault(method="GET", path="/v1/assets", count=2, status=503)
    assert api.get("/v1/accounts").status_code == 200  # path does not match
    first, second = api.get("/v1/assets/list"), api.get("/v1/assets")  # prefix match
    for resp in (first, second):
        inner = error_of(resp, 503, "BLUM-503-001")
        assert inner["type"] == "api_error"
        assert "retry-after" not in resp.headers
    assert api.get("/v1/assets").status_code == 200
    faulted = [e for e in sim.request_log() if e["fault"] == "status"]
    assert [(e["status"], e["key_id"]) for e in faulted] == [(503, tenant["id"])] * 2


def test_fault_matches_method(sim: Simulator, api: httpx.Client, investor: str) -> None:
    sim.inject_fault(method="POST", path="/v1/investors", count=1, status=500)
    assert api.get(f"/v1/investors/{investor}/api-keys").status_code == 200
    error_of(api.post(f"/v1/investors/{investor}/api-keys", json={}), 500, "BLUM-500-001")
    assert [k for k in sim.keys() if k["owner"] == investor] == []  # a status fault does not process the request
    assert api.post(f"/v1/investors/{investor}/api-keys", json={}).status_code == 201


def test_any_method_fault(sim: Simulator, api: httpx.Client) -> None:
    sim.inject_fault(method="*", path="/v1/", count=2, status=502)
    assert api.get("/v1/accounts").status_code == 502
    assert api.post("/v1/assets").status_code == 502
    assert api.get("/v1/accounts").status_code == 200


@pytest.mark.parametrize(("retry_after", "expected"), [(None, "1"), (7, "7")])
def test_429_fault_sends_retry_after(sim: Simulator, api: httpx.Client, retry_after: int | None, expected: str) -> None:
    sim.inject_fault(method="GET", path="/v1/accounts", count=1, status=429, retry_after=retry_after)
    resp = api.get("/v1/accounts")
    error_of(resp, 429, "BLUM-429-001")
    assert resp.headers["retry-after"] == expected


def test_latency_fault_delays_then_answers(sim: Simulator, api: httpx.Client) -> None:
    sim.inject_fault(method="GET", path="/v1/assets", count=1, latency_ms=400)
    started = time.perf_counter()
    assert api.get("/v1/assets").status_code == 200
    slow = time.perf_counter() - started
    assert api.get("/v1/assets").status_code == 200
    assert slow >= 0.4
    assert [entry["fault"] for entry in sim.request_log()] == ["latency", None], "the fault applies to one call"


def test_latency_fault_trips_a_client_timeout(sim: Simulator, tenant: dict[str, Any]) -> None:
    sim.inject_fault(method="GET", path="/v1/assets", count=1, latency_ms=800)
    with httpx.Client(
        base_url=sim.root_url, auth=(tenant["public_key"], tenant["secret_key"]), timeout=0.2, verify=TLS
    ) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/v1/assets")
        assert c.get("/v1/accounts").status_code == 200
    deadline = time.monotonic() + 5
    while not any(e["path"] == "/v1/assets" for e in sim.request_log()) and time.monotonic() < deadline:
        time.sleep(0.02)
    # the server still processed the slow request after the client gave up on it
    assert [(e["path"], e["status"], e["fault"]) for e in sim.request_log()] == [
        ("/v1/accounts", 200, None),
        ("/v1/assets", 200, "latency"),
    ]


def test_a_slow_request_begun_before_a_reset_is_void_after_it(sim: Simulator, investor: str) -> None:
    tenant = sim.create_tenant_key("TEST")
    sim.inject_fault(method="POST", path="/v1/investors", count=1, latency_ms=500)
    with client_for(sim, tenant) as client, pytest.raises(httpx.ReadTimeout):
        client.post(f"/v1/investors/{investor}/api-keys", json={}, timeout=0.1)
    sim.reset()
    time.sleep(0.7)
    assert sim.request_log() == []  # the stale request left no trace in the next test's log


def test_drop_fault_closes_the_connection_without_an_answer(sim: Simulator, api: httpx.Client) -> None:
    sim.inject_fault(method="GET", path="/v1/assets", count=1, drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/v1/assets")
    assert api.get("/v1/assets").status_code == 200  # the client reconnects; the fault is spent


def test_dropped_create_still_creates_the_key(
    sim: Simulator, api: httpx.Client, tenant: dict[str, Any], investor: str
) -> None:
    """The response is lost, the effect is not: the case a client's Idempotency-Key retry must survive."""
    sim.inject_fault(method="POST", path=f"/v1/investors/{investor}/api-keys", count=1, drop=True)
    url = f"/v1/investors/{investor}/api-keys"
    headers = {"Idempotency-Key": "lost-response"}
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(url, json={"name": "new"}, headers=headers)
    (orphan,) = [k for k in sim.keys() if k["owner"] == investor]
    assert orphan["status"] == "active"
    entry = sim.request_log()[-1]
    assert (entry["status"], entry["fault"], entry["key_id"]) == (201, "drop", tenant["id"])
    retried = api.post(url, json={"name": "new"}, headers=headers)
    assert retried.status_code == 201
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == orphan["id"]
    with client_for(sim, retried.json()) as own:
        assert own.get("/v1/assets").status_code == 200  # the replayed secret is the real one


def test_faults_over_http_and_their_validation(sim: Simulator, anon: httpx.Client, api: httpx.Client) -> None:
    resp = anon.post("/_sim/faults", json={"method": "GET", "path": "/v1/assets", "count": 2, "status": 503})
    assert resp.status_code == 201
    assert resp.json()["count"] == 2
    assert anon.get("/_sim/faults").json()["data"][0]["status"] == 503
    assert [api.get("/v1/assets").status_code for _ in range(3)] == [503, 503, 200]
    assert anon.get("/_sim/faults").json()["data"] == []
    for bad in (
        {"path": "/v1/assets"},  # nothing to do
        {"status": 200},
        {"status": 503, "drop": True},
        {"status": 503, "retry_after": 3},
        {"count": 0, "status": 500},
        {"path": "/_sim/reset", "status": 500},
        {"latency_ms": -1},
        {"status": 500, "colour": "red"},
    ):
        error_of(anon.post("/_sim/faults", json=bad), 400, "BLUM-400-001")
    with pytest.raises(ValueError, match="status"):
        sim.inject_fault(status=200)


def test_control_plane_is_never_faulted(sim: Simulator, anon: httpx.Client) -> None:
    sim.inject_fault(method="*", path="/", count=5, status=500)
    assert anon.get("/_sim/health").status_code == 200
    assert anon.post("/_sim/investors").status_code == 201
    assert anon.get("/elsewhere").status_code == 500


# ---------------------------------------------------------------------------------------------------- control plane


def test_control_plane_tenant_keys_and_investors(sim: Simulator, anon: httpx.Client, leak_guard: Any) -> None:
    resp = anon.post("/_sim/tenant-keys", json={"environment": "PRODUCTION"})
    assert resp.status_code == 201
    key = resp.json()
    assert set(key) == {"id", "public_key", "secret_key", "environment"}
    assert key["environment"] == "PRODUCTION"
    assert re.fullmatch(r"tk_[0-9a-hjkmnp-tv-z]{26}", key["id"])
    assert anon.post("/_sim/tenant-keys").json()["environment"] == "TEST"
    error_of(anon.post("/_sim/tenant-keys", json={"environment": "DEV"}), 400, "BLUM-400-001")
    error_of(anon.post("/_sim/tenant-keys", json={"env": "TEST"}), 400, "BLUM-400-001")
    investor = anon.post("/_sim/investors")
    assert investor.status_code == 201
    assert re.fullmatch(r"inv_[0-9a-hjkmnp-tv-z]{26}", investor.json()["id"])
    error_of(anon.post("/_sim/investors", json={"name": "x"}), 400, "BLUM-400-001")
    keys = anon.get("/_sim/keys").json()["data"]
    assert [k["id"] for k in keys] == [key["id"], keys[1]["id"]]
    assert set(keys[0]) == {"id", "owner", "environment", "status", "name", "created", "public_key", "expires_at"}
    assert keys[0]["owner"] == "tenant"
    assert key["secret_key"] in anon.get("/_sim/secrets").json()["data"]


@pytest.mark.parametrize(
    ("action", "status", "code"),
    [
        ("expire", "expired", "BLUM-401-005"),
        ("deactivate", "inactive", "BLUM-401-004"),
        ("revoke", "revoked", "BLUM-401-003"),
    ],
)
def test_control_plane_key_actions(
    sim: Simulator, anon: httpx.Client, api: httpx.Client, tenant: dict[str, Any], action: str, status: str, code: str
) -> None:
    resp = anon.post(f"/_sim/keys/{tenant['id']}/{action}")
    assert resp.status_code == 200
    assert resp.json()["status"] == status
    error_of(api.get("/v1/assets"), 401, code)
    error_of(anon.post(f"/_sim/keys/tk_{'0' * 26}/{action}"), 404, "BLUM-404-001")
    with pytest.raises(KeyError):
        sim.revoke_key("apk_missing")


def test_control_plane_config_clock_log_and_reset(sim: Simulator, anon: httpx.Client, api: httpx.Client) -> None:
    config = anon.post("/_sim/config", json={"propagation_delay": 2, "revoke_repeat": "conflict", "key_ttl": 60})
    assert config.status_code == 200
    assert config.json() == anon.get("/_sim/config").json()
    assert config.json()["propagation_delay"] == 2
    for bad in (
        {"bogus": 1},
        {"error_style": "xml"},
        {"revoke_repeat": "maybe"},
        {"key_ttl": 0},
        {"propagation_delay": -1},
        {"rate_limits": {"DEV": 1}},
        {"rate_limits": {"TEST": "fast"}},
    ):
        error_of(anon.post("/_sim/config", json=bad), 400, "BLUM-400-001")
    before = anon.get("/_sim/clock").json()["now"]
    after = anon.post("/_sim/clock", json={"advance": 3600}).json()["now"]
    assert 3600 <= after - before < 3610
    error_of(anon.post("/_sim/clock", json={"advance": -5}), 400, "BLUM-400-001")
    error_of(anon.post("/_sim/clock", json={"back": 5}), 400, "BLUM-400-001")
    assert api.get("/v1/assets").status_code == 200
    log = anon.get("/_sim/log").json()["data"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/v1/assets", 200)]
    sim.inject_fault(status=500)
    assert anon.post("/_sim/reset").status_code == 200
    assert anon.get("/_sim/keys").json()["data"] == []
    assert anon.get("/_sim/log").json()["data"] == []
    assert anon.get("/_sim/faults").json()["data"] == []
    assert anon.get("/_sim/config").json()["propagation_delay"] == 0
    assert abs(anon.get("/_sim/clock").json()["now"] - time.time()) < 60
    error_of(api.get("/v1/assets"), 401, "BLUM-401-003")  # the tenant key is gone


def test_reset_forgets_state_but_not_minted_secrets(sim: Simulator, tenant: dict[str, Any]) -> None:
    sim.reset()
    assert sim.keys() == []
    assert tenant["secret_key"] in sim.all_secrets()


# ---------------------------------------------------------------------------------------------------- concurrency


def test_parallel_keep_alive_clients_never_tear_state(sim: Simulator, tenant: dict[str, Any]) -> None:
    """8 threads × 25 creates interleaved with lists on keep-alive clients: every total adds up exactly."""
    sim.configure(rate_limits=UNLIMITED)
    investor = sim.create_investor()
    threads_n, per_thread = 8, 25
    created: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def worker() -> None:
        mine: list[str] = []
        with client_for(sim, tenant) as client:
            barrier.wait()
            for _ in range(per_thread):
                resp = client.post(f"/v1/investors/{investor}/api-keys", json={"name": "p"})
                listing = client.get(f"/v1/investors/{investor}/api-keys", params={"limit": 200})
                if resp.status_code != 201 or listing.status_code != 200:
                    with lock:
                        failures.append(f"{resp.status_code}/{listing.status_code}")
                    continue
                mine.append(resp.json()["id"])
                seen = {k["id"] for k in listing.json()["data"]}
                if not set(mine) <= seen:
                    with lock:
                        failures.append("a list missed a key this thread had already created")
        with lock:
            created.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    total = threads_n * per_thread
    assert len(created) == len(set(created)) == total
    listing = []
    with client_for(sim, tenant) as client:
        for offset in range(0, total, 200):
            listing += client.get(f"/v1/investors/{investor}/api-keys", params={"limit": 200, "offset": offset}).json()[
                "data"
            ]
    assert sorted(k["id"] for k in listing) == sorted(created)
    assert len([k for k in sim.keys() if k["owner"] == investor]) == total
    log = sim.request_log()
    assert len(log) == 2 * total + (total // 200)
    assert {e["status"] for e in log} == {200, 201}


# ---------------------------------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_simulator_prints_its_url_and_exits_0_on_signal(sig: signal.Signals, leak_guard: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the simulator printed nothing within 15 s"
        line = proc.stdout.readline()
        match = re.fullmatch(r"Bluum simulator listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        base_url = match.group(1)
        with httpx.Client(timeout=5, verify=TLS) as client:
            key = client.post(base_url.removesuffix("/v1") + "/_sim/tenant-keys").json()
            leak_guard.watch(key["secret_key"])
            resp = client.get(base_url + "/assets", auth=(key["public_key"], key["secret_key"]))
            assert resp.status_code == 200
            proc.send_signal(sig)
            assert proc.wait(timeout=5) == 0
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    leak_guard.check(line + out + err, "simulator subprocess output")
    assert out == ""  # exactly one line, and no access log
    assert err == ""
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url.removesuffix("/v1") + "/_sim/health", timeout=2, verify=TLS)


def test_stop_closes_keep_alive_connections_and_frees_the_port() -> None:
    server = Simulator().start()
    port = server.port
    with httpx.Client(base_url=server.root_url, timeout=2, verify=TLS) as client:
        assert client.get("/_sim/health").status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/_sim/health")
    with Simulator(port=port) as again:  # the port can be reused at once
        assert httpx.get(again.root_url + "/_sim/health", verify=TLS).status_code == 200
    server.stop()  # stopping twice is harmless


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com"])
def test_only_loopback_hosts_are_accepted(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Simulator(host=host)


def test_localhost_binds_127_0_0_1() -> None:
    with Simulator(host="localhost") as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert httpx.get(server.root_url + "/_sim/health", verify=TLS).json() == {"status": "ok"}
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_separate_hosts_each_serve_only_their_environment(simulator: Simulator):
    """`serves=` plays Bluum's separate sandbox and production hosts over one set of accounts: a key of the other
    environment is unknown at a host (401-003), its own works, and the shared control plane sees both."""
    simulator.reset()
    sandbox_key = simulator.create_tenant_key(environment="TEST")
    production_key = simulator.create_tenant_key(environment="PRODUCTION")
    with (
        Simulator(serves="PRODUCTION", shares=simulator) as production,
        Simulator(serves="TEST", shares=simulator) as sandbox,
    ):
        for host, good, bad in ((production, production_key, sandbox_key), (sandbox, sandbox_key, production_key)):
            with httpx.Client(base_url=host.base_url) as client:
                ok = client.get("/assets", auth=(good["public_key"], good["secret_key"]))
                refused = client.get("/assets", auth=(bad["public_key"], bad["secret_key"]))
            assert ok.status_code == 200
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "BLUM-401-003"
        assert {k["id"] for k in production.keys()} >= {sandbox_key["id"], production_key["id"]}
