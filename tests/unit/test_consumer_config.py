"""The `consumers` array of a store table and `consumer_wait` of a credential, validated like the rest of rotator.toml.

Good tables parse into exact `Consumer`s, gathered per credential across its targets by `Config.consumers_of`; each
wrong one names its key (`stores.app.consumers[0].command`), what is wrong and the fix, and nothing is built.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.consumers import Consumer
from rotator.config.loader import ConfigProblems, parse_config

BASE = Path("/etc/rotator")
TYPES = ("env", "vault")


def config_with(app: str, mirror: str = "", credential: str = "") -> str:
    return f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[stores.app]
type = "env"
path = "app.env"
{app}

[stores.mirror]
type = "vault"
path = "bluum/trading"
{mirror}

[credentials.tenant]
environment = "sandbox"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "app"
also_deploy_to = ["mirror"]
{credential}
"""


def parse(app: str, mirror: str = "", credential: str = ""):
    return parse_config(config_with(app, mirror, credential), base_dir=BASE, store_types=TYPES)


def problems(app: str, mirror: str = "", credential: str = "") -> tuple[str, ...]:
    with pytest.raises(ConfigProblems) as caught:
        parse(app, mirror, credential)
    return caught.value.problems


def test_consumers_parse_per_store_and_gather_per_credential_across_targets() -> None:
    config = parse(
        'consumers = [ { name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" },\n'
        '  { name = "nightly", command = ["bin/key-fingerprint", "--json"], timeout = "10s", pass_env = ["HOME"] } ]',
        'consumers = [ { name = "reporter", url = "https://reports.example.com/-/bluum-key" } ]',
        'consumer_wait = "30s"',
    )
    assert config.consumers_of("trading") == (
        Consumer("trader-1", "app", "url", timedelta(seconds=5), BASE, url="http://127.0.0.1:9001/-/bluum-key"),
        Consumer(
            "nightly",
            "app",
            "command",
            timedelta(seconds=10),
            BASE,
            command=("bin/key-fingerprint", "--json"),
            pass_env=("HOME",),
        ),
        Consumer(
            "reporter", "mirror", "url", timedelta(seconds=5), BASE, url="https://reports.example.com/-/bluum-key"
        ),
    )
    assert config.credential("trading").consumer_wait == timedelta(seconds=30)
    assert "consumers" not in config.store("app").options
    assert "consumers" not in config.store("mirror").options


def test_without_consumers_nothing_changes() -> None:
    config = parse("")
    assert config.consumers_of("trading") == () == config.consumers_of("tenant")
    assert config.credential("trading").consumer_wait == timedelta(minutes=2)


def test_a_command_consumer_waits_30s_by_default() -> None:
    config = parse('consumers = [ { name = "batch", command = ["fp"] } ]')
    assert config.consumers_of("trading")[0].timeout == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("app", "key", "says"),
    [
        ('consumers = "http://127.0.0.1:9001"', "stores.app.consumers", "array of inline tables"),
        ('consumers = [ "x" ]', "stores.app.consumers[0]", "inline table"),
        ('consumers = [ { url = "http://127.0.0.1:9001/" } ]', "stores.app.consumers[0].name", "missing"),
        ('consumers = [ { name = "a b", url = "http://127.0.0.1:9001/" } ]', "stores.app.consumers[0].name", "letters"),
        ('consumers = [ { name = "a" } ]', "stores.app.consumers[0]", "neither command nor url"),
        ('consumers = [ { name = "a", url = "http://127.0.0.1/", command = ["x"] } ]', "consumers[0]", "both"),
        ('consumers = [ { name = "a", command = "fp --json" } ]', "consumers[0].command", "never run through a shell"),
        ('consumers = [ { name = "a", command = [] } ]', "consumers[0].command", "non-empty array"),
        ('consumers = [ { name = "a", command = [" "] } ]', "consumers[0].command", "program"),
        ('consumers = [ { name = "a", url = "http://10.0.0.5:9001/" } ]', "consumers[0].url", "this machine"),
        ('consumers = [ { name = "a", url = "http://127.0.0.1/", timeout = "3m" } ]', "consumers[0].timeout", "2m"),
        ('consumers = [ { name = "a", url = "http://127.0.0.1/", timeout = "0s" } ]', "consumers[0].timeout", "0s"),
        ('consumers = [ { name = "a", url = "http://127.0.0.1/", pass_env = ["H"] } ]', "pass_env", "command action"),
        ('consumers = [ { name = "a", url = "http://127.0.0.1/", methd = "GET" } ]', "consumers[0]", "unknown key"),
        (
            'consumers = [ { name = "a", url = "http://127.0.0.1/" }, { name = "a", command = ["x"] } ]',
            "consumers[1].name",
            "repeats",
        ),
    ],
)
def test_a_wrong_consumer_names_its_key_and_the_fix(app: str, key: str, says: str) -> None:
    found = problems(app)
    assert len(found) == 1, found
    assert key in found[0]
    assert says in found[0]
    assert "Fix:" in found[0]


def test_a_name_is_unique_across_the_credentials_targets() -> None:
    found = problems(
        'consumers = [ { name = "trader-1", url = "http://127.0.0.1:9001/" } ]',
        'consumers = [ { name = "trader-1", url = "http://127.0.0.1:9002/" } ]',
    )
    assert found == (
        "stores.mirror.consumers[0].name: is also the name of a consumer of store 'app'; both are consumers of "
        "credential 'trading', whose consumers are named uniquely. Fix: rename one of them.",
    )


@pytest.mark.parametrize(("wait", "says"), [('"0s"', "longer than 0s"), ('"11m"', "at most 10m"), ("5", "bare")])
def test_a_wrong_consumer_wait_names_its_key(wait: str, says: str) -> None:
    found = problems("", "", f"consumer_wait = {wait}")
    assert len(found) == 1
    assert found[0].startswith("credentials.trading.consumer_wait")
    assert says in found[0]


def test_a_secret_pasted_as_a_url_is_not_echoed() -> None:
    secret = "sk_live_ZXhhbXBsZXNlY3JldHZhbHVlMTIz"
    found = problems(f'consumers = [ {{ name = "a", url = "{secret}" }} ]')
    assert secret not in "".join(found)
