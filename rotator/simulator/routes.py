"""Request → response for the `/v1` API and the `/_sim` control plane, with no sockets involved.

Order of checks on `/v1` (each step's error wins over the later ones): authentication (401) → rate limit
(429, authenticated requests only) → tenant-only scope (403-001 for everything under /v1/investors) → route
(404-002) → path-id format (400-003) → body (400-001/003/004) → investor exists (404-001) → environment of the
new key equals the caller's (403-003) → idempotency (replay or 409-001) → effect. Paths outside /v1 and /_sim
get 404-002 without authentication.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from rotator.simulator import ids
from rotator.simulator.protocol import ApiError, Request, Response, error_body
from rotator.simulator.settings import ENVIRONMENTS, Fault
from rotator.simulator.state import Principal, SimState

MAX_NAME = 120
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

# A small fixed catalogue: enough variety for the documented filters (asset_class, tradable, status).
ASSETS: tuple[dict[str, Any], ...] = tuple(
    {
        "id": ids.stable_id("ast", symbol),
        "object": "asset",
        "symbol": symbol,
        "name": name,
        "asset_class": asset_class,
        "exchange": exchange,
        "status": status,
        "tradable": tradable,
        "fractionable": tradable,
    }
    for symbol, name, asset_class, exchange, status, tradable in (
        ("AAPL", "Apple Inc.", "us_equity", "NASDAQ", "active", True),
        ("MSFT", "Microsoft Corporation", "us_equity", "NASDAQ", "active", True),
        ("SPY", "SPDR S&P 500 ETF Trust", "us_equity", "ARCA", "active", True),
        ("VT", "Vanguard Total World Stock ETF", "us_equity", "ARCA", "active", True),
        ("BTC/USD", "Bitcoin", "crypto", "CRYPTO", "active", True),
        ("DLST", "Delisted Example Corp.", "us_equity", "OTC", "inactive", False),
    )
)


class Router:
    """Turns a `Request` into a `Response`; every error becomes a rendered error body in the configured style."""

    def __init__(self, state: SimState, serves: str | None = None) -> None:
        self.state = state
        self.serves = serves
        """TEST or PRODUCTION when this router plays one of Bluum's separate hosts; None serves both."""

    def handle(self, req: Request) -> Response:
        try:
            if req.path == "/_sim" or req.path.startswith("/_sim/"):
                return self._control(req)
            if req.path == "/v1" or req.path.startswith("/v1/"):
                return self._api(req)
            raise ApiError(404, "BLUM-404-002", f"No endpoint {req.method} {req.path}.")
        except ApiError as err:
            return self.error(err)

    def fault(self, req: Request, fault: Fault) -> Response:
        """The error an injected status fault answers with (the request itself is not processed)."""
        assert fault.status is not None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        err = ApiError(
            fault.status,
            f"BLUM-{fault.status}-001",
            f"Simulated fault: HTTP {fault.status}.",
            headers=headers,
            key_id=self.state.identify(req.header("authorization")),
        )
        return self.error(err)

    def error(self, err: ApiError) -> Response:
        body = error_body(err, self.state.error_style, ids.new_trace_id())
        return Response(err.status, body, dict(err.headers), key_id=err.key_id)

    # ----------------------------------------------------------------- /v1

    def _api(self, req: Request) -> Response:
        principal = self.state.admit(req.header("authorization"), self.serves)
        try:
            response = self._api_route(req, principal)
        except ApiError as err:
            err.key_id = principal.key_id
            raise
        response.key_id = principal.key_id
        return response

    def _api_route(self, req: Request, who: Principal) -> Response:
        segments = req.path.split("/")[2:]
        if segments[:1] == ["investors"] and not who.is_tenant:
            raise ApiError(403, "BLUM-403-001", "Investor-scoped keys cannot use tenant-only routes.")
        match req.method, segments:
            case "GET", ["assets"]:
                return Response(200, _filter_assets(req.query))
            case "GET", ["assets", "list"]:
                data = _filter_assets(req.query)
                return Response(200, {"status": "success", "data": data, "count": len(data)})
            case "GET", ["assets", "search"]:
                needle = req.query.get("q", "").lower()
                data = [a for a in _filter_assets(req.query) if needle in a["symbol"].lower() + a["name"].lower()]
                return Response(200, {"status": "success", "data": data, "count": len(data)})
            case "GET", ["accounts"]:
                return Response(200, self._accounts(who))
            case "GET", ["investors"]:
                return self._list_investors(req, who)
            case "POST", ["investors", investor, "api-keys"]:
                return self._create_key(req, who, _investor_id(investor))
            case "GET", ["investors", investor, "api-keys"]:
                investor = _investor_id(investor)
                limit, offset = _paging(req.query)
                data, more = self.state.list_api_keys(who, investor, limit, offset)
                return Response(200, _list(f"/v1/investors/{investor}/api-keys", data, more))
            case "POST", ["investors", investor, "api-keys", key_id, "revoke"]:
                investor = _investor_id(investor)
                if not ids.API_KEY_ID.fullmatch(key_id):
                    raise ApiError(
                        400, "BLUM-400-003", f"Malformed API key id {key_id!r}: expected apk_…", param="api_key_id"
                    )
                return Response(200, self.state.revoke_api_key(who, investor, key_id))
        raise ApiError(404, "BLUM-404-002", f"No endpoint {req.method} {req.path}.")

    def _accounts(self, who: Principal) -> list[dict[str, Any]]:
        investors = self.state.investors() if who.is_tenant else [who.owner]
        return [
            {
                "id": investor,
                "object": "account",
                "created": int(self.state.investor_created(investor) or 0),
                "livemode": who.environment == "PRODUCTION",
                "status": "ACTIVE",
                "metadata": {},
            }
            for investor in investors
        ]

    def _list_investors(self, req: Request, who: Principal) -> Response:
        limit, offset = _paging(req.query)
        everyone = self.state.investors()
        page = [
            {
                "id": investor,
                "object": "investor",
                "created": int(self.state.investor_created(investor) or 0),
                "livemode": who.environment == "PRODUCTION",
                "metadata": {},
            }
            for investor in everyone[offset : offset + limit]
        ]
        return Response(200, _list("/v1/investors", page, offset + limit < len(everyone)))

    def _create_key(self, req: Request, who: Principal, investor: str) -> Response:
        body = _json_object(req.body)
        unknown = set(body) - {"name", "environment"}
        if unknown:
            raise ApiError(400, "BLUM-400-001", f"Unknown field(s): {', '.join(sorted(unknown))}.", param=min(unknown))
        name = body.get("name", "")
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise ApiError(400, "BLUM-400-003", "name must be a string.", param="name")
        if len(name) > MAX_NAME:
            raise ApiError(400, "BLUM-400-001", f"name must be at most {MAX_NAME} characters.", param="name")
        environment = body.get("environment", "TEST")
        if environment not in ENVIRONMENTS:
            raise ApiError(400, "BLUM-400-004", "environment must be TEST or PRODUCTION.", param="environment")
        idempotency = None
        idem_key = req.header("idempotency-key")
        if idem_key is not None:
            if not 1 <= len(idem_key) <= 255:
                raise ApiError(
                    400, "BLUM-400-003", "Idempotency-Key must be 1..255 characters.", param="Idempotency-Key"
                )
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
            fingerprint = hashlib.sha256(f"{req.method} {req.path}\n{canonical}".encode()).hexdigest()
            idempotency = (idem_key, fingerprint)
        created, replayed = self.state.create_api_key(
            who, investor, name=name, environment=environment, idempotency=idempotency
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return Response(201, created, headers)

    # ----------------------------------------------------------------- /_sim

    def _control(self, req: Request) -> Response:
        try:
            return self._control_route(req)
        except ValueError as err:
            raise ApiError(400, "BLUM-400-001", str(err)) from None
        except KeyError as err:
            raise ApiError(404, "BLUM-404-001", str(err.args[0]) if err.args else "not found") from None

    def _control_route(self, req: Request) -> Response:
        state = self.state
        segments = req.path.split("/")[2:]

        def body(*allowed: str) -> dict[str, Any]:
            return _fields(req.body, allowed)

        match req.method, segments:
            case "GET", ["health"]:
                return Response(200, {"status": "ok"})
            case "POST", ["tenant-keys"]:
                return Response(201, state.create_tenant_key(body("environment").get("environment", "TEST")))
            case "POST", ["investors"]:
                body()
                return Response(201, {"id": state.create_investor()})
            case "GET", ["keys"]:
                return Response(200, {"object": "list", "data": state.keys()})
            case "POST", ["keys", key_id, ("expire" | "deactivate" | "revoke") as action]:
                body()
                return Response(200, state.set_key_status(key_id, action))
            case "POST", ["faults"]:
                return Response(201, state.add_fault(_json_object(req.body, control=True)))
            case "GET", ["probe"]:
                # Would Bluum accept these credentials right now? The authentication a /v1 call makes, without
                # its rate-limit charge, injected faults or request-log line: an outside sampler (tests) can watch
                # which keys applications hold without disturbing the run it watches.
                return Response(200, {"key_id": state.authenticate(req.header("authorization"), self.serves)})
            case "GET", ["faults"]:
                return Response(200, {"object": "list", "data": state.faults()})
            case "POST", ["config"]:
                return Response(200, state.configure(_json_object(req.body, control=True)))
            case "GET", ["config"]:
                return Response(200, state.config())
            case "POST", ["clock"]:
                fields = body("advance")
                return Response(200, {"now": state.advance_clock(fields.get("advance", 0))})
            case "GET", ["clock"]:
                return Response(200, {"now": state.now()})
            case "POST", ["reset"]:
                body()
                state.reset()
                return Response(200, {"status": "reset"})
            case "GET", ["log"]:
                return Response(200, {"object": "list", "data": state.request_log()})
            case "GET", ["secrets"]:
                return Response(200, {"object": "list", "data": state.all_secrets()})
        raise ApiError(404, "BLUM-404-002", f"No control endpoint {req.method} {req.path}.")


def _list(url: str, data: list[Any], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


def _filter_assets(query: Mapping[str, str]) -> list[dict[str, Any]]:
    result = []
    for asset in ASSETS:
        if "asset_class" in query and asset["asset_class"] != query["asset_class"]:
            continue
        if "status" in query and asset["status"] != query["status"]:
            continue
        if "tradable" in query and str(asset["tradable"]).lower() != query["tradable"].lower():
            continue
        result.append(dict(asset))
    return result


def _investor_id(raw: str) -> str:
    if not ids.INVESTOR_ID.fullmatch(raw):
        raise ApiError(400, "BLUM-400-003", f"Malformed investor id {raw!r}: expected inv_…", param="investor_id")
    return raw


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    values = []
    for name, default, low, high in (("limit", DEFAULT_LIMIT, 1, MAX_LIMIT), ("offset", 0, 0, None)):
        raw = query.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            raise ApiError(400, "BLUM-400-003", f"{name} must be an integer.", param=name) from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ApiError(400, "BLUM-400-001", f"{name} must be {bounds}.", param=name)
        values.append(value)
    return values[0], values[1]


def _json_object(raw: bytes, *, control: bool = False) -> dict[str, Any]:
    """Parse a JSON object body; an empty body is `{}`. Non-objects and bad JSON are 400-001."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        if control:
            raise ValueError("body is not valid JSON") from None
        raise ApiError(400, "BLUM-400-001", "Request body is not valid JSON.") from None
    if not isinstance(value, dict):
        if control:
            raise ValueError("body must be a JSON object")
        raise ApiError(400, "BLUM-400-001", "Request body must be a JSON object.")
    return value


def _fields(raw: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A control-plane body restricted to `allowed` fields: anything else is a 400, so typos do not pass silently."""
    body = _json_object(raw, control=True)
    unknown = set(body) - set(allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return body
