"""Issue 16, items 7, 10, 17, 18 and 21: what the rotator believes of rotator.toml and its own outputs, driven through
the real CLI (and the real daemon) against the simulator.

- 7: a secret written under the wrong key is never echoed, on any stream, nor sent to a webhook by the daemon;
- 10: a rotator.toml (or a folder above it) that another user could change is refused before it is read, and the
  daemon keeps its last good configuration and alerts once;
- 17: a history file with a byte that is not UTF-8 is still shown (the damaged line reported) and still pruned;
- 18: webhook, SNS and reload URLs are parsed: no user info, a real host and port, plain http only to loopback;
- 21: `--metrics-textfile` into a folder that does not exist is refused, not created.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.core.errors import ExitCode
from tests.e2e.conftest import Workspace
from tests.e2e.second_user import NOBODY
from tests.e2e.test_daemon import TICK, DaemonProcess, _no_daemon_left, wait_until  # noqa: F401 - autouse fixture
from tests.e2e.test_review_scenarios import said
from tests.integration.test_webhooks import KEY, Receiver

HOOK_ENV = {"HOOK_KEY": KEY}


def everything(proc: object) -> str:
    """stdout and stderr, logs included (-vv debug lines too)."""
    return f"{getattr(proc, 'stdout', '')}\n{getattr(proc, 'stderr', '')}"


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test hands a file to uid 65534 (chown)")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def add_webhook(ws: Workspace, url: str, extra: str = "") -> None:
    ws.add_config(f"\n[notifications.ops]\nurl = '{url}'\nsecret_env = \"HOOK_KEY\"\n{extra}")  # literal: no escapes


# --------------------------------------------------------------------------------------------- item 7

SECRETS = {
    "environment": "sk_live_Q7mZ2xK9pR4vT1wY",
    "grace": "hunter2-Zx81Lq",
    "investor_id": "sk_test_8Hq3Lm2Np7Rt",
    "base_url": "pk_live_AbCdEf123456",
    "secret_env": "whsec_4f9a8b7c6d5e4f3a2b1c",
    "reload": "tok_Rk29Vq81Zp0Lm3Xy",
    "vault_auth": "hvs_CAESIJ5tJ4a7nb0Q",
    "unknown_key": "sk_live_w8Jd72Kq0Zm1",
    "env_reader": "sk_live_R3a9Dq0Lw7Tz",
    "env_fields": "sk_live_F1e7Ld5Sq2Vx",
}
"""One secret-shaped value (all of 40 characters or fewer: the old `show` printed those whole) per place a person
could paste one by mistake."""


def put_secret_in(ws: Workspace, where: str, secret: str) -> None:
    sim = ws.sim.base_url
    if where == "environment":
        ws.edit_config(
            f'environment = "sandbox"\nbase_url = "{sim}"\nissuer = "bluum"',
            f'environment = "{secret}"\nbase_url = "{sim}"\nissuer = "bluum"',
        )
    elif where == "grace":
        ws.edit_config('rotate_every = "90d"\ngrace = "0s"', f'rotate_every = "90d"\ngrace = "{secret}"')
    elif where == "investor_id":
        ws.edit_config(f'investor_id = "{ws.investor}"', f'investor_id = "{secret}"')
    elif where == "base_url":
        ws.edit_config(f'base_url = "{sim}"\nissuer = "bluum"', f'base_url = "{secret}"\nissuer = "bluum"')
    elif where == "secret_env":
        add_webhook(ws, "https://hooks.example.com/bluum")
        ws.edit_config('secret_env = "HOOK_KEY"', f'secret_env = "{secret}"')
    elif where == "reload":
        ws.edit_config(
            'path = "app.env"\n',
            f'path = "app.env"\nreload = [{{ command = "curl -H \'Authorization: Bearer {secret}\' '
            'https://deploy.example.com/hook" }]\n',
        )
    elif where == "vault_auth":
        ws.add_config(
            f'\n[stores.vaulted]\ntype = "vault"\npath = "bluum/vaulted"\nurl = "http://127.0.0.1:8200"\n'
            f'auth = "{secret}"\n\n[credentials.vaulted]\nenvironment = "sandbox"\nissuer = "manual"\n'
            f'store = "vaulted"\nbase_url = "{ws.sim.base_url}"\n'
        )
    elif where == "env_reader":
        ws.edit_config('path = "app.env"\n', f'path = "app.env"\nreader = "{secret}"\n')
    elif where == "env_fields":
        ws.edit_config('path = "app.env"\n', f'path = "app.env"\nfields = ["key_id", "{secret}"]\n')
    elif where == "unknown_key":
        ws.edit_config('manager = "tenant"', f'manager = "tenant"\napi_secret = "{secret}"')
    else:
        raise AssertionError(where)


@pytest.mark.parametrize("where", sorted(SECRETS))
def test_a_secret_under_the_wrong_key_is_never_echoed(ws: Workspace, where: str) -> None:
    """`status` and `rotate` refuse the file (exit 2, nothing changed) naming the key and the fix, and the value
    appears on no stream, logs included: the leak guard watches it too."""
    secret = SECRETS[where]
    ws.guard.watch(secret)
    put_secret_in(ws, where, secret)
    assert secret in ws.config.read_text(), "the edit must have put the secret in the file"
    before = ws.snapshot()
    for command in (("status",), ("rotate", "trading")):
        proc = ws.run(*command, env=HOOK_ENV)
        output = everything(proc)
        assert secret not in output, f"{where}: the secret was echoed by {command}:\n{output[-1500:]}"
        assert secret[:10] not in output, f"{where}: the start of the secret was echoed by {command}"
        assert "Traceback" not in proc.stderr
        if command == ("status",) and where == "secret_env":
            assert proc.returncode == ExitCode.OK, said(proc)  # status tells no sink, so it builds none
            continue
        assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
        assert "Fix" in said(proc) or "fix" in said(proc), said(proc)
    assert ws.snapshot() == before


@pytest.mark.slow
def test_the_daemon_never_sends_configuration_text_to_a_webhook(ws: Workspace, receiver: Receiver) -> None:
    """A broken edit is announced once to the webhook as "rotator.toml is invalid: N problem(s)", without a line
    of the file; the daemon goes on with its last good configuration."""
    secret = "sk_live_Pq8Zr2Wm5Nx7"
    ws.guard.watch(secret)
    add_webhook(ws, receiver.url, 'events = ["alert"]\n')
    daemon = DaemonProcess(ws, *TICK, env=HOOK_ENV)
    daemon.wait_for(r"tick 1: done in [\d.]+s")
    good = ws.config.read_text()
    ws.config.write_text(good.replace('grace = "0s"', f'grace = "{secret}"', 1))
    daemon.wait_for(r"keeps running on the configuration it read", stream="err")
    wait_until("the alert at the webhook", lambda: any(b.get("event") == "alert" for b in receiver.accepted))
    seen = len(daemon.out)
    daemon.wait_for(r"tick \d+: done in [\d.]+s", start=seen)  # still ticking, on the last good file
    ws.config.write_text(good)
    assert daemon.stop() == ExitCode.OK, daemon.tail()
    alerts = [body for body in receiver.accepted if body.get("subject") == "config_reload_failed"]
    assert len(alerts) == 1, alerts
    assert "is invalid: 1 problem(s)" in alerts[0]["message"], alerts[0]
    assert "grace" not in alerts[0]["message"], "no key and no value of the file goes to a sink"
    for body in receiver.bodies:
        assert secret not in body
        ws.guard.check(body, "webhook body")


# --------------------------------------------------------------------------------------------- item 10


def make_untrusted(ws: Workspace, how: str) -> str:
    """Let another user change rotator.toml; returns what the refusal must say."""
    if how == "owned_by_nobody":
        os.chown(ws.config, NOBODY, NOBODY)  # uid 65534 can now rewrite it at will
        return f"belongs to nobody (uid {NOBODY})"
    if how == "group_writable":
        os.chown(ws.config, 0, NOBODY)
        ws.config.chmod(0o664)  # every member of group 65534 can write it
        return "can be written by its group"
    if how == "world_writable":
        ws.config.chmod(0o646)
        return "can be written by everyone"
    if how == "folder_writable":
        ws.root.chmod(0o777)  # anyone can swap rotator.toml for a file of their own
        return f"the folder {ws.root} (drwxrwxrwx) can be written by everyone"
    if how == "folder_of_nobody":
        os.chown(ws.root, NOBODY, NOBODY)
        return f"the folder {ws.root} belongs to nobody (uid {NOBODY})"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["owned_by_nobody", "group_writable", "world_writable", "folder_writable", "folder_of_nobody"]
)
def test_a_configuration_another_user_can_change_is_refused(ws: Workspace, how: str) -> None:
    """As root (as the README's cron and systemd run it): exit 2 before the file is read, nothing changed, the fix
    named; on main the rotation ran with whatever the other user wrote."""
    needs_root()
    expected = make_untrusted(ws, how)
    try:
        before = ws.snapshot()
        keys_before = ws.sim.keys()
        proc = ws.run("rotate", "trading")
        text = said(proc)
        assert proc.returncode == ExitCode.BAD_INPUT, text
        assert "refused" in text, text
        assert expected in text, text
        assert "Fix: " in text, text
        assert "chmod go-w" in text or "chown root" in text, text
        assert ws.snapshot() == before
        assert ws.sim.keys() == keys_before, "nothing was minted"
    finally:
        os.chown(ws.root, 0, 0)
        ws.root.chmod(0o700)
        os.chown(ws.config, 0, 0)
        ws.config.chmod(0o644)
    assert ws.run("status").returncode == ExitCode.OK, "trusted again once fixed"


@pytest.mark.slow
def test_the_daemon_keeps_its_last_good_configuration_when_the_file_becomes_writable_by_others(
    ws: Workspace, receiver: Receiver
) -> None:
    """The new content is never read: a credential another user added does not appear, ticks go on with the
    configuration read while the file could be trusted, and the sink hears of it once."""
    needs_root()
    add_webhook(ws, receiver.url, 'events = ["alert"]\n')
    daemon = DaemonProcess(ws, *TICK, env=HOOK_ENV)
    daemon.wait_for(r"tick 1: done in [\d.]+s")
    try:
        ws.config.chmod(0o666)
        with ws.config.open("a") as handle:  # what the other user writes: another credential, with a reload
            handle.write(
                f'\n[stores.evil]\ntype = "env"\npath = "evil.env"\nreload = [{{ command = ["/bin/touch", '
                f'"{ws.root / "pwned"}"] }}]\n\n[credentials.evil]\nenvironment = "sandbox"\nissuer = "manual"\n'
                f'store = "evil"\nbase_url = "{ws.sim.base_url}"\n'
            )
        daemon.wait_for(r"refused: it decides which commands", stream="err")
        seen = len(daemon.out)
        daemon.wait_for(r"tick \d+: done in [\d.]+s", start=seen)
        daemon.wait_for(r"tick \d+: done in [\d.]+s", start=len(daemon.out))
        assert not any("configuration changed" in line for line in daemon.out), daemon.tail()
    finally:
        ws.config.chmod(0o644)
    assert daemon.stop() == ExitCode.OK, daemon.tail()
    assert not (ws.root / "pwned").exists()
    alerts = [body for body in receiver.accepted if body.get("subject") == "config_reload_failed"]
    assert len(alerts) == 1, alerts
    assert "is refused: another user than its owner and root could change it" in alerts[0]["message"]


# --------------------------------------------------------------------------------------------- item 17


def test_a_history_line_that_is_not_utf8_is_skipped_reported_and_pruning_goes_on(ws: Workspace) -> None:
    first = ws.run("rotate", "trading")
    assert first.returncode == ExitCode.OK, said(first)
    history = ws.root / "rotator-history" / "trading.jsonl"
    lines = history.read_bytes().splitlines(keepends=True)
    old = json.dumps({"at": time.time() - 500 * 86400, "event": "completed", "message": "from long ago"})
    damaged = b'{"event": "completed", "message": "caf\xe9 \xff"}\n'  # latin-1 bytes, as a stray editor saves them
    history.write_bytes(old.encode() + b"\n" + lines[0] + damaged + b"".join(lines[1:]))
    damaged_line = 3

    shown = ws.run("history", "trading")
    assert shown.returncode == ExitCode.OK, said(shown)
    assert "Traceback" not in shown.stderr
    assert f"skipped 1 damaged line(s) (not a UTF-8 JSON entry): line {damaged_line}" in shown.stderr
    assert "from long ago" in shown.stdout, "the other entries are all shown"
    as_json = ws.run("history", "trading", "--json")
    assert as_json.returncode == ExitCode.OK, said(as_json)
    assert len(json.loads(as_json.stdout)) == len(lines) + 1, "stdout stays one JSON document"

    again = ws.run("rotate", "trading")  # a rotation starts: the history is pruned, then appended to
    assert again.returncode == ExitCode.OK, said(again)
    after = history.read_bytes()
    assert b"from long ago" not in after, "pruning went on past the damaged line"
    assert damaged in after, "the damaged line is kept as it was (never lose what cannot be judged)"
    entries = json.loads(ws.run("history", "trading", "--json").stdout)
    assert [e["event"] for e in entries].count("completed") == 2, "the new rotation was appended"


# --------------------------------------------------------------------------------------------- item 18


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost@192.0.2.10/hook", "has a user or password"),
        ("http://localhost.example.net/hook", "which is not this machine"),
        ("http://127.0.0.1.nip.io/hook", "which is not this machine"),
        ("http://192.0.2.10/hook", "which is not this machine"),
        ("https://", "URL with a host"),
        ("https://hooks.example.com:99999/hook", "port is outside 1 to 65535"),
        ("http://127.0.0.1\\@192.0.2.10/hook", "backslash"),
    ],
)
def test_a_webhook_url_is_parsed_not_prefix_matched(ws: Workspace, url: str, problem: str) -> None:
    add_webhook(ws, url)
    before = ws.snapshot()
    proc = ws.run("rotate", "trading", env=HOOK_ENV)
    text = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, text
    assert "notifications.ops.url: " in text, text
    assert problem in text, text
    assert "/hook" not in text, "the URL is not repeated, only a host (a webhook URL is often a secret itself)"
    assert "Fix: use https://HOST/PATH" in text
    assert ws.snapshot() == before


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            '\n[notifications.aws]\ntype = "sns"\ntopic_arn = "arn:aws:sns:us-east-1:123456789012:t"\n'
            'endpoint_url = "http://localhost@192.0.2.10"\n',
            "notifications.aws.endpoint_url: has a user or password",
        ),
        (
            '\n[stores.extra]\ntype = "env"\npath = "extra.env"\n'
            'reload = [{ url = "http://localhost.example.net/-/reload" }]\n',
            "stores.extra.reload[0].url: uses plain http to localhost.example.net, which is not this machine",
        ),
    ],
)
def test_every_url_of_the_file_follows_the_same_rule(ws: Workspace, table: str, key: str) -> None:
    ws.add_config(table)
    proc = ws.run("status")
    assert proc.returncode == ExitCode.BAD_INPUT, said(proc)
    assert key in said(proc), said(proc)


# --------------------------------------------------------------------------------------------- item 21


def test_a_metrics_textfile_in_a_missing_folder_is_refused_not_created(ws: Workspace, tmp_path: Path) -> None:
    ws.edit_config('rotate_every = "90d"', 'rotate_every = "90d"\nseeded_key_age = "due"')  # due: a tick would rotate
    missing = tmp_path / "textfile_colector"  # the typo the README warns of
    before = ws.snapshot()
    proc = ws.run("run-due", "--metrics-textfile", str(missing / "bluum_rotator.prom"))
    text = said(proc)
    assert proc.returncode == ExitCode.BAD_INPUT, text
    assert f"its folder {missing} does not exist; it is not created" in text, text
    assert "Fix: correct the path" in text
    assert not missing.exists()
    assert ws.snapshot() == before, "refused before the tick: nothing rotated"
