"""The pure rules behind issue 16's items 7, 10, 17 and 18 (tests/e2e/test_trust_config.py drives them through the
CLI): how a value is named in a problem, which URLs pass, which owners and modes make rotator.toml untrusted, and how
a damaged history line is read."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config.tables import quote_name, show
from rotator.config.trust import Entry, check_config_trusted, judge
from rotator.core.errors import ConfigError, ConfigUntrusted
from rotator.core.urls import is_loopback_host, url_problem
from rotator.daemon.loop import config_alert
from rotator.notify.history import HistoryLog

# ------------------------------------------------------------------------------------------ show (item 7)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sk_live_abc", "a string of 11 characters"),
        ("x", "a string of 1 character"),
        (["sk_live_abc"], "an array of 1 item"),
        ({"token": "sk_live_abc"}, "a table"),
        (8, "integer 8"),
        (2.5, "float 2.5"),
        (True, "boolean true"),
    ],
)
def test_show_names_a_string_by_its_length_and_never_its_text(value: object, shown: str) -> None:
    assert show(value) == shown


def test_quote_name_shortens_a_long_name() -> None:
    assert quote_name("trading") == "'trading'"
    long = "k" * 100
    assert long not in quote_name(long)
    assert "(100 characters)" in quote_name(long)


# ------------------------------------------------------------------------------------------ URLs (item 18)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/bluum",
        "https://hooks.example.com:8443/x?y=1",
        "http://127.0.0.1:8080/-/reload",
        "http://127.9.9.9/",
        "http://[::1]:9000/",
        "http://localhost/",
        "http://LOCALHOST:80/",
        "https://[2001:db8::1]/",
    ],
)
def test_urls_that_pass(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost@203.0.113.9/", "a user or password"),
        ("https://user:pw@hooks.example.com/", "a user or password"),
        ("http://localhost.example.net/", "plain http"),
        ("http://localhost.example./", "plain http"),
        ("http://[::ffff:7f00:1]/", "plain http"),
        ("http://10.0.0.1/", "plain http"),
        ("https://", "URL with a host"),
        ("https:///path", "URL with a host"),
        ("https://host:/", "URL with a host"),
        ("https://[zz::1]/", "not a URL"),
        ("https://a_b..c:99999/", "port is outside"),
        ("https://h:0/", "port is outside"),
        ("https://h /", "whitespace"),
        ("http://127.0.0.1\\@evil/", "backslash"),
        ("ftp://h/", "not an http"),
        ("hooks.example.com/x", "not an http"),
        ("", "not a URL"),
        (42, "not a URL"),
    ],
)
def test_urls_that_are_refused_say_why_without_repeating_them(url: object, problem: str) -> None:
    said = url_problem(url)
    assert said is not None
    assert problem in said
    assert not isinstance(url, str) or len(url) < 10 or url not in said


def test_loopback_is_127_slash_8_ipv6_one_and_localhost_exactly() -> None:
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("127.255.0.1")
    assert is_loopback_host("[::1]")
    assert is_loopback_host("localhost")
    assert is_loopback_host("localhost.")  # the absolute name: no search domain is added to it
    assert not is_loopback_host("localhost.example.net")
    assert not is_loopback_host("128.0.0.1")
    assert not is_loopback_host("0.0.0.0")


# ------------------------------------------------------------------------------------------ trust (item 10)

ROOT, ME, OTHER = 0, 1000, 65534
FILE = stat.S_IFREG
DIR = stat.S_IFDIR


def entry(path: str, uid: int, mode: int) -> Entry:
    return Entry(path, uid, mode, stat.S_ISDIR(mode))


def test_a_root_owned_file_in_root_owned_folders_is_trusted() -> None:
    entries = [entry("/etc/bluum/rotator.toml", ROOT, FILE | 0o640), entry("/etc/bluum", ROOT, DIR | 0o755)]
    assert judge(entries, ROOT) == ([], [])
    assert judge(entries, ME) == ([], []), "root's files are trusted by every user"


def test_the_running_users_own_file_is_trusted() -> None:
    assert judge([entry("/home/me/rotator.toml", ME, FILE | 0o600), entry("/home/me", ME, DIR | 0o700)], ME) == ([], [])


@pytest.mark.parametrize(
    ("entries", "euid", "said", "fix"),
    [
        ([entry("/x/rotator.toml", OTHER, FILE | 0o600)], ROOT, "belongs to uid 65534", "chown root /x/rotator.toml"),
        ([entry("/x/rotator.toml", OTHER, FILE | 0o600)], ME, "belongs to uid 65534", "chown 1000 /x/rotator.toml"),
        ([entry("/x/rotator.toml", ROOT, FILE | 0o660)], ROOT, "can be written by its group", "chmod go-w"),
        ([entry("/x/rotator.toml", ROOT, FILE | 0o602)], ROOT, "can be written by everyone", "chmod go-w"),
        (
            [entry("/x", ROOT, DIR | 0o777)],
            ROOT,
            "the folder /x (drwxrwxrwx) can be written by everyone",
            "chmod go-w /x",
        ),
        ([entry("/x", ROOT, DIR | 0o775)], ROOT, "can be written by its group", "chmod go-w /x"),
        ([entry("/x", OTHER, DIR | 0o755)], ROOT, "the folder /x belongs to uid 65534", "chown root /x"),
    ],
)
def test_what_another_user_could_change_is_a_problem_with_its_fix(
    entries: list[Entry], euid: int, said: str, fix: str
) -> None:
    problems, fixes = judge(entries, euid)
    assert any(said in problem for problem in problems), problems
    assert any(fix in line for line in fixes), fixes


def test_a_users_private_group_may_write_but_not_everyone() -> None:
    """Debian and Ubuntu give each user a group of their own and a umask of 002: group-writable, still only theirs."""
    private = Entry("/home/me/rotator.toml", ME, FILE | 0o664, False, "me", private_group=True)
    assert judge([private], ME) == ([], [])
    shared = Entry("/home/me/rotator.toml", ME, FILE | 0o664, False, "me", private_group=False)
    assert judge([shared], ME)[0]
    everyone = Entry("/home/me/rotator.toml", ME, FILE | 0o666, False, "me", private_group=True)
    assert "can be written by everyone" in judge([everyone], ME)[0][0]


def test_a_group_with_another_user_in_it_is_not_private(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test hands the file to group 65534 (chown)")
    config = tmp_path / "rotator.toml"
    config.write_text("")
    os.chown(config, 0, 65534)
    config.chmod(0o664)  # group nogroup: user nobody (uid 65534) has it as its primary group
    with pytest.raises(ConfigUntrusted, match="can be written by its group"):
        check_config_trusted(config)


def test_a_read_only_mount_cannot_be_changed_whatever_its_modes_say() -> None:
    """A Kubernetes ConfigMap volume shows drwxrwxrwx folders, but it is mounted read-only."""
    configmap = Entry("/etc/bluum/..data", ROOT, DIR | 0o777, True, read_only=True)
    assert judge([configmap], ROOT) == ([], [])


def test_a_sticky_world_writable_folder_like_tmp_is_trusted() -> None:
    assert judge([entry("/tmp", ROOT, DIR | stat.S_ISVTX | 0o777)], ROOT) == ([], [])
    problems, _ = judge([entry("/tmp/rotator.toml", ROOT, FILE | stat.S_ISVTX | 0o666)], ROOT)
    assert problems, "the sticky bit protects a folder's entries, not a file's content"


def test_a_symlinked_configuration_is_judged_with_the_folders_of_the_link_and_of_its_target(tmp_path: Path) -> None:
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    (real / "rotator.toml").write_text("")
    (links / "rotator.toml").symlink_to(real / "rotator.toml")
    check_config_trusted(links / "rotator.toml", euid=0)
    links.chmod(0o777)  # whoever can write the link's folder can point the link elsewhere
    try:
        with pytest.raises(ConfigUntrusted) as refused:
            check_config_trusted(links / "rotator.toml", euid=0)
    finally:
        links.chmod(0o700)
    assert f"the folder {links} (drwxrwxrwx) can be written by everyone" in str(refused.value)
    assert f"chmod go-w {links}" in str(refused.value)


def test_a_file_that_cannot_be_examined_is_left_to_the_read(tmp_path: Path) -> None:
    check_config_trusted(tmp_path / "missing.toml", euid=0)  # the read that follows says "no such file"


# ------------------------------------------------------------------------------------------ the daemon's alert


def test_the_daemons_alert_names_the_kind_and_count_of_problems_never_a_line() -> None:
    from rotator.config.loader import ConfigProblems

    problems = ConfigProblems("/etc/bluum/rotator.toml", ["credentials.a.grace: is not a duration. Fix: ..."] * 2)
    text = config_alert("/etc/bluum/rotator.toml", problems)
    assert text.startswith("/etc/bluum/rotator.toml is invalid: 2 problem(s); see the daemon's log")
    assert "grace" not in text
    untrusted = ConfigUntrusted("x", problems=["the file ... belongs to uid 65534"], fixes=["chown root x"])
    assert "is refused: another user than its owner and root could change it (1 problem(s))" in config_alert(
        "/r.toml", untrusted
    )
    assert "could not be read again (ConfigError)" in config_alert("/r.toml", ConfigError("secret-ish text"))
    assert "secret-ish" not in config_alert("/r.toml", ConfigError("secret-ish text"))


# ------------------------------------------------------------------------------------------ history (item 17)


def test_a_damaged_line_costs_that_line_only_and_is_kept_through_a_prune(tmp_path: Path) -> None:
    history = HistoryLog(tmp_path, keep=timedelta(days=30))
    path = history.path("trading")
    path.write_bytes(b'{"at": 1, "message": "old"}\n\xff\xfe not text\n[1, 2]\n{"at": 9e18, "message": "new"}\n')
    found = history.read_checked("trading")
    assert [e["message"] for e in found.entries] == ["old", "new"]
    assert found.damaged == (2, 3)
    report = found.damage_report(path)
    assert report is not None
    assert "skipped 2 damaged line(s) (not a UTF-8 JSON entry): lines 2, 3" in report
    history._prune(path, now=10 * 86400 * 365)
    assert path.read_bytes() == b'\xff\xfe not text\n[1, 2]\n{"at": 9e18, "message": "new"}\n'


def test_a_read_only_mount_of_another_users_file_is_still_theirs_to_change() -> None:
    """A `:ro` bind mount of alice's folder: alice edits it where it is writable (the host), so her ownership counts."""
    mounted = Entry("/etc/bluum/rotator.toml", OTHER, FILE | 0o644, False, read_only=True)
    problems, fixes = judge([mounted], ROOT)
    assert len(problems) == 1, problems
    assert "where it is mounted writable" in problems[0], problems
    assert fixes == ["chown root /etc/bluum/rotator.toml"]
