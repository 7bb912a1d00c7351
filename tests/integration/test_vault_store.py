"""The Vault store against a real OpenBao server: the shared contract suites, then what only Vault has.

Every store handle here logs in with a token that holds exactly the minimal policy the README documents (create,
read, update on the two data paths), so the suite also proves that policy is enough. Tokens are watched by the leak
guard like secrets.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac import exceptions as vault

from backends.base import SecretStore, load_store_factories
from backends.holder import this_process
from backends.ledger import Lease, held_lease
from backends.vault.store import STATE_PREFIX, VaultStore
from rotator.config.loader import parse_config
from rotator.core.errors import (
    ConfigError,
    LeaseLost,
    RotationInProgress,
    StoreConflict,
    StoreCorrupt,
    StoreDenied,
    StoreNotFound,
    StoreUnavailable,
)
from rotator.core.model import Stage, StoredKey
from tests.conftest import LeakGuard
from tests.openbao import OpenBao, minimal_policy
from tests.store_contract import LEASE_TTL, StoreContract, assert_holds, ledger, make_key, snapshot

MakeStore = Callable[..., VaultStore]
"""Builds a store handle on the test's path with its own hvac client; keyword arguments are store options."""


class Clock:
    """Wall-clock seconds the store's lease is measured on, moved by tests to let a lease expire."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def seed(openbao: OpenBao, path: str, key: StoredKey, *, mount: str = "secret", **extra: str) -> None:
    """Put `key` at `path` the way a person or an old deploy script would: plain fields, no rotator state."""
    fields = {"api_key": key.api_key, "api_secret": key.api_secret.reveal(), **extra}
    if key.key_id:
        fields["key_id"] = key.key_id
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret=fields, mount_point=mount)


def before_writes(store: VaultStore, hook: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
    """Run `hook(path, data)` right before each KV write `store` sends (a write on a version read just before, or one
    built on the version a promote read: `KvMount.write` and `write_seen`); returns the undo."""
    kv = store._kv
    originals = {name: getattr(kv, name) for name in ("write", "write_seen")}

    def hooked(send: Callable[..., int]) -> Callable[..., int]:
        def write(path: str, data: dict[str, Any], *, cas: int, action: str) -> int:
            hook(path, data)
            return send(path, data, cas=cas, action=action)

        return write

    def undo() -> None:
        for name, send in originals.items():
            setattr(kv, name, send)

    for name, send in originals.items():
        setattr(kv, name, hooked(send))
    return undo


def latest(openbao: OpenBao, path: str, *, mount: str = "secret") -> dict[str, Any]:
    """What an application reads at `path`: the latest version's data."""
    answer = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True
    )
    data: dict[str, Any] = answer["data"]["data"]
    return data


@pytest.fixture
def narrow_token(openbao: OpenBao, vault_path: str, leak_guard: LeakGuard) -> Callable[..., str]:
    """A token holding exactly the minimal policy for a path (and its default state path)."""

    def make(path: str, *, mount: str = "secret", ttl: str = "1h") -> str:
        name = f"rotator-{uuid.uuid4().hex[:12]}"
        openbao.write_policy(name, minimal_policy(mount, path, STATE_PREFIX + path))
        token = openbao.token_with_policies([name], ttl=ttl)
        leak_guard.watch(token)
        return token

    return make


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_path(vault_path: str) -> str:
    return f"{vault_path}/trading"


@pytest.fixture
def make_store(openbao: OpenBao, app_path: str, narrow_token: Callable[..., str], clock: Clock) -> Iterator[MakeStore]:
    """Vault store handles on `app_path`, each with its own hvac client (as separate processes have)."""
    made: list[VaultStore] = []
    token = narrow_token(app_path)

    def make(**options: Any) -> VaultStore:
        options.setdefault("path", app_path)
        options.setdefault("environ", {"VAULT_TOKEN": token})
        store = VaultStore("vault-app", url=openbao.url, clock=clock, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


class TestVaultStoreContract(StoreContract):
    """Every promise of `backends.base.SecretStore` and `backends.ledger.Ledger`, on a real OpenBao server."""

    @pytest.fixture
    def store(self, openbao: OpenBao, app_path: str, seed_key: StoredKey, make_store: MakeStore) -> SecretStore:
        seed(openbao, app_path, seed_key)
        return make_store()

    @pytest.fixture
    def twin(self, store: SecretStore, make_store: MakeStore) -> SecretStore:
        return make_store()

    @pytest.fixture
    def take_over(self, clock: Clock) -> Callable[[SecretStore, Lease], None]:
        """A Vault lease loses its hold by expiring while its runner sleeps (a long propagation wait, a paused VM)."""

        def take_over(store: SecretStore, lease: Lease) -> None:
            clock.now = lease.expires_at + 1

        return take_over


# --------------------------------------------------------------------------------------------- what applications read


def test_a_rotation_keeps_the_other_fields_applications_read(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0), db_password="keep-me-please", region="eu")
    store = make_store(fields=["environment"])
    store.put_pending(make_key(1, token="t1"))
    store.promote("t1")
    shown = latest(openbao, app_path)
    assert shown["db_password"] == "keep-me-please"
    assert shown["region"] == "eu"
    assert shown["api_key"] == make_key(1).api_key
    assert shown["key_id"] == make_key(1).key_id
    assert shown["environment"] == "sandbox"  # asked for by `fields`
    assert "base_url" not in shown  # not asked for, and the secret did not have it
    store.restore_previous("t1")
    back = latest(openbao, app_path)
    assert back["api_key"] == make_key(0).api_key
    assert back["db_password"] == "keep-me-please"
    assert back["key_id"] == make_key(0).key_id


def test_field_names_serve_templates_that_read_other_names(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    key = make_key(0)
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path=app_path,
        secret={"BLUUM_API_KEY": key.api_key, "BLUUM_API_SECRET": key.api_secret.reveal()},
        mount_point="secret",
    )
    store = make_store(field_names={"api_key": "BLUUM_API_KEY", "api_secret": "BLUUM_API_SECRET"})
    assert_holds(store.read(Stage.CURRENT), StoredKey(key.api_key, key.api_secret))
    store.put_pending(make_key(1, token="t1"))
    store.promote("t1")
    shown = latest(openbao, app_path)
    assert shown["BLUUM_API_KEY"] == make_key(1).api_key
    assert shown["BLUUM_API_SECRET"] == make_key(1).api_secret.reveal()
    assert "api_key" not in shown


def test_pending_and_previous_never_reach_the_path_applications_read(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    """Every write at `path` is a version applications read; only CURRENT may ever be written there."""
    seed(openbao, app_path, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token="t1"))
    store.promote("t1")
    store.clear_previous("t1")
    store.put_pending(make_key(2, token="t2"))
    history = openbao.client().secrets.kv.v2.read_secret_metadata(path=app_path, mount_point="secret")
    versions = sorted(int(v) for v in history["data"]["versions"])
    keys = [
        openbao.client().secrets.kv.v2.read_secret_version(
            path=app_path, mount_point="secret", version=v, raise_on_deleted_version=True
        )["data"]["data"]["api_key"]
        for v in versions
    ]
    assert keys == [make_key(0).api_key, make_key(1).api_key]  # PENDING t2 was never a version applications read


def test_a_key_written_at_the_path_by_someone_else_is_not_overwritten(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    """A person pasting a key while the rotator writes: check-and-set refuses the rotator's write."""
    seed(openbao, app_path, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token="t1"))

    def someone_writes_first(path: str, data: dict[str, Any]) -> None:
        if path == app_path:
            seed(openbao, app_path, make_key(7))

    before_writes(store, someone_writes_first)
    with pytest.raises(StoreConflict, match="it was not overwritten"):
        store.promote("t1")
    assert latest(openbao, app_path)["api_key"] == make_key(7).api_key


def test_a_change_to_other_fields_during_the_write_is_kept(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0), feature="a")
    store = make_store()
    store.put_pending(make_key(1, token="t1"))
    raced: list[bool] = []

    def someone_edits_another_field(path: str, data: dict[str, Any]) -> None:
        if path == app_path and not raced:
            raced.append(True)
            current = latest(openbao, app_path)
            openbao.client().secrets.kv.v2.create_or_update_secret(
                path=app_path, secret={**current, "feature": "b"}, mount_point="secret"
            )

    before_writes(store, someone_edits_another_field)
    store.promote("t1")
    shown = latest(openbao, app_path)
    assert raced
    assert shown["feature"] == "b"
    assert shown["api_key"] == make_key(1).api_key


# --------------------------------------------------------------------------------------------- mounts and versions


@pytest.mark.parametrize(("cas_required", "max_versions"), [(True, 1), (False, 2)])
def test_a_mount_with_cas_required_or_few_versions_rotates_and_rolls_back(
    openbao: OpenBao,
    vault_path: str,
    narrow_token: Callable[..., str],
    clock: Clock,
    cas_required: bool,
    max_versions: int,
) -> None:
    mount = f"kv-{uuid.uuid4().hex[:8]}"
    openbao.enable_kv2(mount, cas_required=cas_required, max_versions=max_versions)
    path = f"{vault_path}/strict"
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path=path,
        secret={"api_key": make_key(0).api_key, "api_secret": make_key(0).api_secret.reveal()},
        cas=0,
        mount_point=mount,
    )
    token = narrow_token(path, mount=mount)
    store = VaultStore("strict", path=path, mount=mount, url=openbao.url, environ={"VAULT_TOKEN": token}, clock=clock)
    try:
        with held_lease(store, "test", LEASE_TTL) as lease:
            store.write_record({"phase": "started"}, lease=lease, version=0)
            for n in (1, 2, 3):  # more writes than the mount keeps versions: PREVIOUS lives in the document
                store.put_pending(make_key(n, token=f"t{n}"))
                store.promote(f"t{n}")
                previous = store.read(Stage.PREVIOUS)
                assert previous is not None
                assert previous.same_key(make_key(n - 1))
                if n < 3:
                    store.clear_previous(f"t{n}")
            store.restore_previous("t3")
        assert latest(openbao, path, mount=mount)["api_key"] == make_key(2).api_key
        assert store.read_record().record == {"phase": "started"}
    finally:
        store.close()


# --------------------------------------------------------------------------------------------- leases


def test_a_stale_runner_cannot_move_stages_after_its_lease_was_taken_over(
    openbao: OpenBao, app_path: str, make_store: MakeStore, clock: Clock
) -> None:
    """Fencing covers stage writes too: a runner that slept through its lease writes nothing more at all."""
    seed(openbao, app_path, make_key(0))
    stale, fresh = make_store(), make_store()
    lease = stale.acquire("stale", LEASE_TTL)
    stale.put_pending(make_key(1, token="t1"))
    clock.now = lease.expires_at + 1
    taken = fresh.acquire("fresh", LEASE_TTL)
    before = snapshot(fresh)
    with pytest.raises(LeaseLost, match="taken"):
        stale.promote("t1")
    with pytest.raises(LeaseLost):
        stale.put_pending(make_key(2, token="t2"))
    assert snapshot(fresh) == before
    assert latest(openbao, app_path)["api_key"] == make_key(0).api_key
    fresh.release(taken)


def test_two_runners_racing_for_the_lease_at_the_same_moment_never_both_win(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    first, second = make_store(), make_store()
    document = second.load_document()  # second read the state before first took the lease
    lease = first.acquire("first", LEASE_TTL)
    original_load = second._ledger.load_document
    second._ledger.load_document = lambda: document  # type: ignore[method-assign]
    with pytest.raises(RotationInProgress, match="at the same moment") as refused:
        second.acquire("second", LEASE_TTL)
    assert refused.value.exit_code == 3
    second._ledger.load_document = original_load  # type: ignore[method-assign]
    assert ledger(first).read_record().version == 0
    first.release(lease)


# --------------------------------------------------------------------------------------------- auth


def test_approle_login_from_files(
    openbao: OpenBao, app_path: str, clock: Clock, tmp_path: Path, leak_guard: LeakGuard
) -> None:
    name = f"rotator-{uuid.uuid4().hex[:12]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    role_id, secret_id = openbao.approle(name, [name])
    leak_guard.watch(role_id, secret_id)
    (tmp_path / "role_id").write_text(role_id + "\n")
    (tmp_path / "secret_id").write_text(secret_id)
    seed(openbao, app_path, make_key(0))
    store = VaultStore(
        "approle",
        path=app_path,
        url=openbao.url,
        auth="approle",
        role_id_file=str(tmp_path / "role_id"),
        secret_id_file=str(tmp_path / "secret_id"),
        environ={},
        clock=clock,
    )
    try:
        assert_holds(store.read(Stage.CURRENT), make_key(0))
        store.put_pending(make_key(1, token="t1"))
        assert_holds(store.read(Stage.PENDING), make_key(1), token="t1")
    finally:
        store.close()


def test_approle_login_from_the_environment(openbao: OpenBao, app_path: str, leak_guard: LeakGuard) -> None:
    name = f"rotator-{uuid.uuid4().hex[:12]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    role_id, secret_id = openbao.approle(name, [name])
    leak_guard.watch(role_id, secret_id)
    seed(openbao, app_path, make_key(0))
    store = VaultStore(
        "approle", path=app_path, url=openbao.url, auth="approle",
        environ={"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
    )  # fmt: skip
    try:
        assert_holds(store.read(Stage.CURRENT), make_key(0))
    finally:
        store.close()


def test_kubernetes_login_with_the_pods_service_account_token(
    openbao: OpenBao, app_path: str, tmp_path: Path, leak_guard: LeakGuard
) -> None:
    name = f"rotator-{uuid.uuid4().hex[:12]}"
    openbao.write_policy(name, minimal_policy("secret", app_path, STATE_PREFIX + app_path))
    login = openbao.kubernetes_auth(name, [name])
    leak_guard.watch(login.jwt)
    jwt_file = tmp_path / "token"
    jwt_file.write_text(login.jwt)
    seed(openbao, app_path, make_key(0))
    store = VaultStore(
        "k8s", path=app_path, url=openbao.url, auth="kubernetes", role=login.role, jwt_file=str(jwt_file), environ={}
    )
    try:
        assert_holds(store.read(Stage.CURRENT), make_key(0))
        store.put_pending(make_key(1, token="t1"))
    finally:
        store.close()


def test_a_short_lived_token_is_renewed_through_a_long_run(
    openbao: OpenBao, app_path: str, narrow_token: Callable[..., str]
) -> None:
    """A 30 s token outlives a 10 minute rotation because the session renews it at half its life."""
    seed(openbao, app_path, make_key(0))
    token = narrow_token(app_path, ttl="30s")
    now = [1000.0]
    store = VaultStore(
        "short", path=app_path, url=openbao.url, environ={"VAULT_TOKEN": token}, monotonic=lambda: now[0]
    )
    try:
        store.read(Stage.CURRENT)
        now[0] += 10  # a third of its life: not renewed yet
        store.read(Stage.CURRENT)
        assert openbao.client().auth.token.lookup(token)["data"].get("last_renewal_time") in (None, 0)
        now[0] += 10  # past half of 30 s on the session's clock: the next call renews
        store.read(Stage.CURRENT)
        assert openbao.client().auth.token.lookup(token)["data"]["last_renewal_time"] > 0
    finally:
        store.close()


# --------------------------------------------------------------------------------------------- errors that say the fix


def test_a_policy_without_the_state_path_is_named_with_the_fix(
    openbao: OpenBao, app_path: str, leak_guard: LeakGuard
) -> None:
    name = f"too-narrow-{uuid.uuid4().hex[:8]}"
    openbao.write_policy(name, f'path "secret/data/{app_path}" {{ capabilities = ["create", "read", "update"] }}\n')
    token = openbao.token_with_policies([name])
    leak_guard.watch(token)
    seed(openbao, app_path, make_key(0))
    store = VaultStore("narrow", path=app_path, url=openbao.url, environ={"VAULT_TOKEN": token})
    try:
        with pytest.raises(StoreDenied) as denied:
            store.read(Stage.PENDING)
        message = str(denied.value)
        assert f"secret/{STATE_PREFIX}{app_path}" in message
        assert "policy does not allow" in message
        assert "README" in message
        assert token not in message
    finally:
        store.close()


def test_a_revoked_token_is_told_apart_from_a_narrow_policy(
    openbao: OpenBao, app_path: str, narrow_token: Callable[..., str]
) -> None:
    seed(openbao, app_path, make_key(0))
    token = narrow_token(app_path)
    store = VaultStore("revoked", path=app_path, url=openbao.url, environ={"VAULT_TOKEN": token})
    try:
        store.read(Stage.CURRENT)
        openbao.client().auth.token.revoke(token)
        with pytest.raises(StoreDenied, match="expired or was revoked"):
            store.read(Stage.CURRENT)
    finally:
        store.close()


def test_no_token_anywhere_says_how_to_log_in(openbao: OpenBao, app_path: str, tmp_path: Path) -> None:
    store = VaultStore("none", path=app_path, url=openbao.url, environ={"HOME": str(tmp_path)})
    with pytest.raises(StoreDenied, match=r"VAULT_TOKEN.*bao login"):
        store.read(Stage.CURRENT)


def test_an_unreachable_server_is_unavailable_and_exits_5(app_path: str) -> None:
    store = VaultStore("down", path=app_path, url="http://127.0.0.1:9", environ={"VAULT_TOKEN": "s.not-used"})
    with pytest.raises(StoreUnavailable, match=r"cannot reach Vault at http://127\.0\.0\.1:9") as down:
        store.read(Stage.CURRENT)
    assert down.value.exit_code == 5


def test_a_missing_mount_is_named(openbao: OpenBao, app_path: str) -> None:
    store = VaultStore(
        "nomount", path=app_path, mount="no-such-mount", url=openbao.url, environ={"VAULT_TOKEN": "root"}
    )
    with pytest.raises(StoreNotFound, match="no-such-mount"):
        store.read(Stage.CURRENT)


def test_a_deleted_latest_version_says_how_to_undelete(openbao: OpenBao, app_path: str, make_store: MakeStore) -> None:
    seed(openbao, app_path, make_key(0))
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path=app_path, mount_point="secret")
    with pytest.raises(StoreNotFound, match=r"latest version \(1\) is deleted.*bao kv undelete"):
        make_store().read(Stage.CURRENT)


def test_a_hand_edited_state_document_is_named_precisely(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    seed(openbao, app_path, make_key(0))
    store = make_store()
    store.put_pending(make_key(1, token="t1"))
    state = latest(openbao, STATE_PREFIX + app_path)
    state["pending"]["token"] = ""
    openbao.client().secrets.kv.v2.create_or_update_secret(path=STATE_PREFIX + app_path, secret=state)
    with pytest.raises(StoreCorrupt, match=r"field `pending.token` must be a non-empty string"):
        store.read(Stage.PENDING)


def test_a_sealed_server_says_unseal(file_backed_openbao: OpenBao, leak_guard: LeakGuard) -> None:
    bao = file_backed_openbao
    leak_guard.watch(*bao.all_secrets())
    seed(bao, "app", make_key(0))
    store = VaultStore("sealed", path="app", url=bao.url, environ={"VAULT_TOKEN": bao.root_token})
    try:
        assert_holds(store.read(Stage.CURRENT), make_key(0))
        bao.seal()
        with pytest.raises(StoreUnavailable, match=r"sealed.*operator unseal") as sealed:
            store.read(Stage.CURRENT)
        assert sealed.value.exit_code == 5
    finally:
        store.close()


def test_hvac_errors_never_carry_the_secret_being_written(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    """A refused write's message names the path and Vault's reason; the leak guard checks the value is absent."""
    seed(openbao, app_path, make_key(0))
    store = make_store()
    openbao.client().secrets.kv.v2.create_or_update_secret(path=STATE_PREFIX + app_path, secret={"version": 1})
    store._kv.write = _always_conflicting(store._kv.write)  # type: ignore[method-assign]
    with pytest.raises(StoreConflict) as conflict:
        store.put_pending(make_key(1, token="t1"))
    assert make_key(1).api_secret.reveal() not in str(conflict.value)
    assert isinstance(conflict.value.__cause__, vault.InvalidRequest)


def _always_conflicting(write: Callable[..., int]) -> Callable[..., int]:
    def conflicting(path: str, data: dict[str, Any], *, cas: int, action: str) -> int:
        return write(path, data, cas=cas + 5, action=action)

    return conflicting


# --------------------------------------------------------------------------------------------- configuration


def test_the_vault_type_is_built_in_and_its_options_are_checked(tmp_path: Path) -> None:
    assert "vault" in load_store_factories()
    text = '[stores.v]\ntype = "vault"\npath = "bluum/prod"\nmonut = "secret"\n'
    with pytest.raises(ConfigError, match="monut"):
        parse_config(text, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"path": "/"}, "is not a Vault path"),
        ({"path": "a/../b"}, "is not a Vault path"),
        ({"path": "a b"}, "is not a Vault path"),
        ({"path": "a", "state_path": "a"}, "state_path must differ"),
        ({"path": "a", "auth": "ldap"}, "`auth` is not one of token, approle, kubernetes, aws"),
        ({"path": "a", "auth": "kubernetes"}, "needs `role`"),
        ({"path": "a", "auth": "token", "jwt_file": "/x"}, "jwt_file do not apply"),
        ({"path": "a", "fields": ["password"]}, "fields may name"),
        ({"path": "a", "field_names": {"api_key": "K", "api_secret": "K"}}, "the same name"),
        ({"path": "a", "url": None}, "no Vault address"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options: dict[str, Any], problem: str) -> None:
    options.setdefault("url", "http://127.0.0.1:8200")
    with pytest.raises(ConfigError, match=problem):
        VaultStore("bad", environ={}, **options)


def test_vault_addr_and_namespace_come_from_the_environment() -> None:
    store = VaultStore("env", path="a", environ={"VAULT_ADDR": "https://vault.example:8200", "VAULT_NAMESPACE": "team"})
    assert store.describe() == "Vault KV secret/a at https://vault.example:8200 (namespace team)"


def test_vault_namespace_selects_where_the_key_lives(openbao: OpenBao, vault_path: str) -> None:
    """Vault Enterprise and OpenBao namespaces: the same path in another namespace is another secret."""
    namespace = f"team{uuid.uuid4().hex[:8]}"
    openbao.client().adapter.post(f"/v1/sys/namespaces/{namespace}")
    inside = hvac.Client(url=openbao.url, token=openbao.root_token, namespace=namespace)
    inside.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    openbao.wait_kv_ready("secret")
    path = f"{vault_path}/ns"
    for _ in range(50):  # a new KV v2 mount may answer "upgrading" for a moment
        try:
            inside.secrets.kv.v2.create_or_update_secret(
                path=path,
                secret={"api_key": make_key(0).api_key, "api_secret": make_key(0).api_secret.reveal()},
                mount_point="secret",
            )
            break
        except vault.InvalidRequest:
            time.sleep(0.05)
    environ = {"VAULT_TOKEN": openbao.root_token, "VAULT_NAMESPACE": namespace}
    store = VaultStore("ns", path=path, url=openbao.url, environ=environ)
    try:
        assert namespace in store.describe()
        previous = store.read(Stage.CURRENT)
        assert previous is not None
        assert previous.same_key(make_key(0))
        store.put_pending(make_key(1, token="t1"))
        store.promote("t1")
        answer = inside.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        assert answer["data"]["data"]["api_key"] == make_key(1).api_key
        with pytest.raises(StoreNotFound):  # the root namespace has no such secret
            VaultStore("root-ns", path=path, url=openbao.url, environ={"VAULT_TOKEN": openbao.root_token}).read(
                Stage.CURRENT
            )
    finally:
        store.close()


def test_a_lease_whose_runner_died_on_this_machine_is_taken_over_at_once(
    openbao: OpenBao, app_path: str, make_store: MakeStore
) -> None:
    """After a SIGKILL, `resume` on the same machine need not wait out the lease: the kernel says the PID is gone.
    A holder elsewhere (another host) is waited for."""
    seed(openbao, app_path, make_key(0))
    crashed, resumer = make_store(), make_store()
    lease = crashed.acquire("killed runner", LEASE_TTL)
    state = latest(openbao, STATE_PREFIX + app_path)
    assert state["lease"]["holder"]["pid"] == os.getpid()
    state["lease"]["holder"]["host"] = "another-machine"
    openbao.client().secrets.kv.v2.create_or_update_secret(path=STATE_PREFIX + app_path, secret=state)
    with pytest.raises(RotationInProgress, match="lease until"):
        resumer.acquire("resume", LEASE_TTL)
    state["lease"]["holder"] = {**this_process().to_json(), "pid": 2**22 + 12345}  # here, and gone
    openbao.client().secrets.kv.v2.create_or_update_secret(path=STATE_PREFIX + app_path, secret=state)
    taken = resumer.acquire("resume", LEASE_TTL)
    assert taken.fence == lease.fence + 1
    resumer.release(taken)
