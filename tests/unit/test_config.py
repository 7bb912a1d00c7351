"""rotator.toml validation: the good file parses into exact objects, and every bad one says where and how to fix it."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.config.loader import (
    CONFIG_ENV_VAR,
    DEFAULT_API_KEYS_PATH,
    DEFAULT_CHECK_PATH,
    PRODUCTION_HOSTS,
    SANDBOX_HOSTS,
    Config,
    ConfigProblems,
    find_config_path,
    load_config,
    parse_config,
    parse_duration,
)
from rotator.core.durations import InvalidDuration, format_duration
from rotator.core.errors import ConfigError, ExitCode
from rotator.core.model import DEFAULT_BASE_URLS, Environment

INV = "inv_2ahq810t9rgmwgncgcawcm5400"
TYPES = ("env", "aws", "vault", "keyring")

STORES: dict[str, dict[str, Any]] = {
    "tenant": {"type": "env", "path": "tenant.env"},
    "app": {"type": "env", "path": "app.env", "prefix": "BLUUM_"},
}
TENANT: dict[str, Any] = {"environment": "sandbox", "issuer": "manual", "store": "tenant"}
TRADING: dict[str, Any] = {
    "environment": "sandbox",
    "issuer": "bluum",
    "investor_id": INV,
    "manager": "tenant",
    "store": "app",
}


def table(header: str, fields: dict[str, Any]) -> str:
    """One TOML table; JSON literals for str/int/float/bool/list[str] are valid TOML too."""
    return "\n".join([f"[{header}]", *(f"{key} = {json.dumps(value)}" for key, value in fields.items())]) + "\n"


def render(
    stores: dict[str, dict[str, Any]] | None = None,
    credentials: dict[str, dict[str, Any]] | None = None,
    extra: str = "",
) -> str:
    stores = STORES if stores is None else stores
    credentials = {"tenant": TENANT, "trading": TRADING} if credentials is None else credentials
    parts = [table(f"stores.{name}", fields) for name, fields in stores.items()]
    parts += [table(f"credentials.{name}", fields) for name, fields in credentials.items()]
    return extra + "\n" + "\n".join(parts)


def trading(**changes: Any) -> str:
    """The base file with credentials.trading changed; a value of None deletes the key."""
    fields = {**TRADING, **changes}
    return render(credentials={"tenant": TENANT, "trading": {k: v for k, v in fields.items() if v is not None}})


def problems_of(text: str, source: str = "conf/rotator.toml") -> str:
    """The message of the ConfigError that parsing `text` must raise; every one names the file first."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=source, base_dir=Path("/etc/rotator"), store_types=TYPES)
    message = str(info.value)
    assert message.startswith(source), message
    assert info.value.exit_code is ExitCode.BAD_INPUT
    return message


def parse(text: str) -> Config:
    return parse_config(text, base_dir=Path("/etc/rotator"), store_types=TYPES)


# ------------------------------------------------------------------------------------------ the good file

FULL = """\
[bluum]
timeout = "5s"
max_attempts = 3
rate_limit_production = 20

[stores.tenant]
type = "env"
path = "secrets/tenant.env"

[stores.app]
type = "env"
path = "app.env"
prefix = "BLUUM_"

[stores.app-abs]
type = "env"
path = "/srv/app/bluum.env"

[stores.vault]
type = "vault"
path = "bluum/trading"
mount = "secret"

[credentials.tenant]
environment = "sandbox"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
base_url = "http://127.0.0.1:8765/v1/"
issuer = "bluum"
investor_id = "inv_2ahq810t9rgmwgncgcawcm5400"
manager = "tenant"
store = "app"
also_deploy_to = ["app-abs", "vault"]
rotate_every = "30d"
grace = "0s"
verify_timeout = "2m"
check_path = "/accounts"
"""


@pytest.fixture
def full_config(tmp_path: Path) -> Config:
    path = tmp_path / "rotator.toml"
    path.write_text(FULL, encoding="utf-8")
    return load_config(path, store_types=TYPES)


def test_full_file_parses_into_expected_objects(full_config: Config, tmp_path: Path) -> None:
    config = full_config
    assert config.path == tmp_path / "rotator.toml"
    assert config.source == str(tmp_path / "rotator.toml")
    assert list(config.stores) == ["tenant", "app", "app-abs", "vault"]
    assert list(config.credentials) == ["tenant", "trading"]

    tenant = config.credential("tenant")
    assert tenant.environment is Environment.SANDBOX
    assert tenant.issuer == "manual"
    assert tenant.base_url == DEFAULT_BASE_URLS[Environment.SANDBOX]
    assert tenant.investor_id is None
    assert tenant.manager is None
    assert tenant.targets == ("tenant",)
    assert tenant.rotate_every == timedelta(days=90)
    assert tenant.grace == timedelta(hours=1)
    assert tenant.verify_timeout == timedelta(seconds=60)
    assert tenant.check_path == DEFAULT_CHECK_PATH == "/assets?asset_class=us_equity&tradable=true"
    assert tenant.api_keys_path == DEFAULT_API_KEYS_PATH

    trading = config.credential("trading")
    assert trading.name == "trading"
    assert trading.issuer == "bluum"
    assert trading.investor_id == INV
    assert trading.manager == "tenant"
    assert trading.base_url == "http://127.0.0.1:8765/v1"  # trailing slash dropped
    assert trading.store == "app"
    assert trading.also_deploy_to == ("app-abs", "vault")
    assert trading.targets == ("app", "app-abs", "vault")
    assert trading.rotate_every == timedelta(days=30)
    assert trading.grace == timedelta(0)
    assert trading.verify_timeout == timedelta(minutes=2)
    assert trading.check_path == "/accounts"

    state = tmp_path / "rotator-state"
    assert config.stores["tenant"].options == {"path": tmp_path / "secrets" / "tenant.env", "state_dir": state}
    assert config.stores["app"].type == "env"
    assert config.stores["app"].options == {"path": tmp_path / "app.env", "prefix": "BLUUM_", "state_dir": state}
    assert config.stores["app-abs"].options["path"] == Path("/srv/app/bluum.env")
    # Only file-based types get `path` resolved: for Vault it is a KV path and must pass through as written.
    assert config.stores["vault"].options == {"path": "bluum/trading", "mount": "secret"}  # a KV path: not resolved
    assert config.credential_for_store("vault") == trading
    assert config.credential_for_store("nowhere") is None

    assert config.bluum.timeout == 5.0
    assert config.bluum.max_attempts == 3
    assert config.bluum.retry_budget == 30.0
    assert config.bluum.rate_limits == {Environment.SANDBOX: 10.0, Environment.PRODUCTION: 20.0}


def test_config_objects_are_frozen(full_config: Config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        full_config.credential("trading").grace = timedelta(0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        full_config.credentials["x"] = full_config.credential("trading")  # type: ignore[index]
    with pytest.raises(TypeError):
        full_config.stores["app"].options["path"] = "/tmp/elsewhere"  # type: ignore[index]


def test_bluum_defaults_when_table_absent() -> None:
    settings = parse(render()).bluum
    assert settings.timeout == 10.0
    assert settings.max_attempts == 5
    assert settings.retry_budget == 30.0
    assert settings.rate_limits == {Environment.SANDBOX: 10.0, Environment.PRODUCTION: 25.0}


def test_relative_store_path_resolves_against_base_dir() -> None:
    config = parse_config(render(), base_dir=Path("/etc/rotator"), store_types=TYPES)
    assert config.path is None
    assert config.stores["app"].options["path"] == Path("/etc/rotator/app.env")


def test_store_types_default_to_installed_entry_points() -> None:
    """Without `store_types`, the names come from the `rotator.backends` group: "env" is built in."""
    config = parse_config(render(), base_dir=Path("/etc/rotator"))
    assert config.stores["app"].type == "env"
    with pytest.raises(ConfigError, match=r"stores\.app\.type: names no installed store type"):
        parse_config(render(stores={**STORES, "app": {"type": "nosuch"}}), base_dir=Path("/etc/rotator"))


def test_known_bluum_hosts_accepted_for_their_own_environment() -> None:
    for host in sorted(SANDBOX_HOSTS):
        assert parse(trading(base_url=f"https://{host}/v1")).credential("trading").base_url == f"https://{host}/v1"
    for host in sorted(PRODUCTION_HOSTS):
        text = render(
            credentials={
                "tenant": {**TENANT, "environment": "production"},
                "trading": {**TRADING, "environment": "production", "base_url": f"https://{host}/v1/"},
            }
        )
        credential = parse(text).credential("trading")
        assert credential.base_url == f"https://{host}/v1"
        assert credential.environment is Environment.PRODUCTION


def test_production_default_base_url() -> None:
    text = render(credentials={"tenant": {**TENANT, "environment": "production"}})
    assert parse(text).credential("tenant").base_url == DEFAULT_BASE_URLS[Environment.PRODUCTION]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/v1", "http://127.3.2.1/v1", "http://localhost:9/v1", "http://[::1]:8765/v1"]
)
@pytest.mark.parametrize("environment", ["sandbox", "production"])
def test_loopback_allowed_for_either_environment(url: str, environment: str) -> None:
    text = render(
        credentials={
            "tenant": {**TENANT, "environment": environment},
            "trading": {**TRADING, "environment": environment, "base_url": url},
        }
    )
    assert parse(text).credential("trading").base_url == url


def test_other_https_host_allowed() -> None:
    url = "https://bluum-proxy.internal.example:8443/v1"
    assert parse(trading(base_url=url)).credential("trading").base_url == url


def test_manager_issuer_may_be_anything() -> None:
    """A manager is usually a manual tenant key, but a bluum-issued one is accepted (a future tenant-key API)."""
    boss = {**TRADING, "store": "tenant", "manager": "boss"}
    text = render(
        credentials={"boss": TENANT | {"store": "other"}, "tenant": boss, "trading": TRADING},
        stores={**STORES, "other": {"type": "env", "path": "other.env"}},
    )
    assert parse(text).credential("tenant").issuer == "bluum"


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "rotator.toml"
    path.write_bytes(b"\xef\xbb\xbf" + render().encode())
    assert list(load_config(path, store_types=TYPES).credentials) == ["tenant", "trading"]


# ------------------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("1h", timedelta(hours=1)),
        ("60s", timedelta(seconds=60)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("0s", timedelta(0)),
        ("2w", timedelta(days=14)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5s", timedelta(seconds=1.5)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("90", "has no unit"),
        ("-1h", "negative"),
        ("abc", "is not a duration"),
        ("1x", "is not a duration"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("1e5s", "is not a duration"),
        ("99999999999999d", "too large"),
    ],
)
def test_parse_duration_rejects_junk(text: str, reason: str) -> None:
    with pytest.raises(InvalidDuration) as info:
        parse_duration(text)
    assert reason in str(info.value)
    assert '"90d"' in str(info.value)  # the fix: an example of what to write
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("value", [timedelta(0), timedelta(days=90), timedelta(hours=1, minutes=30, milliseconds=5)])
def test_format_duration_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


# ------------------------------------------------------------------------------------------ syntax and keys


def test_malformed_toml_gives_line_and_column() -> None:
    message = problems_of('[credentials.trading]\nenvironment = "sandbox"\ngrace = 1h\n')
    assert "is not valid TOML (line 3, column 10: Expected newline" in message
    assert "Fix the syntax; see README 'Configuration reference'" in message


def test_unknown_key_suggests_closest() -> None:
    message = problems_of(trading(grce="1h"))
    assert "credentials.trading: unknown key 'grce' (did you mean 'grace'?)" in message
    assert "Known keys: environment, base_url, issuer" in message


def test_unknown_top_level_table() -> None:
    message = problems_of(render(extra='[credential.x]\nstore = "app"\n'))
    assert "top level: unknown key 'credential' (did you mean 'credentials'?)" in message


def test_unknown_key_in_bluum_table() -> None:
    message = problems_of(render(extra='[bluum]\ntimout = "5s"\n'))
    assert "bluum: unknown key 'timout' (did you mean 'timeout'?)" in message


def test_wrong_type() -> None:
    message = problems_of(trading(environment=1))
    assert "credentials.trading.environment: expected a string, got integer 1" in message
    assert 'Fix: write environment = "sandbox" or "production"' in message


def test_credential_that_is_not_a_table() -> None:
    message = problems_of(render(extra='credentials.odd = "x"\n'))
    assert "credentials.odd: expected a table, got string" in message
    assert "[credentials.odd]" in message


@pytest.mark.parametrize(
    ("value", "guess"), [("prod", "production"), ("Production", "production"), ("test", "sandbox")]
)  # Bluum's own TEST and PRODUCTION, spelled as Bluum spells them, are accepted: tests/e2e/test_environment_names.py
def test_bad_environment(value: str, guess: str) -> None:
    message = problems_of(trading(environment=value))
    assert f'credentials.trading.environment: is neither sandbox nor production (did you mean "{guess}"?)' in message
    assert value not in message.replace(guess, ""), "the value written is never echoed (issue 16, item 7)"
    assert f'Fix: write environment = "{guess}"' in message


def test_bad_environment_without_a_guess() -> None:
    message = problems_of(trading(environment="qa"))
    assert "credentials.trading.environment: is neither sandbox nor production. Fix" in message
    assert "'qa'" not in message
    assert 'environment = "sandbox" or environment = "production"' in message


def test_bad_issuer() -> None:
    message = problems_of(trading(issuer="blum"))
    assert "credentials.trading.issuer: is neither bluum nor manual (did you mean 'bluum'?)" in message
    assert "blum'" not in message
    assert 'Fix: write issuer = "bluum"' in message


@pytest.mark.parametrize("key", ["environment", "issuer", "store"])
def test_required_keys(key: str) -> None:
    message = problems_of(trading(**{key: None}))
    assert f"credentials.trading.{key}: missing" in message
    assert f"Fix: add {key} = " in message


# ------------------------------------------------------------------------------------------ references


def test_store_reference_unknown_lists_defined() -> None:
    message = problems_of(trading(store="ap"))
    assert "credentials.trading.store: names no [stores.NAME] table (did you mean 'app'?)" in message
    assert "defined stores: tenant, app" in message
    assert "or add the missing one" in message
    assert "'ap'" not in message


def test_store_reference_with_no_stores_at_all() -> None:
    message = problems_of(render(stores={}, credentials={"tenant": TENANT}))
    assert "credentials.tenant.store: names no [stores.NAME] table" in message
    assert "no [stores.NAME] table is defined yet" in message


def test_also_deploy_to_unknown() -> None:
    message = problems_of(trading(also_deploy_to=["vault"]))
    assert "credentials.trading.also_deploy_to[0]: names no [stores.NAME] table" in message
    assert "vault" not in message
    assert "defined stores: tenant, app" in message


def test_also_deploy_to_not_a_list() -> None:
    message = problems_of(trading(also_deploy_to="tenant"))
    assert "credentials.trading.also_deploy_to: expected an array of names, got a string of 6 characters" in message
    assert 'also_deploy_to = ["NAME", ...]' in message


def test_store_listed_twice_in_targets() -> None:
    stores = {**STORES, "mirror": {"type": "env", "path": "mirror.env"}}
    text = render(stores=stores, credentials={"tenant": TENANT, "trading": TRADING | {"also_deploy_to": ["app"]}})
    message = problems_of(text)
    assert "credentials.trading.also_deploy_to: store 'app' is the primary store and is listed again" in message
    text = render(
        stores=stores, credentials={"tenant": TENANT, "trading": TRADING | {"also_deploy_to": ["mirror"] * 2}}
    )
    message = problems_of(text)
    assert "credentials.trading.also_deploy_to: store 'mirror' is listed twice" in message
    assert "Fix: list each store once" in message


def test_same_primary_store_for_two_credentials() -> None:
    message = problems_of(trading(store="tenant", also_deploy_to=None))
    assert "stores.tenant: is used by credentials.tenant and credentials.trading" in message
    assert "a store holds exactly one credential" in message
    assert "Fix: give each credential its own store" in message


def test_store_deployed_to_by_another_credential() -> None:
    message = problems_of(trading(also_deploy_to=["tenant"]))
    assert "stores.tenant: is used by credentials.tenant and credentials.trading" in message


def test_two_stores_at_the_same_location() -> None:
    # An env store's sidecar and lock are per file: another prefix in the same file is still the same place.
    stores = {**STORES, "copy": {"type": "env", "path": "./app.env", "prefix": "OTHER_"}}
    message = problems_of(render(stores=stores))
    assert "stores.copy: points at the same place as stores.app (the same file)" in message
    stores = {**STORES, "v1": {"type": "vault", "path": "kv/a"}, "v2": {"type": "vault", "path": "kv/a"}}
    message = problems_of(render(stores=stores))
    assert "stores.v2: points at the same place as stores.v1 (the same Vault secret)" in message
    # Read another way (other field names, another mount spelled out as the default) it is still one secret.
    other = {"type": "vault", "path": "/kv/a/", "mount": "secret", "fields": ["key_id"], "auth": "approle"}
    message = problems_of(render(stores={**STORES, "v1": {"type": "vault", "path": "kv/a"}, "v2": other}))
    assert "stores.v2: points at the same place as stores.v1 (the same Vault secret)" in message
    stores = {**STORES, "v1": {"type": "vault", "path": "kv/a"}, "v2": {"type": "vault", "path": "kv/a", "mount": "kv"}}
    assert list(parse(render(stores=stores)).stores) == ["tenant", "app", "v1", "v2"]
    stores = {**STORES, "v1": {"type": "vault", "path": "kv/a"}, "v2": {"type": "vault", "path": "kv/b"}}
    assert list(parse(render(stores=stores)).stores) == ["tenant", "app", "v1", "v2"]


def test_env_store_options_are_checked() -> None:
    message = problems_of(render(stores={**STORES, "app": {"type": "env", "path": "a.env", "prefx": "B_"}}))
    assert "stores.app: unknown key 'prefx' (did you mean 'prefix'?)" in message
    assert "Known keys: type, path, prefix" in message
    assert parse(render(stores={**STORES, "app": {"type": "env", "path": "a.env", "prefix": ""}}))


def test_store_name_option_is_reserved() -> None:
    message = problems_of(render(stores={**STORES, "v": {"type": "keyring", "name": "x"}}))
    assert "stores.v.name: is reserved" in message


def test_unknown_store_type_lists_known_and_plugin_group() -> None:
    message = problems_of(render(stores={**STORES, "app": {"type": "envv", "path": "x"}}))
    assert "stores.app.type: names no installed store type (did you mean 'env'?)" in message
    assert "aws, env, keyring, vault" in message
    assert "'rotator.backends' entry-point group" in message


def test_store_type_missing() -> None:
    message = problems_of(render(stores={**STORES, "app": {"path": "x"}}))
    assert "stores.app.type: missing" in message


def test_env_store_needs_a_path_and_a_valid_prefix() -> None:
    message = problems_of(render(stores={**STORES, "app": {"type": "env"}}))
    assert "stores.app.path: missing" in message
    assert 'Fix: add path = "app.env"' in message
    message = problems_of(render(stores={**STORES, "app": {"type": "env", "path": "a.env", "prefix": "1X"}}))
    assert "stores.app.prefix: cannot start an environment variable name" in message


def test_manager_unknown_lists_credentials() -> None:
    message = problems_of(trading(manager="tennant"))
    assert "credentials.trading.manager: names no [credentials.NAME] table (did you mean 'tenant'?)" in message
    assert "tennant" not in message
    assert "defined: tenant" in message


def test_manager_is_itself() -> None:
    message = problems_of(trading(manager="trading"))
    assert "credentials.trading.manager: a credential cannot manage itself" in message
    assert "Fix: name the tenant credential" in message


def test_manager_of_other_environment() -> None:
    text = render(credentials={"tenant": {**TENANT, "environment": "production"}, "trading": TRADING})
    message = problems_of(text)
    assert "credentials.trading.manager: 'tenant' is a production credential but 'trading' is sandbox" in message
    assert "Fix: point manager at a sandbox tenant credential" in message


# ------------------------------------------------------------------------------------------ issuers


@pytest.mark.parametrize("key", ["investor_id", "manager"])
def test_bluum_issuer_needs_investor_and_manager(key: str) -> None:
    message = problems_of(trading(**{key: None}))
    assert f'credentials.trading.{key}: missing: issuer "bluum" needs' in message
    assert 'or set issuer = "manual"' in message


@pytest.mark.parametrize(
    "value",
    ["inv_ABC", "inv_2ahq810t9rgmwgncgcawcm540", "apk_2ahq810t9rgmwgncgcawcm5400", "2ahq810t9rgmwgncgcawcm5400"],
)
def test_investor_id_format(value: str) -> None:
    message = problems_of(trading(investor_id=value))
    assert "credentials.trading.investor_id: is not a Bluum investor id" in message
    assert value not in message.replace(INV, ""), "only the example is shown, never the value written"
    assert f'investor_id = "{INV}"' in message


def test_investor_id_uppercase_hint() -> None:
    message = problems_of(trading(investor_id=INV.upper().replace("INV_", "inv_")))
    assert "(Bluum's ids are lowercase)" in message


@pytest.mark.parametrize("key", ["investor_id", "manager"])
def test_manual_issuer_rejects_bluum_only_keys(key: str) -> None:
    value = INV if key == "investor_id" else "trading"
    message = problems_of(render(credentials={"tenant": TENANT | {key: value}, "trading": TRADING}))
    assert f'credentials.tenant.{key}: is only used with issuer "bluum"' in message
    assert f"Fix: remove {key}" in message


# ------------------------------------------------------------------------------------------ base_url / I7


@pytest.mark.parametrize("host", sorted(SANDBOX_HOSTS))
def test_sandbox_url_on_production_credential(host: str) -> None:
    text = render(
        credentials={
            "tenant": {**TENANT, "environment": "production"},
            "trading": {**TRADING, "environment": "production", "base_url": f"https://{host}/v1"},
        }
    )
    message = problems_of(text)
    assert f"credentials.trading.base_url: {host} is Bluum's sandbox, but this credential's environment is " in message
    assert "(I7)" in message
    assert 'Fix: use base_url = "https://api.bluumfinance.com/v1"' in message


@pytest.mark.parametrize("host", sorted(PRODUCTION_HOSTS))
def test_production_url_on_sandbox_credential(host: str) -> None:
    message = problems_of(trading(base_url=f"https://{host}/v1"))
    assert f"credentials.trading.base_url: {host} is Bluum's production, but this credential's environment " in message
    assert 'Fix: use base_url = "https://sandbox.api.bluumfinance.com/v1"' in message


def test_host_comparison_ignores_case_and_trailing_dot() -> None:
    message = problems_of(trading(base_url="https://API.BluumFinance.com./v1"))
    assert "api.bluumfinance.com is Bluum's production" in message


def test_plain_http_to_remote_host() -> None:
    message = problems_of(trading(base_url="http://bluum-proxy.example/v1"))
    assert "credentials.trading.base_url: uses plain http to bluum-proxy.example" in message
    assert "Fix: use https://, or a loopback address" in message


def test_plain_http_to_known_host_is_refused_too() -> None:
    message = problems_of(trading(base_url="http://sandbox.api.bluumfinance.com/v1"))
    assert "uses plain http to sandbox.api.bluumfinance.com" in message


def test_base_url_with_credentials_is_refused_without_echo() -> None:
    message = problems_of(trading(base_url="https://apk_live:topsecretvalue@sandbox.api.bluumfinance.com/v1"))
    assert "credentials.trading.base_url: contains a user name or password" in message
    assert "topsecretvalue" not in message


@pytest.mark.parametrize("url", ["sandbox.api.bluumfinance.com/v1", "ftp://x/v1", "https:///v1"])
def test_base_url_not_a_url(url: str) -> None:
    message = problems_of(trading(base_url=url))
    assert "credentials.trading.base_url:" in message
    assert "is not an http(s) URL" in message


def test_base_url_with_query() -> None:
    message = problems_of(trading(base_url="https://sandbox.api.bluumfinance.com/v1?x=1"))
    assert "credentials.trading.base_url: must not have a query" in message


def test_base_url_of_known_host_needs_v1() -> None:
    message = problems_of(trading(base_url="https://sandbox.api.bluumfinance.com"))
    assert "credentials.trading.base_url: Bluum serves its API under /v1" in message
    assert 'Fix: write base_url = "https://sandbox.api.bluumfinance.com/v1"' in message


def test_check_path_rules() -> None:
    message = problems_of(trading(check_path="assets"))
    assert "credentials.trading.check_path: is not a path relative to base_url" in message
    message = problems_of(trading(check_path="/v1/assets"))
    assert "credentials.trading.check_path: starts with /v1, but base_url already ends with /v1" in message
    assert "Fix: remove the leading /v1 from check_path" in message


def test_api_keys_path_placeholders() -> None:
    config = parse(trading(api_keys_path="/tenants/keys"))
    assert config.credential("trading").api_keys_path == "/tenants/keys"
    message = problems_of(trading(api_keys_path="/investors/{investor}/api-keys"))
    assert "credentials.trading.api_keys_path: uses a placeholder other than {investor_id}" in message


# ------------------------------------------------------------------------------------------ timing


def test_grace_zero_is_allowed() -> None:
    assert parse(trading(grace="0s")).credential("trading").grace == timedelta(0)


@pytest.mark.parametrize("value", ["-1h", "soon", "1h1h"])
def test_grace_junk(value: str) -> None:
    message = problems_of(trading(grace=value))
    assert "credentials.trading.grace: is " in message
    assert value not in message
    assert 'Fix: write a number and a unit, e.g. "90d"' in message


def test_duration_as_bare_number() -> None:
    message = problems_of(trading(verify_timeout=60))
    assert (
        "credentials.trading.verify_timeout: expected a duration in quotes with a unit, got the bare number 60"
        in message
    )
    assert 'Fix: write verify_timeout = "60s"' in message


def test_rotate_every_limits() -> None:
    assert parse(trading(rotate_every="90d")).credential("trading").rotate_every == timedelta(days=90)
    message = problems_of(trading(rotate_every="91d"))
    assert "credentials.trading.rotate_every: 91d is longer than 90 days" in message
    assert "Bluum requires rotation at least every 90 days" in message
    assert 'Fix: write rotate_every = "90d" or less' in message
    message = problems_of(trading(rotate_every="0s"))
    assert "credentials.trading.rotate_every: must be longer than 0s" in message


def test_verify_timeout_must_be_positive() -> None:
    message = problems_of(trading(verify_timeout="0s"))
    assert "credentials.trading.verify_timeout: must be longer than 0s" in message
    assert 'Fix: write verify_timeout = "60s"' in message


def test_grace_must_be_shorter_than_rotate_every() -> None:
    message = problems_of(trading(rotate_every="1h", grace="1h"))
    assert "credentials.trading.grace: 1h is not shorter than rotate_every (1h)" in message


def test_bluum_table_values() -> None:
    extra = '[bluum]\ntimeout = "0s"\nmax_attempts = 0\nretry_budget = "x"\nrate_limit_sandbox = -1\n'
    message = problems_of(render(extra=extra))
    assert "bluum.timeout: must be longer than 0s" in message
    assert "bluum.max_attempts: must be at least 1" in message
    assert "bluum.retry_budget: is not a duration" in message
    assert "bluum.rate_limit_sandbox: must be greater than 0, got -1" in message
    message = problems_of(render(extra="[bluum]\nmax_attempts = true\n"))
    assert "bluum.max_attempts: expected an integer, got boolean true" in message


# ------------------------------------------------------------------------------------------ names, emptiness


def test_no_credentials_gives_minimal_example() -> None:
    for text in ("", "[credentials]\n", render(credentials={})):
        message = problems_of(text)
        assert "credentials: no credentials are defined" in message
        assert '[credentials.app]\n    environment = "sandbox"' in message
        assert "see README 'Configuration reference'" in message


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ('credentials.""', "an empty name"),
        ('credentials."a b"', "credentials.'a b': the name"),
        ('credentials."a.b"', "credentials.'a.b': the name"),
        ('stores."x/y"', "stores.'x/y': the name"),
    ],
)
def test_invalid_names(header: str, shown: str) -> None:
    message = problems_of(render(extra=f'[{header}]\nstore = "app"\n'))
    assert f"{shown} is not a valid" in message
    assert "Fix: use only letters, digits, '-' and '_'" in message


def test_all_problems_are_reported_at_once() -> None:
    text = render(credentials={"tenant": TENANT, "trading": TRADING | {"grace": "x", "environment": "prod", "y": 1}})
    with pytest.raises(ConfigProblems) as info:
        parse(text)
    assert len(info.value.problems) == 3
    assert str(info.value).startswith("rotator.toml has 3 problems:\n  - credentials.trading: unknown key 'y'")


def test_values_are_never_echoed_in_messages() -> None:
    """Issue 16, item 7: a short secret under the wrong key was echoed whole (anything up to 40 characters)."""
    for pasted in ("x" * 200, "sk_test_Zm9vYmFy0123", "hunter2!"):
        message = problems_of(trading(environment=pasted, grace=pasted, investor_id=pasted, store=pasted))
        assert pasted not in message
        assert pasted[:8] not in message


# ------------------------------------------------------------------------------------------ lookups


def test_unknown_credential_lists_known_names(full_config: Config) -> None:
    with pytest.raises(ConfigError) as info:
        full_config.credential("tradng")
    message = str(info.value)
    assert "there is no credential 'tradng' (did you mean 'trading'?)" in message
    assert "Fix: use one of: tenant, trading" in message


def test_unknown_store_lists_known_names(full_config: Config) -> None:
    with pytest.raises(ConfigError, match="Fix: use one of: tenant, app, app-abs, vault"):
        full_config.store("nope")


# ------------------------------------------------------------------------------------------ finding and loading


def make(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    return path


def test_find_config_path_precedence(tmp_path: Path) -> None:
    explicit = make(tmp_path / "a" / "explicit.toml")
    from_env = make(tmp_path / "b" / "env.toml")
    default = make(tmp_path / "rotator.toml")
    environ = {CONFIG_ENV_VAR: str(from_env)}
    assert find_config_path(str(explicit), environ, tmp_path) == explicit
    assert find_config_path(None, environ, tmp_path) == from_env
    assert find_config_path(None, {}, tmp_path) == default
    assert find_config_path(None, {CONFIG_ENV_VAR: "  "}, tmp_path) == default  # blank counts as unset
    assert find_config_path("a/explicit.toml", {}, tmp_path) == explicit  # relative to cwd
    assert find_config_path(None, {CONFIG_ENV_VAR: "b/env.toml"}, tmp_path) == from_env


def test_find_config_path_nothing_found_names_three_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {}, tmp_path)
    message = str(info.value)
    assert "--config (not given)" in message
    assert f"${CONFIG_ENV_VAR} (not set)" in message
    assert f"{tmp_path / 'rotator.toml'} (does not exist)" in message
    assert "Fix: create" in message


def test_find_config_path_given_but_missing_does_not_fall_through(tmp_path: Path) -> None:
    make(tmp_path / "rotator.toml")
    with pytest.raises(ConfigError, match=r"--config nope\.toml: .*nope\.toml does not exist"):
        find_config_path("nope.toml", {}, tmp_path)
    with pytest.raises(ConfigError, match=rf"\${CONFIG_ENV_VAR}=gone\.toml: .*does not exist. Fix: point"):
        find_config_path(None, {CONFIG_ENV_VAR: "gone.toml"}, tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        find_config_path(str(tmp_path), {}, tmp_path)


def test_load_config_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(bad byte at offset 5\). Fix: save the file as UTF-8"):
        load_config(bad)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rotator.toml"
    path.write_text(trading(grace="later"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, store_types=TYPES)
    assert str(info.value).startswith(f"{path}: credentials.trading.grace:")


def test_verify_timeout_is_capped_so_a_rotation_fits_in_its_lock() -> None:
    from rotator.config.loader import MAX_VERIFY_TIMEOUT

    assert MAX_VERIFY_TIMEOUT.total_seconds() < __import__("rotator.rotation.driver", fromlist=["x"]).LEASE_TTL_SECONDS
    text = """
[stores.app]
type = "env"
path = "app.env"

[credentials.app]
environment = "sandbox"
issuer = "manual"
store = "app"
verify_timeout = "11m"
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=Path("/etc/rotator"))
    assert "credentials.app.verify_timeout" in str(caught.value)
    assert "10m" in str(caught.value)


# ------------------------------------------------------------------------------------------ [history]


def test_history_defaults_beside_the_config_file() -> None:
    config = parse(render())
    assert config.history.dir == Path("/etc/rotator") / "rotator-history"
    assert config.history.keep == timedelta(days=400)


def test_history_dir_and_keep() -> None:
    config = parse(render(extra='[history]\ndir = "audit/rotations"\nkeep = "90d"\n'))
    assert config.history.dir == Path("/etc/rotator/audit/rotations")
    assert config.history.keep == timedelta(days=90)
    absolute = parse(render(extra='[history]\ndir = "/var/lib/rotator/history"\n'))
    assert absolute.history.dir == Path("/var/lib/rotator/history")


def test_history_shorter_than_bluums_30_days_is_refused() -> None:
    message = problems_of(render(extra='[history]\nkeep = "7d"\n'))
    assert "history.keep: must be at least 30d" in message
    assert 'keep = "400d"' in message


def test_history_unknown_key_and_wrong_type() -> None:
    assert "history: unknown key 'folder'" in problems_of(render(extra='[history]\nfolder = "x"\n'))
    assert "history: expected a table" in problems_of(render(extra='history = "x"\n'))


def test_env_stores_keep_state_in_the_rotators_folder_by_default() -> None:
    config = parse(render())
    assert config.stores["app"].options["state_dir"] == Path("/etc/rotator/rotator-state")
    custom = parse(render().replace('path = "app.env"', 'path = "app.env"\nstate_dir = "/var/lib/rotator"', 1))
    assert custom.stores["app"].options["state_dir"] == Path("/var/lib/rotator")
