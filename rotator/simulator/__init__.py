"""A local Bluum Finance API for tests and the demo (contract: docs/bluum-api.md §11).

    from rotator.simulator import Simulator
    with Simulator() as sim:                      # 127.0.0.1, free port
        tenant = sim.create_tenant_key("TEST")    # {"id", "public_key", "secret_key", "environment"}
        investor = sim.create_investor()          # "inv_…"
        ...  # point a client at sim.base_url, Basic auth = public_key:secret_key

Choices the docs leave open, fixed here (clients and tests rely on them):
- Create answers 201. A new key's environment must equal the calling tenant key's, else 403 BLUM-403-003.
- Ids: investor keys `apk_…`, tenant keys `tk_…`, investors `inv_…`, request ids `req_…` (26 Crockford base32).
- A repeated revoke (or one of an expired key) answers 200 unchanged, or 409 BLUM-409-002 with
  `revoke_repeat="conflict"`.
  Idempotency-Key reused with another body (or path) is 409 BLUM-409-001; records live 24 h of simulator time.
  Replays carry `Idempotent-Replayed: true`.
- Environments are separate worlds: a tenant key lists and revokes only keys of its own environment (others 404).
- Rate limit: sliding 1 s window of *admitted* requests per key (429s and 401s are not counted).
- Faults skip /_sim. A status fault answers without processing. `drop` processes the request fully (a create
  mints its key) and then closes the socket without a byte: the response is lost, the effect is not.
- Error types: 401 authentication_error, 403 permission_error, 429 rate_limit_error, 5xx api_error, other 4xx
  invalid_request_error.
"""

from rotator.simulator.server import Simulator, run_until_signalled

__all__ = ["Simulator", "run_until_signalled"]
