"""The `reload` array of a store table, validated like the rest of rotator.toml; and what a reload may say.

Good tables parse into exact `ReloadAction`s; each wrong one names its key (`stores.app.reload[0].command`), what is
wrong and the fix, and nothing is built from the file. What a reload program printed is shown only when it cannot be
a secret (`screened`): no piece of a key, nothing shaped like a token.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.loader import ConfigProblems, parse_config
from rotator.config.reloads import ReloadAction
from rotator.rotation.reload_runner import action_env, last_line, screened

BASE = Path("/etc/rotator")
TYPES = ("env", "vault", "keyring")
CREDENTIALS = """
[credentials.tenant]
environment = "sandbox"
issuer = "manual"
store = "tenant"

[credentials.trading]
environment = "sandbox"
issuer = "manual"
store = "app"
also_deploy_to = ["mirror"]
"""


def config_with(reload: str, *, store_type: str = "env", extra: str = "") -> str:
    options = 'path = "app.env"' if store_type == "env" else 'path = "bluum/trading"'
    return f"""
[stores.tenant]
type = "env"
path = "tenant.env"

[stores.app]
type = "{store_type}"
{options}
{extra}
reload = {reload}

[stores.mirror]
type = "env"
path = "mirror.env"
{CREDENTIALS}"""


def parse(reload: str, **kwargs: str):
    return parse_config(config_with(reload, **kwargs), base_dir=BASE, store_types=TYPES)


def problems(reload: str, **kwargs: str) -> tuple[str, ...]:
    with pytest.raises(ConfigProblems) as caught:
        parse(reload, **kwargs)
    return caught.value.problems


def test_good_actions_parse_into_exact_objects():
    config = parse(
        """[
  { command = ["systemctl", "reload", "trading"], timeout = "60s" },
  { command = ["kubectl", "rollout", "restart", "deployment/trading"], pass_env = ["KUBECONFIG"] },
  { url = "http://127.0.0.1:8080/-/reload", method = "post", timeout = "10s" },
  { url = "https://trading.internal/admin/reload?from=rotator" },
]"""
    )
    assert config.stores["app"].reload == (
        ReloadAction(
            kind="command", timeout=timedelta(seconds=60), cwd=BASE, command=("systemctl", "reload", "trading")
        ),
        ReloadAction(
            kind="command",
            timeout=timedelta(seconds=60),
            cwd=BASE,
            command=("kubectl", "rollout", "restart", "deployment/trading"),
            pass_env=("KUBECONFIG",),
        ),
        ReloadAction(kind="url", timeout=timedelta(seconds=10), cwd=BASE, url="http://127.0.0.1:8080/-/reload"),
        ReloadAction(
            kind="url",
            timeout=timedelta(seconds=10),
            cwd=BASE,
            url="https://trading.internal/admin/reload?from=rotator",
            method="POST",
        ),
    )
    assert config.stores["mirror"].reload == ()
    assert "reload" not in config.stores["app"].options, "a store factory must never receive the rotator's reload"


def test_descriptions_name_the_command_and_the_url_without_its_query():
    config = parse('[{ command = ["systemctl", "reload", "my app"] }, { url = "https://h.example/r?token=abc" }]')
    command, url = config.stores["app"].reload
    assert command.describe() == "systemctl reload 'my app'"
    assert url.describe() == "POST https://h.example/r"


def test_descriptions_leave_out_what_may_be_a_token():
    """Deploy hooks carry their token in the path; a command may carry one as an argument. The history, the step
    lines and the notifications name the action without it."""
    config = parse(
        '[{ command = ["curl", "-H", "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", "https://h.example/x"] },'
        ' { url = "https://api.vercel.example/v1/integrations/deploy/prj_ABCDEF/Zx9yW8vU7tS6rQ5pO4nM" }]'
    )
    command, url = config.stores["app"].reload
    assert "abcdefghijklmnopqrstuvwxyz0123" not in command.describe()
    assert command.describe().startswith("curl -H 'Authorization: Bearer …'")
    assert url.describe() == "POST https://api.vercel.example/v1/…"


def test_a_third_party_store_factory_does_not_receive_reload():
    """Its options pass through unchecked, but `reload` is the rotator's: parsed here, never handed to the store."""
    config = parse('[{ command = ["true"] }]', store_type="keyring", extra='service = "bluum"')
    app = config.stores["app"]
    assert dict(app.options) == {"path": "bluum/trading", "service": "bluum"}
    assert app.reload[0].command == ("true",)


def test_a_shell_string_is_refused_with_the_form_to_write_and_never_repeated():
    """Issue 16, item 7: the argument list suggested from a shell string repeated a token it held."""
    (problem,) = problems("[{ command = \"curl -H 'Authorization: Bearer tok3n-s3cret' http://127.0.0.1/r\" }]")
    assert problem.startswith("stores.app.reload[0].command: is a string")
    assert "never run through a shell" in problem
    assert 'Fix: write it as a list, command = ["program", "argument", ...]' in problem
    assert '["/bin/sh", "-c", "..."]' in problem
    assert "tok3n" not in problem
    assert "curl" not in problem


@pytest.mark.parametrize(
    ("reload", "where", "what"),
    [
        ('[{ timeout = "5s" }]', "stores.app.reload[0]", "has neither command nor url"),
        ('[{ command = ["a"], url = "http://127.0.0.1/" }]', "stores.app.reload[0]", "has both command and url"),
        ("[{ command = [] }]", "stores.app.reload[0].command", "expected a non-empty array of strings"),
        ('[{ command = ["a", 1] }]', "stores.app.reload[0].command", "expected a non-empty array of strings"),
        ('[{ command = [" "] }]', "stores.app.reload[0].command", "the program (its first item) is empty"),
        (
            '[{ command = ["a"] }, { command = ["b"], timeout = "soon" }]',
            "stores.app.reload[1].timeout",
            "not a duration",
        ),
        ('[{ command = ["a"], timeout = 30 }]', "stores.app.reload[0].timeout", "bare number 30"),
        ('[{ command = ["a"], timeout = "0s" }]', "stores.app.reload[0].timeout", "longer than 0s and at most 10m"),
        ('[{ command = ["a"], timeout = "1h" }]', "stores.app.reload[0].timeout", "longer than 0s and at most 10m"),
        ('[{ command = ["a"], comand = ["b"] }]', "stores.app.reload[0]", "unknown key 'comand'"),
        ('[{ url = "ftp://h/" }]', "stores.app.reload[0].url", "not an http:// or https:// URL"),
        ('[{ url = "http://:80/" }]', "stores.app.reload[0].url", "URL with a host"),
        ('[{ url = "http://h/" }]', "stores.app.reload[0].url", "which is not this machine"),
        ('[{ url = "http://localhost@h/" }]', "stores.app.reload[0].url", "has a user or password"),
        ('[{ url = "https://h:99999/" }]', "stores.app.reload[0].url", "port is outside 1 to 65535"),
        ('[{ url = "https://admin:pw@h/" }]', "stores.app.reload[0].url", "has a user or password"),
        ('[{ url = "https://h/", method = "DELETE" }]', "stores.app.reload[0].method", "must be one of POST, PUT, GET"),
        ('[{ command = ["a"], method = "POST" }]', "stores.app.reload[0].method", "applies to a url action only"),
        ('[{ command = ["a"], pass_env = ["A B"] }]', "stores.app.reload[0].pass_env", "environment variable names"),
        ('[{ url = "https://h/", pass_env = ["A"] }]', "stores.app.reload[0].pass_env", "a command action only"),
        ('["systemctl reload trading"]', "stores.app.reload[0]", "expected an inline table"),
        ('"systemctl reload trading"', "stores.app.reload", "expected an array of inline tables"),
    ],
)
def test_each_wrong_action_names_its_key_what_is_wrong_and_the_fix(reload: str, where: str, what: str):
    found = problems(reload)
    assert len(found) == 1, found
    assert found[0].startswith(f"{where}: "), found[0]
    assert what in found[0]
    assert "Fix: " in found[0]


def test_reload_is_a_known_key_of_every_built_in_store_and_typos_are_caught():
    found = problems('[{ command = ["true"] }]', extra='relaod = [{ command = ["true"] }]')
    assert any("unknown key 'relaod' (did you mean 'reload'?)" in problem for problem in found), found


def test_every_problem_of_every_action_is_reported_at_once():
    found = problems('[{ command = "a b" }, { url = "ftp://x/" }, { command = ["c"], timeout = "0s" }]')
    assert [problem.split(":", 1)[0] for problem in found] == [
        "stores.app.reload[0].command",
        "stores.app.reload[1].url",
        "stores.app.reload[2].timeout",
    ]


# ------------------------------------------------------------------------------- what a reload program may say

SECRET = "sk_live_9f8e7d6c5b4a39281706"
API_KEY = "pk_3c2b1a0f9e8d7c6b"


@pytest.mark.parametrize(
    "line",
    [
        f"BLUUM_API_SECRET={SECRET}",
        f"secret starts {SECRET[:10]}",  # a piece of it
        f"key {API_KEY}",
        "Authorization: Basic cGtfM2MyYjFhMGY5ZThkN2M2Yjpza19saXZl",  # an encoding of a pair
        "token=ghp_A1b2C3d4E5f6G7h8I9j0K1l2",  # a secret of another system
    ],
)
def test_a_line_that_may_hold_a_secret_is_withheld(line: str):
    assert screened(line, [SECRET, API_KEY]) is None


def test_a_plain_error_line_is_shown_shortened_and_without_control_characters():
    line = "Job for trading.service failed because the control process exited with error code.\x1b[0m"
    assert (
        screened(line, [SECRET])
        == "Job for trading.service failed because the control process exited with error code. [0m"
    )
    assert len(screened("word " * 100, [SECRET]) or "") == 160


def test_the_last_line_is_the_last_one_with_something_on_it():
    assert last_line("first\nsecond\n\n   \n") == "second"
    assert last_line("\n \n") is None


def test_a_command_gets_a_minimal_environment_and_the_names_it_asks_for():
    action = ReloadAction(
        kind="command", timeout=timedelta(seconds=1), cwd=BASE, command=("x",), pass_env=("KUBECONFIG",)
    )
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/rotator",
        "VAULT_TOKEN": "hvs.secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "KUBECONFIG": "/etc/kube.conf",
    }
    env = action_env(action, {"ROTATOR_CREDENTIAL": "trading"}, environ)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/rotator",
        "KUBECONFIG": "/etc/kube.conf",
        "ROTATOR_CREDENTIAL": "trading",
    }
    assert action_env(action, {}, {})["PATH"].startswith("/usr/local/sbin:")
