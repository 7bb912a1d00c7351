"""Holes an outside review of the Vault store found: each test here failed on the reviewed code and passes on the fix.

Real OpenBao server through the `openbao` / `vault_path` fixtures, in the style of test_vault_store.py. The
docstrings keep the description of the hole each test was written to show.
"""

from __future__ import annotations

import contextlib
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.holder import this_process
from backends.vault.store import STATE_PREFIX, VaultStore
from rotator.config.loader import parse_config
from rotator.core.errors import ConfigError, LeaseLost, RotatorError, StoreConflict, StoreDenied, StoreError
from rotator.core.model import Stage, StoredKey
from tests.conftest import LeakGuard
from tests.integration.test_vault_store import before_writes
from tests.openbao import OpenBao, minimal_policy
from tests.store_contract import LEASE_TTL, make_key

MakeStore = Callable[..., VaultStore]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def seed(openbao: OpenBao, path: str, key: StoredKey) -> None:
    fields = {"api_key": key.api_key, "api_secret": key.api_secret.reveal()}
    if key.key_id:
        fields["key_id"] = key.key_id
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret=fields, mount_point="secret")


def latest(openbao: OpenBao, path: str) -> dict[str, Any]:
    answer = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    data: dict[str, Any] = answer["data"]["data"]
    return data


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_path(vault_path: str) -> str:
    return f"{vault_path}/trading"


@pytest.fixture
def make_store(openbao: OpenBao, app_path: str, clock: Clock, leak_guard: LeakGuard) -> Iterator[MakeStore]:
    made: list[VaultStore] = []
    name = f"review-{uuid.uuid4().hex[:12]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    token = openbao.token_with_policies([name])
    leak_guard.watch(token)

    def make(**options: Any) -> VaultStore:
        options.setdefault("path", app_path)
        options.setdefault("environ", {"VAULT_TOKEN": token})
        store = VaultStore("vault-app", url=openbao.url, clock=clock, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


# ------------------------------------------------------------------------------- 1. a stale runner's copy write (I1)


def test_a_runner_stalled_between_document_and_copy_writes_cannot_show_a_key_the_new_holder_revoked(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    """Projected.promote: save_document (fence-checked) then show() at `path` (not fenced). A runner that freezes
    between the two for longer than its lease (VM pause, SIGSTOP, laptop lid) wakes up and writes its new key at
    `path` AFTER the new lease holder rolled the rotation back and found the new key held nowhere (so revoked it)."""
    seed(openbao, app_path, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("stale", LEASE_TTL)
    stale.put_pending(make_key(1, token="t1"))
    wake_up = stale.show
    seen_by_fresh: list[set[str]] = []

    def freezes_then_shows(key: StoredKey) -> bool:
        clock.now = lease.expires_at + 1  # frozen past its lease
        taken = fresh.acquire("resume elsewhere", LEASE_TTL)
        fresh.restore_previous("t1")  # the resumed rotation rolls back...
        held = {k.api_key for k in (fresh.read(s) for s in Stage) if k is not None}
        seen_by_fresh.append(held)  # ...and the holdings check before revoking the new key finds it nowhere
        fresh.release(taken)
        return wake_up(key)  # the stale runner wakes up and finishes its promote

    stale.show = freezes_then_shows  # type: ignore[method-assign]
    refused: BaseException | None = None
    try:
        stale.promote("t1")
    except LeaseLost as exc:
        refused = exc
    assert seen_by_fresh == [{make_key(0).api_key}]  # the new key looked safe to revoke
    shown = latest(openbao, app_path)["api_key"]
    assert shown == make_key(0).api_key, (
        "applications now read the new key, which the new holder has just revoked (I1); stale write refused: "
        f"{refused is not None}"
    )


# ------------------------------------------------------------------------------- 2. two stores, one stage document


def _two_credentials(store_a: str, store_b: str) -> str:
    return (
        store_a
        + store_b
        + '[credentials.a]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "a"\n\n'
        + '[credentials.b]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "b"\n'
    )


@pytest.mark.parametrize(
    ("store_a", "store_b"),
    [
        pytest.param(
            '[stores.a]\ntype = "vault"\npath = "bluum/a"\nstate_path = "bluum-rotator/state"\n\n',
            '[stores.b]\ntype = "vault"\npath = "bluum/b"\nstate_path = "bluum-rotator/state"\n\n',
            id="same-state_path",
        ),
        pytest.param(
            '[stores.a]\ntype = "vault"\npath = "bluum/a"\n\n',
            '[stores.b]\ntype = "vault"\npath = "bluum-rotator/bluum/a"\n\n',
            id="path-is-the-other-stores-state_path",
        ),
        pytest.param(
            '[stores.a]\ntype = "vault"\npath = "bluum/a"\nurl = "https://vault.example:8200"\n\n',
            '[stores.b]\ntype = "vault"\npath = "bluum/a"\n\n',
            id="url-vs-VAULT_ADDR",
        ),
    ],
)
def test_two_vault_stores_that_share_a_kv_secret_are_refused(
    store_a: str, store_b: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    with pytest.raises(ConfigError, match="same place"):
        parse_config(_two_credentials(store_a, store_b), base_dir=tmp_path)


def test_a_shared_state_path_is_refused_before_a_new_key_is_lost(
    openbao: OpenBao, vault_path: str, make_store: MakeStore
) -> None:
    """Were two stores to share a state document anyway (the config refuses it, above), the second is refused before
    it replaces the first's PENDING, whose secret Bluum showed once."""
    shared = f"{vault_path}/state"
    seed(openbao, f"{vault_path}/a", make_key(0))
    seed(openbao, f"{vault_path}/b", make_key(5))
    a = VaultStore("a", path=f"{vault_path}/a", state_path=shared, url=openbao.url, environ={"VAULT_TOKEN": "root"})
    b = VaultStore("b", path=f"{vault_path}/b", state_path=shared, url=openbao.url, environ={"VAULT_TOKEN": "root"})
    try:
        a.put_pending(make_key(1, token="ta"))
        with pytest.raises(StoreConflict, match="two stores share one state_path"):
            b.put_pending(make_key(6, token="tb"))
        pending = a.read(Stage.PENDING)
        assert pending is not None
        assert pending.same_key(make_key(1)), "a's new key is gone from every store"
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------------------- 3. auth and error messages


def test_a_narrow_policy_on_a_token_without_default_policy_is_not_called_expired(
    openbao: OpenBao, app_path: str, leak_guard: LeakGuard
) -> None:
    """token_valid() answers False whenever lookup-self is denied, so a token created with -no-default-policy (or
    an AppRole with token_no_default_policy) is told "expired or was revoked: log in again" for a narrow policy."""
    name = f"too-narrow-{uuid.uuid4().hex[:8]}"
    openbao.write_policy(name, f'path "secret/data/{app_path}" {{ capabilities = ["create", "read", "update"] }}\n')
    answer = openbao.client().auth.token.create(policies=[name], no_default_policy=True, ttl="1h")
    token = str(answer["auth"]["client_token"])
    leak_guard.watch(token)
    seed(openbao, app_path, make_key(0))
    store = VaultStore("narrow", path=app_path, url=openbao.url, environ={"VAULT_TOKEN": token})
    try:
        with pytest.raises(StoreDenied) as denied:
            store.read(Stage.PENDING)
        assert "policy does not allow" in str(denied.value), str(denied.value)
    finally:
        store.close()


def test_a_renewable_token_that_expired_between_calls_is_not_blamed_on_the_policy(
    openbao: OpenBao, app_path: str, leak_guard: LeakGuard
) -> None:
    """_refresh() runs renew-self inside translated() without token_valid: an expired token (a wait longer than
    its TTL with no Vault call; the lease keepalive reads only every 5 minutes) is reported as a policy problem
    on no path, "grant create, read and update on this path"."""
    name = f"short-{uuid.uuid4().hex[:8]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    token = openbao.token_with_policies([name], ttl="2s")
    leak_guard.watch(token)
    seed(openbao, app_path, make_key(0))
    store = VaultStore("short", path=app_path, url=openbao.url, environ={"VAULT_TOKEN": token})
    try:
        store.read(Stage.CURRENT)
        time.sleep(3)
        with pytest.raises(StoreDenied) as denied:
            store.read(Stage.CURRENT)
        assert "expired" in str(denied.value), str(denied.value)
    finally:
        store.close()


def test_an_approle_token_is_renewed_not_replaced_by_a_new_login(
    openbao: OpenBao, app_path: str, leak_guard: LeakGuard
) -> None:
    """Login tokens are never renewed: at 2/3 of their TTL the session logs in again, spending one use of the
    secret_id each time (secret_id_num_uses) and leaving the old token alive. With a single-use secret_id (a
    response-wrapped one, the usual hardened setup) the rotation stops at the first re-login."""
    name = f"approle-{uuid.uuid4().hex[:8]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    openbao.approle(name, [name])  # enables auth/approle
    root = openbao.client()
    root.auth.approle.create_or_update_approle(
        name, token_policies=[name], token_ttl="60s", token_max_ttl="1h", secret_id_num_uses=1
    )
    role_id = str(root.auth.approle.read_role_id(name)["data"]["role_id"])
    secret_id = str(root.auth.approle.generate_secret_id(name)["data"]["secret_id"])
    leak_guard.watch(role_id, secret_id)
    seed(openbao, app_path, make_key(0))
    now = [1000.0]
    store = VaultStore(
        "approle", path=app_path, url=openbao.url, auth="approle",
        environ={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}, monotonic=lambda: now[0],
    )  # fmt: skip
    try:
        store.read(Stage.CURRENT)
        now[0] += 45  # past 2/3 of 60 s; the token is still valid and renewable
        store.read(Stage.CURRENT)
    finally:
        store.close()


def test_botocore_credential_errors_are_translated(
    app_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_aws_credentials() calls botocore's chain outside translated(): a missing profile (or an expired SSO token)
    escapes as a raw botocore exception (a traceback and exit 1, not a StoreError that says the fix)."""
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    store = VaultStore("aws", path=app_path, url="http://127.0.0.1:9", auth="aws", role="r", environ={})
    with pytest.raises(RotatorError):
        store.read(Stage.CURRENT)


def test_a_token_file_with_two_lines_is_named_and_the_token_stays_out_of_the_traceback(
    app_path: str, tmp_path: Path
) -> None:
    """requests' InvalidHeader repeats the header value (the token); the StoreUnavailable chained to it says
    "cannot reach Vault ... check that the server is up" and carries the token in its traceback."""
    token = "hvs.CAESIreviewtokenvalue0123456789"
    token_file = tmp_path / "token"
    token_file.write_text(f"{token}\nsecond line\n")
    store = VaultStore("tf", path=app_path, url="http://127.0.0.1:9", token_file=str(token_file), environ={})
    with pytest.raises(StoreError) as failed:
        store.read(Stage.CURRENT)
    printed = "".join(traceback.format_exception(failed.value))
    assert token not in printed
    assert "cannot reach" not in str(failed.value), str(failed.value)


# ------------------------------------------------------------------------------- 4. a hand-edited lease holder


def test_a_hand_edited_holder_pid_is_refused_as_corrupt_not_a_crash(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    holder, contender = make_store(), make_store()
    holder.acquire("holder", LEASE_TTL)
    state = latest(openbao, STATE_PREFIX + app_path)
    state["lease"]["holder"] = {**this_process().to_json(), "pid": 2**40}
    openbao.client().secrets.kv.v2.create_or_update_secret(path=STATE_PREFIX + app_path, secret=state)
    with pytest.raises(RotatorError):
        contender.acquire("contender", LEASE_TTL)


# ------------------------------------------------------------------------------- 5. a person's key at `path`


def test_the_rollback_after_a_refused_promote_does_not_overwrite_the_persons_key(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    """promote() refuses to overwrite a key someone wrote at `path` meanwhile (StoreConflict, tested upstream); the
    driver then rolls back, and restore_previous() -> show() overwrites that very key without a check, so the
    person's key is gone from every store (and if they had already revoked the old key in the dashboard,
    applications now read a revoked key)."""
    seed(openbao, app_path, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token="t1"))

    def someone_writes_first(path: str, data: dict[str, Any]) -> None:
        if path == app_path and data.get("api_key") == make_key(1).api_key:
            seed(openbao, app_path, make_key(7))

    undo = before_writes(store, someone_writes_first)
    with pytest.raises(StoreError, match="not overwritten"):
        store.promote("t1")
    undo()
    with contextlib.suppress(StoreError):
        store.restore_previous("t1")  # what the driver's rollback does next
    assert latest(openbao, app_path)["api_key"] == make_key(7).api_key
