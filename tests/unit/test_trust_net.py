"""Issue 16, items 4 and 9: the pure decisions behind them (no I/O): which shared-folder files may be written, and
which addresses a Vault token may travel to. The real files, users and servers are in tests/e2e/test_trust_net.py."""

from __future__ import annotations

import os
import stat

import pytest

from rotator.core.shared_files import file_problem, folder_problem
from rotator.core.urls import is_loopback_host, url_problem

ME, OTHER, GROUP, OTHER_GROUP = 1000, 2000, 3000, 4000


def st(mode: int, uid: int = ME, gid: int = GROUP, nlink: int = 1) -> os.stat_result:
    return os.stat_result((mode, 1, 1, nlink, uid, gid, 0, 0, 0, 0))


FOLDER = st(stat.S_IFDIR | 0o2770, uid=ME, gid=GROUP)


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (stat.S_IFDIR | 0o2770, None),
        (stat.S_IFDIR | 0o755, None),
        (stat.S_IFDIR | 0o1777, None),
        (stat.S_IFDIR | 0o777, "every user of this host may write in it"),
        (stat.S_IFDIR | 0o2773, "every user of this host may write in it"),
        (stat.S_IFREG | 0o700, "not a folder"),
    ],
)
def test_which_folders_may_hold_shared_files(mode: int, problem: str | None) -> None:
    found = folder_problem(st(mode))
    assert found is None if problem is None else problem in str(found)


@pytest.mark.parametrize(
    ("found", "folder", "problem"),
    [
        (st(stat.S_IFREG | 0o660), FOLDER, None),
        (st(stat.S_IFREG | 0o660, uid=0, gid=0), FOLDER, None),  # root's (an operator's emergency)
        (st(stat.S_IFREG | 0o660, uid=OTHER, gid=GROUP), FOLDER, None),  # a member of the folder's group
        (st(stat.S_IFREG | 0o600, uid=OTHER, gid=OTHER_GROUP), FOLDER, "belongs to user 2000"),
        (st(stat.S_IFREG | 0o660, uid=OTHER, gid=GROUP), st(stat.S_IFDIR | 0o1777, uid=0, gid=GROUP), "belongs to"),
        (st(stat.S_IFREG | 0o600, nlink=2), FOLDER, "has 2 names"),
        (st(stat.S_IFIFO | 0o660), FOLDER, "not a regular file"),
        (st(stat.S_IFLNK | 0o777), FOLDER, "not a regular file"),
    ],
)
def test_which_files_in_a_shared_folder_may_be_written(
    found: os.stat_result, folder: os.stat_result, problem: str | None
) -> None:
    said = file_problem(found, folder, euid=ME)
    assert said is None if problem is None else problem in str(said)


@pytest.mark.parametrize(
    ("url", "allowed", "problem"),
    [
        ("https://vault.example.com:8200", False, None),
        ("http://127.0.0.1:8200", False, None),
        ("http://127.8.9.10:8200", False, None),
        ("http://localhost:8200", False, None),
        ("http://LOCALHOST.:8200", False, None),
        ("http://[::1]:8200", False, None),
        ("http://10.0.0.5:8200", False, "plain http to 10.0.0.5:8200"),
        ("http://vault.example.com", False, "plain http to vault.example.com"),
        ("http://localhost.example.net:8200", False, "plain http"),
        ("http://localhost@vault.example.com/", False, "a user or password"),
        ("http://10.0.0.5:8200", True, None),
        ("https://", True, "not an http:// or https:// URL with a host"),
        ("ftp://10.0.0.5", True, "not an http:// or https:// URL"),
        ("http://127.0.0.1:99999", False, "not a URL"),
    ],
)
def test_where_a_vault_token_may_travel(url: str, allowed: bool, problem: str | None) -> None:
    found = url_problem(url, allow_plain_http=allowed)
    assert found is None if problem is None else problem in str(found)


def test_loopback_is_an_address_not_a_prefix() -> None:
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("[::1]")
    assert not is_loopback_host("localhost.example.net")
    assert not is_loopback_host("0.0.0.0")
