"""The pure decisions of rotator/core/state_files.py: which state folders and own files the rotator trusts, judged from
what lstat would show (no disk, no second user: the e2e tests in tests/e2e/test_trust_state.py do those for real)."""

from __future__ import annotations

import stat

import pytest

from rotator.core.state_files import Seen, file_refusal, folder_refusal

SVC, OTHER, ROOT = 998, 1001, 0
NAMES = {ROOT: "root", SVC: "svc", OTHER: "alice"}
SETTING = "state_dir of [stores.app]"


def user(uid: int) -> str:
    return NAMES.get(uid, str(uid))


def folder(path: str, uid: int = ROOT, bits: int = 0o755) -> Seen:
    return Seen(path, uid, stat.S_IFDIR | bits)


def regular(path: str, uid: int = SVC, bits: int = 0o600) -> Seen:
    return Seen(path, uid, stat.S_IFREG | bits)


def link(path: str, uid: int = ROOT) -> Seen:
    return Seen(path, uid, stat.S_IFLNK | 0o777)


def refusal(chain: list[Seen], *, euid: int = SVC, exists: bool = True) -> str | None:
    return folder_refusal(chain, "/srv/state", exists=exists, euid=euid, user=user, setting=SETTING)


PARENTS = [folder("/"), folder("/srv")]


def test_a_folder_of_the_running_user_under_roots_folders_is_trusted() -> None:
    assert refusal([*PARENTS, folder("/srv/state", SVC, 0o700)]) is None


def test_root_may_use_its_own_folder_and_a_missing_one_under_roots() -> None:
    assert refusal([*PARENTS, folder("/srv/state", ROOT, 0o700)], euid=ROOT) is None
    assert refusal(PARENTS, euid=ROOT, exists=False) is None


def test_a_plain_file_as_state_folder_is_named_with_the_fix() -> None:
    said = refusal([*PARENTS, regular("/srv/state", SVC)])
    assert said is not None
    assert "/srv/state is a file, not a folder" in said
    assert SETTING in said


def test_a_file_above_the_state_folder_is_named() -> None:
    said = refusal([folder("/"), regular("/srv", ROOT)], exists=False)
    assert said is not None
    assert "/srv (in the path of /srv/state) is a file" in said


@pytest.mark.parametrize(
    ("chain", "euid", "expected"),
    [
        ([*PARENTS, folder("/srv/state", OTHER, 0o700)], SVC, "belongs to alice"),
        ([*PARENTS, folder("/srv/state", SVC, 0o700)], ROOT, "sudo -u svc rotator"),
        ([folder("/"), folder("/srv", OTHER), folder("/srv/state", SVC, 0o700)], SVC, "/srv (above /srv/state)"),
        ([*PARENTS, folder("/srv/state", SVC, 0o770)], SVC, "can be written by its group"),
        ([*PARENTS, folder("/srv/state", SVC, 0o1777)], SVC, "can be written by every user"),
        ([folder("/"), folder("/srv", ROOT, 0o777), folder("/srv/state", SVC, 0o700)], SVC, "chmod go-w /srv"),
        ([*PARENTS, link("/srv/state", OTHER), folder("/data/state", SVC, 0o700)], SVC, "belongs to alice"),
    ],
    ids=[
        "folder-of-another-user",
        "root-in-the-service-users-folder",
        "parent-of-another-user",
        "group-writable",
        "world-writable-even-sticky",
        "parent-world-writable",
        "link-of-another-user",
    ],
)
def test_folders_another_user_could_swap_are_refused(chain: list[Seen], euid: int, expected: str) -> None:
    said = refusal(chain, euid=euid)
    assert said is not None
    assert expected in said


def test_a_sticky_parent_every_user_may_write_is_fine() -> None:
    tmp = [folder("/"), folder("/tmp", ROOT, 0o1777)]
    assert (
        folder_refusal(
            [*tmp, folder("/tmp/s", SVC, 0o700)], "/tmp/s", exists=True, euid=SVC, user=user, setting=SETTING
        )
        is None
    )
    assert folder_refusal(tmp, "/tmp/s", exists=False, euid=SVC, user=user, setting=SETTING) is None


def test_roots_folder_the_service_user_cannot_write_names_owner_and_chown() -> None:
    said = refusal([*PARENTS, folder("/srv/state", ROOT, 0o700)])
    assert said is not None
    assert "belongs to root" in said
    assert "sudo chown -R svc /srv/state" in said


def test_a_missing_folder_the_service_user_cannot_create_says_how_to_make_it() -> None:
    said = refusal(PARENTS, exists=False)
    assert said is not None
    assert "sudo install -d -o svc -m 700 /srv/state" in said


def test_an_own_file_must_be_a_regular_file_of_the_running_user() -> None:
    assert file_refusal(regular("/s/app.json", SVC), euid=SVC, user=user) is None
    for seen, euid, expected in [
        (regular("/s/app.json", ROOT), SVC, "sudo chown svc /s/app.json"),
        (regular("/s/app.json", SVC), ROOT, "chown root /s/app.json"),
        (regular("/s/app.json", OTHER), SVC, "belongs to alice"),
        (link("/s/app.json", SVC), SVC, "is a symbolic link"),
        (folder("/s/app.json", SVC), SVC, "not a regular file"),
    ]:
        said = file_refusal(seen, euid=euid, user=user)
        assert said is not None
        assert expected in said
