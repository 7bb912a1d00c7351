"""The env store's target rules (backends.env.target): the pure decisions, and the pin as the store keeps it across
its own writes (a rename gives the file a new inode that the pin must accept, a swap it must not)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backends.env.store import EnvStore
from backends.env.target import DotenvTarget, FileId, Observed, Pin, temp_name_pattern, unsafe_folder
from rotator.core.errors import TargetChanged, UnsafeTarget
from rotator.core.model import Stage
from tests.store_contract import assert_holds, make_key

NOBODY = 65534


def seed(path: Path) -> None:
    key = make_key(0)
    path.write_text(
        f"OTHER=1\nBLUUM_API_KEY={key.api_key}\nBLUUM_API_SECRET={key.api_secret.reveal()}\nBLUUM_KEY_ID={key.key_id}\n"
    )
    path.chmod(0o600)


@pytest.mark.parametrize(
    ("mode", "protected_owner", "unsafe"),
    [
        (0o755, None, False),
        (0o700, 0, False),
        (0o775, 0, True),
        (0o757, 0, True),
        (0o1777, 0, False),  # sticky: others cannot rename or remove a file of ours
        (0o1777, NOBODY, True),  # sticky, but the file is another user's: its owner may swap it
        (0o1777, None, True),  # sticky and no file yet: anyone may plant one
    ],
)
def test_unsafe_folder(mode: int, protected_owner: int | None, unsafe: bool) -> None:
    problem = unsafe_folder("/srv/app", stat.S_IFDIR | mode, 0, protected_owner, euid=0)
    assert (problem is not None) is unsafe
    if problem:
        assert "chmod go-w /srv/app" in problem


def observed(**changes: object) -> Observed:
    base: dict[str, object] = {
        "path": "/srv/app/.env",
        "link": "releases/1/.env",
        "resolved": "/srv/app/releases/1/.env",
        "folder": (1, 10),
        "folder_mode": stat.S_IFDIR | 0o755,
        "folder_uid": NOBODY,
        "link_folder": None,
        "file": FileId(dev=1, ino=100, uid=0),
    }
    base.update(changes)
    return Observed(**base)  # type: ignore[arg-type]


PIN = Pin(
    token="rot-1",
    path="/srv/app/.env",
    link="releases/1/.env",
    resolved="/srv/app/releases/1/.env",
    folder=(1, 10),
    file=(1, 0),
    inodes=(100, 101),
)


@pytest.mark.parametrize(
    ("now", "trusted", "expected"),
    [
        (observed(), False, []),
        (observed(file=FileId(dev=1, ino=101, uid=0)), False, []),  # the inode our own rename gave it
        (observed(link="/srv/tenant.env", resolved="/srv/tenant.env"), True, ["symlink to '/srv/tenant.env'"]),
        (observed(folder=(1, 11)), True, ["the folder was replaced"]),
        (observed(file=FileId(dev=1, ino=555, uid=0)), False, ["another file was put in its place"]),
        (observed(file=FileId(dev=1, ino=555, uid=0)), True, []),  # an editor's save in a folder only we write
        (observed(file=FileId(dev=1, ino=100, uid=NOBODY)), True, ["owned by uid 65534"]),
        (observed(file=None), False, []),  # removed: the store's own rule (do not recreate) applies
    ],
)
def test_changes(now: Observed, trusted: bool, expected: list[str]) -> None:
    found = DotenvTarget.changes(PIN, now, trusted_folder=trusted)
    assert len(found) >= len(expected)
    for part in expected:
        assert any(part in change for change in found), found
    if not expected:
        assert found == []


def test_temp_name_pattern() -> None:
    pattern = temp_name_pattern("app.env")
    assert pattern.fullmatch(".app.env.k3j9x0_q.tmp")
    assert not pattern.fullmatch(".app.env.k3j9x0_q.tmp.bak")
    assert not pattern.fullmatch(".appXenv.k3j9x0_q.tmp")
    assert not pattern.fullmatch(".app.env.short.tmp")


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A folder another user owns (the application's), reachable by path."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    folder = tmp_path / "app"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    return folder


def test_a_rollback_after_a_promote_writes_through_the_pin_the_promote_updated(foreign: Path, tmp_path: Path) -> None:
    path = foreign / "app.env"
    seed(path)
    store = EnvStore("app", path=path, state_dir=tmp_path / "state")
    store.put_pending(make_key(1, token="rot-1"))
    store.promote("rot-1")  # a rename: a new inode in a folder another user owns
    assert_holds(store.read(Stage.CURRENT), make_key(1), token="rot-1")
    store.restore_previous("rot-1")  # the pin accepts the inode its own rename made
    current = store.read(Stage.CURRENT)
    assert current is not None
    assert (current.api_key, current.key_id) == (make_key(0).api_key, make_key(0).key_id)
    assert not store._target.pin_path.exists(), "the pin ends with the rotation"


def test_a_file_put_in_place_by_the_folders_owner_is_not_written(foreign: Path, tmp_path: Path) -> None:
    path, planted = foreign / "app.env", foreign / "planted.env"
    seed(path)
    store = EnvStore("app", path=path, state_dir=tmp_path / "state")
    store.put_pending(make_key(1, token="rot-1"))
    seed(planted)  # same owner (root) and same content: only its inode tells it apart
    os.replace(planted, path)
    before = path.read_bytes()
    with pytest.raises(TargetChanged, match="another file was put in its place"):
        store.promote("rot-1")
    assert path.read_bytes() == before
    assert store.read(Stage.PENDING) is not None, "the new key stays staged for resume or rollback"
    store.restore_previous("rot-1")  # nothing to write: the rollback finishes
    assert store.read(Stage.PENDING) is None


def test_in_place_keeps_the_inode_and_every_name(tmp_path: Path) -> None:
    path, other = tmp_path / "app.env", tmp_path / "other.env"
    seed(path)
    os.link(path, other)
    with pytest.raises(UnsafeTarget, match="2 names"):
        EnvStore("app", path=path).check_writable()
    store = EnvStore("app", path=path, write_mode="in_place")
    store.check_writable()
    inode = path.stat().st_ino
    store.put_pending(make_key(1, token="rot-1"))
    store.promote("rot-1")
    assert path.stat().st_ino == inode
    assert other.read_bytes() == path.read_bytes()
    assert other.read_text().startswith("OTHER=1\n")
    assert_holds(store.read(Stage.CURRENT), make_key(1), token="rot-1")
