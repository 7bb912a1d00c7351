"""The env store on real files: the Protocol contract, plus what only a dotenv file can get wrong.

Files are this store's real part, so every test works in `tmp_path`: lines other than ours must survive byte for
byte, writes must be atomic and 0600, a crash between the sidecar and the dotenv write must be repairable, refused
calls must leave every byte as it was, and the lock must hold against another process and die with it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from backends.base import SecretStore, load_store_factories
from backends.env.store import EnvStore
from backends.ledger import Lease, VersionedRecord, held_lease
from rotator.core.atomicfile import atomic_write_text
from rotator.core.errors import (
    ConfigError,
    StoreConflict,
    StoreCorrupt,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnavailable,
)
from rotator.core.model import DEFAULT_BASE_URLS, Environment, Stage, StoredKey
from rotator.core.secret import Secret
from tests.conftest import LeakGuard
from tests.store_contract import StoreContract, assert_holds, make_key, snapshot

SANDBOX_URL = DEFAULT_BASE_URLS[Environment.SANDBOX]
OURS = ("API_KEY", "API_SECRET", "KEY_ID", "ENVIRONMENT", "BASE_URL")


def dq(value: str) -> str:
    """Double-quote a value the way a person (or another tool) might, to seed files in a foreign style."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seed_text(key: StoredKey, prefix: str = "BLUUM_") -> str:
    lines = [
        "# written by hand\n",
        f"{prefix}API_KEY={key.api_key}\n",
        f"{prefix}API_SECRET={dq(key.api_secret.reveal())}\n",
    ]
    if key.key_id:
        lines.append(f"{prefix}KEY_ID={key.key_id}\n")
    if key.environment:
        lines.append(f"{prefix}ENVIRONMENT={key.environment.value}\n")
    if key.base_url:
        lines.append(f"{prefix}BASE_URL={key.base_url}\n")
    return "".join(lines)


def write(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_bytes(text.encode())
    path.chmod(mode)


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file in the folder with its bytes: equal snapshots prove that nothing was written or left behind."""
    return {item.name: item.read_bytes() for item in sorted(folder.iterdir()) if item.is_file()}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def env_path(tmp_path: Path) -> Path:
    return tmp_path / "app.env"


@pytest.fixture
def seeded(env_path: Path) -> EnvStore:
    """A store whose file holds key 0 (all five lines), as after a first deploy by hand."""
    write(env_path, seed_text(make_key(0)))
    return EnvStore("app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL)


class TestEnvStoreContract(StoreContract):
    """The shared Protocol suite, run on a real dotenv file and sidecar."""

    @pytest.fixture
    def store(self, seed_key: StoredKey, env_path: Path) -> SecretStore:
        write(env_path, seed_text(seed_key))
        return EnvStore("app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL)

    @pytest.fixture
    def twin(self, store: SecretStore, env_path: Path) -> SecretStore:
        return EnvStore("app-twin", path=env_path)

    @pytest.fixture
    def take_over(self) -> Callable[[SecretStore, Lease], None]:
        """An env lease loses its hold when its flock is lost (an NFS server restart, say) while the runner goes on:
        the descriptor stays open in the stale runner, so only the fencing number in the lock file can stop it."""

        def take_over(store: SecretStore, lease: Lease) -> None:
            assert isinstance(store, EnvStore)
            fcntl.flock(store._held[lease.fence], fcntl.LOCK_UN)

        return take_over


# ----------------------------------------------------------------------------------------------- the dotenv file

FOREIGN_TEXT = (
    "# app settings: keep me\n"
    'export DATABASE_URL="postgres://u:p@db/app"  # inline comment\n'
    "\n"
    "   \n"
    "export BLUUM_API_KEY=pk_hand_0001\n"
    "FEATURE_FLAGS='a,b'\n"
    'BLUUM_API_SECRET="hand secret #1 value"\n'
    'MULTI="line one\nline two"\n'
    "  # an indented comment\n"
    "EMPTY=\n"
    "BARE\n"
    "INTERPOLATED=${DATABASE_URL}\n"
    "BLUUM_OTHER_SETTING=not-ours\n"
    "LAST=no-newline-at-end"
)


def test_other_lines_are_kept_byte_for_byte(env_path: Path) -> None:
    write(env_path, FOREIGN_TEXT)
    store = EnvStore("app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    new = make_key(1, token="tok-1")
    store.put_pending(new)
    store.promote("tok-1")
    secret = new.api_secret.reveal().replace("\\", "\\\\").replace('"', '\\"')
    # Each line keeps its quoting style (bare stays bare, double stays double); no line is added unasked.
    expected = FOREIGN_TEXT.replace(
        "export BLUUM_API_KEY=pk_hand_0001\n", f"export BLUUM_API_KEY={new.api_key}\n"
    ).replace('BLUUM_API_SECRET="hand secret #1 value"\n', f'BLUUM_API_SECRET="{secret}"\n')
    assert env_path.read_bytes().decode() == expected
    assert dotenv_values(env_path)["BLUUM_API_SECRET"] == new.api_secret.reveal()


def test_fields_the_store_is_told_to_write_are_added(env_path: Path) -> None:
    write(env_path, FOREIGN_TEXT)
    store = EnvStore(
        "app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL, fields=["key_id", "environment"]
    )
    new = make_key(1, token="tok-1")
    store.put_pending(new)
    store.promote("tok-1")
    text = env_path.read_bytes().decode()
    assert text.endswith(f"\nBLUUM_KEY_ID='{new.key_id}'\nBLUUM_ENVIRONMENT='sandbox'\n")
    assert "BLUUM_BASE_URL" not in text


@pytest.mark.parametrize("fields", [["api_key"], ["token"], "key_id"])
def test_unknown_fields_are_a_config_error(env_path: Path, fields: Any) -> None:
    with pytest.raises(ConfigError, match="fields may name only key_id, environment, base_url"):
        EnvStore("app", path=env_path, fields=fields)


def test_restore_brings_back_the_hand_seeded_values_and_drops_the_key_id(env_path: Path) -> None:
    write(env_path, FOREIGN_TEXT)
    before = dotenv_values(env_path)
    store = EnvStore("app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    store.restore_previous("tok-1")
    after = dotenv_values(env_path)
    assert "BLUUM_KEY_ID" not in after  # the hand-seeded key has no id; a stale one would mislead
    assert after == before
    assert env_path.read_bytes().decode().startswith(FOREIGN_TEXT.split("export BLUUM_API_KEY")[0])


def test_crlf_file_stays_crlf(seeded: EnvStore, env_path: Path) -> None:
    write(env_path, "OTHER=1\r\nBLUUM_API_KEY=pk_a_000001\r\nBLUUM_API_SECRET=sk_a_000001\r\n")
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    text = env_path.read_bytes().decode()
    assert text.startswith("OTHER=1\r\nBLUUM_API_KEY=pk_contract_0001\r\n")
    assert "\n" not in text.replace("\r\n", "")


@pytest.mark.parametrize(
    "secret",
    [
        "a#b 'c' \"d\" =e $f $ {g} \\h \\'i \\\\ end ",
        "  leading and trailing spaces  ",
        "=starts-with-equals#and-hash",
        "'''\"\"\"###$$$",
        "multi\nline secret value",
    ],
)
def test_awkward_secrets_round_trip_through_python_dotenv(seeded: EnvStore, env_path: Path, secret: str) -> None:
    new = StoredKey("pk_awkward_01", Secret(secret), "apk_awkward", Environment.SANDBOX, SANDBOX_URL, "tok-1")
    seeded.put_pending(new)
    seeded.promote("tok-1")
    assert dotenv_values(env_path)["BLUUM_API_SECRET"] == secret
    assert dotenv_values(env_path, interpolate=False)["BLUUM_API_SECRET"] == secret
    assert_holds(seeded.read(Stage.CURRENT), new, token="tok-1")


def test_secret_with_dollar_brace_is_refused_before_anything_is_written(
    seeded: EnvStore, env_path: Path, tmp_path: Path
) -> None:
    before = files_in(tmp_path)
    bad = StoredKey("pk_dollar_01", Secret("abc${HOME}def-secret"), "apk_dollar", token="tok-1")
    with pytest.raises(StoreError, match=r"BLUUM_API_SECRET of apk_dollar cannot be written .*contains '\$\{'"):
        seeded.put_pending(bad)
    assert files_in(tmp_path) == before


def test_inline_comment_and_export_on_our_line(env_path: Path) -> None:
    write(env_path, "  export BLUUM_API_KEY=pk_old_00001   # rotated monthly\nBLUUM_API_SECRET=sk_old_00001\n")
    store = EnvStore("app", path=env_path)
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    assert env_path.read_bytes().decode().startswith("  export BLUUM_API_KEY=pk_contract_0001\n")


def test_custom_prefix(env_path: Path) -> None:
    write(env_path, seed_text(make_key(0), prefix="PAYMENTS_BLUUM_") + "BLUUM_API_KEY=someone-elses\n")
    store = EnvStore("payments", path=env_path, prefix="PAYMENTS_BLUUM_")
    assert_holds(store.read(Stage.CURRENT), make_key(0))
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    values = dotenv_values(env_path)
    assert values["PAYMENTS_BLUUM_API_KEY"] == "pk_contract_0001"
    assert values["BLUUM_API_KEY"] == "someone-elses"


# ----------------------------------------------------------------------------------------------- hand-seeded files


def test_hand_seeded_file_with_only_key_and_secret(env_path: Path, tmp_path: Path) -> None:
    write(env_path, "BLUUM_API_KEY=pk_hand_0001\nBLUUM_API_SECRET='hand-secret-0001'\n")
    store = EnvStore("app", path=env_path, environment=Environment.PRODUCTION, base_url="https://example.test/v1")
    current = store.read(Stage.CURRENT)
    assert current is not None
    assert current.api_key == "pk_hand_0001"
    assert current.api_secret == Secret("hand-secret-0001")
    assert (current.key_id, current.environment, current.base_url, current.token) == (
        None,
        Environment.PRODUCTION,
        "https://example.test/v1",
        None,
    )
    assert current.label.startswith("key#")
    assert store.read(Stage.PENDING) is None
    assert store.read(Stage.PREVIOUS) is None
    assert store.read_record() == VersionedRecord(None, 0)
    assert sorted(files_in(tmp_path)) == ["app.env"]  # reading never creates the sidecar


def test_hand_seeded_file_without_fallbacks(env_path: Path) -> None:
    write(env_path, "BLUUM_API_KEY=pk_hand_0001\nBLUUM_API_SECRET=hand-secret-0001\n")
    current = EnvStore("app", path=env_path).read(Stage.CURRENT)
    assert current is not None
    assert (current.key_id, current.environment, current.base_url) == (None, None, None)


def test_environment_line_wins_over_the_fallback_and_accepts_bluum_spelling(env_path: Path) -> None:
    write(env_path, "BLUUM_API_KEY=pk_hand_0001\nBLUUM_API_SECRET=hand-secret-0001\nBLUUM_ENVIRONMENT=TEST\n")
    current = EnvStore("app", path=env_path, environment=Environment.PRODUCTION).read(Stage.CURRENT)
    assert current is not None
    assert current.environment is Environment.SANDBOX


def test_hand_edit_after_promote_drops_the_token(seeded: EnvStore, env_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    write(env_path, seed_text(make_key(7)))
    current = seeded.read(Stage.CURRENT)
    assert_holds(current, make_key(7))
    assert current is not None
    assert current.token is None


# ----------------------------------------------------------------------------------------------- files and modes


def test_files_are_0600(seeded: EnvStore, env_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    with held_lease(seeded, "me", 30):
        pass
    for path in (env_path, seeded.sidecar_path, seeded.lock_path):
        assert mode_of(path) == 0o600, path


def test_the_dotenv_files_mode_is_kept_and_a_world_readable_one_is_warned_about(
    seeded: EnvStore, env_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Applications may read the file through its group: narrowing the mode would lock them out at their next
    restart. The rotator's own files (sidecar, lock) stay 0600 whatever they were."""
    env_path.chmod(0o644)
    seeded.lock_path.touch(mode=0o666)
    seeded.lock_path.chmod(0o666)
    seeded.put_pending(make_key(1, token="tok-1"))
    with caplog.at_level(logging.WARNING, logger="rotator.store.env"), held_lease(seeded, "me", 30):
        seeded.promote("tok-1")
    assert mode_of(env_path) == 0o644
    assert mode_of(seeded.lock_path) == 0o600
    assert mode_of(seeded.sidecar_path) == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.name == "rotator.store.env" and r.levelname == "WARNING"]
    assert any(str(env_path) in w and "readable by every user" in w and "chmod o-rwx" in w for w in warnings), warnings
    assert any(str(seeded.lock_path) in w and "0o666" in w for w in warnings), warnings


def test_a_group_readable_file_keeps_its_mode_owner_and_group(seeded: EnvStore, env_path: Path) -> None:
    os.chown(env_path, 0, 1)  # root:daemon (the tests run as root, as the rotator does on many hosts)
    env_path.chmod(0o640)
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    info = env_path.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 1)
    assert_holds(seeded.read(Stage.CURRENT), make_key(1), token="tok-1")


def test_a_symlinked_dotenv_file_is_written_through_the_link(tmp_path: Path) -> None:
    """release/.env -> ../shared/app.env: the shared file gets the new key, and the link stays a link."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "release").mkdir()
    target = tmp_path / "shared" / "app.env"
    write(target, seed_text(make_key(0)), mode=0o640)
    link = tmp_path / "release" / ".env"
    link.symlink_to("../shared/app.env")
    store = EnvStore("app", path=link, environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    assert link.is_symlink()
    assert os.readlink(link) == "../shared/app.env"
    assert dotenv_values(target)["BLUUM_API_KEY"] == make_key(1).api_key
    assert mode_of(target) == 0o640
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["app.env"], "no temporary file left behind"
    store.restore_previous("tok-1")
    assert dotenv_values(target)["BLUUM_API_KEY"] == make_key(0).api_key
    assert link.is_symlink()


def test_sidecar_format(seeded: EnvStore) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    with held_lease(seeded, "me", 30) as lease:
        seeded.write_record({"phase": "deployed"}, lease=lease, version=0)
    data = json.loads(seeded.sidecar_path.read_text())
    assert data["record_version"] == 1
    assert data["version"] == 1
    assert data["pending"] is None
    assert data["current"]["token"] == "tok-1"
    assert data["current"]["key_id"] == "apk_contract0001"
    assert data["current"]["environment"] == "sandbox"
    assert data["previous"]["api_key"] == "pk_contract_0000"
    assert data["previous"]["token"] is None
    assert data["record"] == {"phase": "deployed"}
    assert seeded.sidecar_path.name == "app.env.rotator.json"


def test_info_logs_name_keys_not_secrets(seeded: EnvStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rotator.store.env"):
        seeded.put_pending(make_key(1, token="tok-1"))
        seeded.promote("tok-1")
    messages = [r.getMessage() for r in caplog.records if r.name == "rotator.store.env" and r.levelname == "INFO"]
    assert any("apk_contract0001" in m and "PENDING" in m for m in messages), messages
    assert any("promoted apk_contract0001" in m and "apk_contract0000" in m for m in messages), messages


def test_describe_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "app.env", seed_text(make_key(0)))
    store = EnvStore("app", path="app.env")
    assert store.describe() == "env file app.env (prefix BLUUM_)"
    assert store.sidecar_path == Path("app.env.rotator.json")
    assert store.lock_path == Path("app.env.rotator.lock")
    store.put_pending(make_key(1, token="tok-1"))
    store.promote("tok-1")
    assert (tmp_path / "app.env.rotator.json").is_file()


def test_entry_point_builds_an_env_store(seeded: EnvStore, env_path: Path) -> None:
    store = load_store_factories()["env"]("app", path=env_path, environment=Environment.SANDBOX)
    assert isinstance(store, EnvStore)
    assert_holds(store.read(Stage.CURRENT), make_key(0))


@pytest.mark.parametrize("prefix", ["BAD-PREFIX", "1BLUUM_", "with space"])
def test_invalid_prefix_is_a_config_error(env_path: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        EnvStore("app", path=env_path, prefix=prefix)


def test_put_pending_needs_a_token(seeded: EnvStore) -> None:
    with pytest.raises(ValueError, match="token"):
        seeded.put_pending(make_key(1))


def test_record_must_be_json(seeded: EnvStore) -> None:
    with held_lease(seeded, "me", 30) as lease, pytest.raises(StoreError, match="JSON"):
        seeded.write_record({"when": object()}, lease=lease, version=0)
    assert seeded.read_record() == VersionedRecord(None, 0)


def test_put_pending_keeps_a_just_minted_key_even_without_the_dotenv_file(env_path: Path) -> None:
    """The secret is shown once: staging it must not depend on the dotenv file being readable."""
    store = EnvStore("app", path=env_path)
    new = make_key(1, token="tok-1")
    store.put_pending(new)
    assert_holds(store.read(Stage.PENDING), new, token="tok-1")


def test_a_first_key_is_promoted_into_a_new_0600_file(env_path: Path) -> None:
    """Enrollment: nothing was shown before, so promoting creates the file applications will read."""
    store = EnvStore("app", path=env_path, environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    with pytest.raises(StoreNotFound, match="rotator enroll"):
        store.read(Stage.CURRENT)
    new = make_key(1, token="tok-1")
    store.put_pending(new)
    promotion = store.promote("tok-1")
    assert promotion.previous is None
    assert_holds(store.read(Stage.CURRENT), new, token="tok-1")
    assert mode_of(env_path) == 0o600
    assert dotenv_values(env_path)["BLUUM_API_SECRET"] == new.api_secret.reveal()


def test_a_file_that_readers_saw_a_key_in_is_not_recreated_when_it_disappears(seeded: EnvStore, env_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    seeded.put_pending(make_key(2, token="tok-2"))
    env_path.unlink()
    with pytest.raises(StoreNotFound):
        seeded.promote("tok-2")
    assert not env_path.exists()


# ----------------------------------------------------------------------------------------------- crash safety


@pytest.fixture
def failing_replace(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Path], bool]], None]:
    """Make `os.replace` fail (as a crash or a full disk would) for the destinations the predicate picks."""

    def install(fails_for: Callable[[Path], bool]) -> None:
        real_replace = os.replace

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            folder = kwargs.get("dst_dir_fd")  # the dotenv file is renamed relative to its pinned folder
            where = Path(os.readlink(f"/proc/self/fd/{folder}")) / dst if folder is not None else Path(dst)
            if fails_for(where):
                raise OSError(errno.EIO, "simulated I/O error")
            real_replace(src, dst, **kwargs)

        monkeypatch.setattr(os, "replace", replace)

    return install


def test_failed_rename_leaves_every_file_untouched(
    seeded: EnvStore, tmp_path: Path, failing_replace: Callable[[Callable[[Path], bool]], None]
) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    before = files_in(tmp_path)
    failing_replace(lambda dst: True)
    with pytest.raises(StoreUnavailable, match="simulated I/O error"):
        seeded.promote("tok-1")
    assert files_in(tmp_path) == before  # byte-identical, and no temporary file left behind


def test_half_finished_promote_is_repaired_by_promoting_again(
    seeded: EnvStore,
    env_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_replace: Callable[[Callable[[Path], bool]], None],
) -> None:
    new = make_key(1, token="tok-1")
    seeded.put_pending(new)
    dotenv_before = env_path.read_bytes()
    failing_replace(lambda dst: dst == env_path)
    with pytest.raises(StoreUnavailable):
        seeded.promote("tok-1")
    monkeypatch.undo()
    # The sidecar moved on, the dotenv file did not: reading back shows the old key without the token.
    assert env_path.read_bytes() == dotenv_before
    # (the pin file: what the rotation under way found at app.env when it started, kept until it ends)
    assert sorted(files_in(tmp_path)) == ["app.env", "app.env.rotator.json", "app.env.rotator.pin.json"]
    current = seeded.read(Stage.CURRENT)
    assert_holds(current, make_key(0))
    assert current is not None
    assert current.token is None
    # A resumed rotation finds its new key by token: still PENDING as far as readers can tell.
    assert_holds(seeded.read(Stage.PENDING), new, token="tok-1")
    seeded.promote("tok-1")
    assert seeded.read(Stage.PENDING) is None
    assert_holds(seeded.read(Stage.CURRENT), new, token="tok-1")
    assert_holds(seeded.read(Stage.PREVIOUS), make_key(0))
    assert dotenv_values(env_path)["BLUUM_API_KEY"] == new.api_key


def test_half_finished_restore_is_repaired_by_restoring_again(
    seeded: EnvStore,
    env_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_replace: Callable[[Callable[[Path], bool]], None],
) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    failing_replace(lambda dst: dst == env_path)
    with pytest.raises(StoreUnavailable):
        seeded.restore_previous("tok-1")
    monkeypatch.undo()
    assert dotenv_values(env_path)["BLUUM_API_KEY"] == "pk_contract_0001"  # applications still see the new key
    seeded.restore_previous("tok-1")
    assert dotenv_values(env_path)["BLUUM_API_KEY"] == "pk_contract_0000"
    assert_holds(seeded.read(Stage.CURRENT), make_key(0))
    assert seeded.read(Stage.PREVIOUS) is None


def test_restore_without_previous_conflicts_and_changes_nothing(seeded: EnvStore, tmp_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    seeded.promote("tok-1")
    seeded.clear_previous("tok-1")
    before = files_in(tmp_path)
    with pytest.raises(StoreConflict, match="PREVIOUS is empty"):
        seeded.restore_previous("tok-1")
    assert files_in(tmp_path) == before


def test_refused_calls_write_nothing(seeded: EnvStore, tmp_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    before = files_in(tmp_path)
    with pytest.raises(StoreConflict):
        seeded.promote("tok-unknown")
    with pytest.raises(StoreConflict):
        seeded.put_pending(make_key(2, token="tok-1"))
    assert files_in(tmp_path) == before


# ----------------------------------------------------------------------------------------------- errors


HIDDEN = "hidden-secret-value-42"

CORRUPT_FILES = {
    "missing key": (f"BLUUM_API_SECRET={HIDDEN}\n", "BLUUM_API_KEY is missing"),
    "missing secret": ("BLUUM_API_KEY=pk_a_000001\nOTHER=1\n", "BLUUM_API_SECRET is missing"),
    "empty secret": ("BLUUM_API_KEY=pk_a_000001\nBLUUM_API_SECRET=\n", "line 2: BLUUM_API_SECRET has an empty value"),
    "empty quoted key": (f"BLUUM_API_KEY=''\nBLUUM_API_SECRET={HIDDEN}\n", "line 1: BLUUM_API_KEY has an empty"),
    "no equals sign": (f"BLUUM_API_KEY\nBLUUM_API_SECRET={HIDDEN}\n", "line 1: BLUUM_API_KEY has an empty"),
    "unknown environment": (
        f"BLUUM_API_KEY=pk_a_000001\nBLUUM_API_SECRET={HIDDEN}\n\n# env\nBLUUM_ENVIRONMENT=staging\n",
        "line 5: BLUUM_ENVIRONMENT must be sandbox or production",
    ),
    "duplicate": (
        f"BLUUM_API_KEY=pk_a_000001\nBLUUM_API_SECRET={HIDDEN}\nexport BLUUM_API_SECRET={HIDDEN}x\n",
        "BLUUM_API_SECRET is defined 2 times (lines 2, 3)",
    ),
    "interpolated": (
        "BLUUM_API_KEY=pk_a_000001\nBLUUM_API_SECRET=${SOMETHING_ELSE}\n",
        "line 2: BLUUM_API_SECRET uses ${...} interpolation",
    ),
    "unclosed quote": (
        f"BLUUM_API_KEY=pk_a_000001\nBLUUM_API_SECRET='{HIDDEN}\n",
        "line 2: BLUUM_API_SECRET cannot be parsed",
    ),
}


@pytest.mark.parametrize(("text", "expected"), CORRUPT_FILES.values(), ids=CORRUPT_FILES.keys())
def test_corrupt_dotenv_is_named_precisely_and_left_alone(
    env_path: Path, tmp_path: Path, leak_guard: LeakGuard, text: str, expected: str
) -> None:
    leak_guard.watch(HIDDEN, HIDDEN + "x")
    store = EnvStore("app", path=env_path, environment=Environment.SANDBOX)
    store.put_pending(make_key(1, token="tok-1"))
    write(env_path, text)
    before = files_in(tmp_path)
    for call in (lambda: store.read(Stage.CURRENT), lambda: store.promote("tok-1")):
        with pytest.raises(StoreCorrupt) as caught:
            call()
        message = str(caught.value)
        assert expected in message
        assert str(env_path) in message
        assert HIDDEN not in message
    assert files_in(tmp_path) == before


def test_missing_dotenv_file(env_path: Path, tmp_path: Path) -> None:
    store = EnvStore("app", path=env_path)
    with pytest.raises(StoreNotFound) as caught:
        store.read(Stage.CURRENT)
    assert f"{env_path} does not exist: create it with BLUUM_API_KEY and BLUUM_API_SECRET lines" in str(caught.value)
    assert "rotator.toml" in str(caught.value)
    with pytest.raises(StoreConflict):
        store.promote("tok-1")  # nothing staged under that token: nothing to create the file with
    assert files_in(tmp_path) == {}


def test_missing_folder(tmp_path: Path) -> None:
    store = EnvStore("app", path=tmp_path / "nowhere" / "app.env")
    with pytest.raises(StoreNotFound, match="does not exist"):
        store.put_pending(make_key(1, token="tok-1"))
    with pytest.raises(StoreNotFound, match="does not exist"):
        store.acquire("me", 30)
    assert not (tmp_path / "nowhere").exists()


VALID_KEY = {"api_key": "pk_x_000001", "api_secret": HIDDEN, "token": "tok-9"}

CORRUPT_SIDECARS: dict[str, tuple[str, str]] = {
    "not json": ('{"version": 1, "current": ', "(whole file)` is not JSON"),
    "not an object": ("[1, 2]", "(whole file)` must be a JSON object"),
    "no version": ("{}", "field `version` must be 1"),
    "newer version": ('{"version": 2}', "field `version` is 2, written by a newer rotator"),
    "pending without token": (
        json.dumps({"version": 1, "pending": {**VALID_KEY, "token": None}}),
        "field `pending.token` must be a non-empty string",
    ),
    "secret not a string": (
        json.dumps({"version": 1, "current": {**VALID_KEY, "api_secret": 42}}),
        "field `current.api_secret` must be a non-empty string",
    ),
    "bad environment": (
        json.dumps({"version": 1, "previous": {**VALID_KEY, "environment": "staging"}}),
        "field `previous.environment` must be sandbox, production or null",
    ),
    "stage not an object": (json.dumps({"version": 1, "current": "x"}), "field `current` must be an object"),
    "record not an object": (json.dumps({"version": 1, "record": [1]}), "field `record` must be an object or null"),
}


@pytest.mark.parametrize(("text", "expected"), CORRUPT_SIDECARS.values(), ids=CORRUPT_SIDECARS.keys())
def test_corrupt_sidecar_is_named_precisely_and_left_alone(
    seeded: EnvStore, tmp_path: Path, leak_guard: LeakGuard, text: str, expected: str
) -> None:
    leak_guard.watch(HIDDEN)
    write(seeded.sidecar_path, text)
    before = files_in(tmp_path)
    calls: list[Callable[[], object]] = [
        lambda: seeded.read(Stage.CURRENT),
        lambda: seeded.read(Stage.PREVIOUS),
        lambda: seeded.read_record(),
        lambda: seeded.put_pending(make_key(1, token="tok-1")),
        lambda: seeded.promote("tok-1"),
        lambda: seeded.restore_previous("tok-1"),
        lambda: seeded.clear_previous("tok-1"),
        lambda: write_under_a_lease(seeded, {"phase": "x"}),
    ]
    for call in calls:
        with pytest.raises(StoreCorrupt) as caught:
            call()
        message = str(caught.value)
        assert expected in message
        assert str(seeded.sidecar_path) in message
        assert "rotator sweep" in message or "upgrade" in message
        assert HIDDEN not in message
    after = files_in(tmp_path)
    after.pop(seeded.lock_path.name)  # taking a lease is not a change to the credential
    assert after == before


def test_not_utf8(env_path: Path, tmp_path: Path) -> None:
    env_path.write_bytes(b"BLUUM_API_KEY=pk\xff\nBLUUM_API_SECRET=x\n")
    with pytest.raises(StoreCorrupt, match="not UTF-8 text"):
        EnvStore("app", path=env_path).read(Stage.CURRENT)


@contextmanager
def denied_access(path: Path) -> Iterator[None]:
    """Make `path` unreadable for this process for real: chmod 000, or as root, drop to `nobody` for a moment."""
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_permission_denied(seeded: EnvStore, env_path: Path, tmp_path: Path) -> None:
    seeded.put_pending(make_key(1, token="tok-1"))
    before = files_in(tmp_path)
    calls: list[Callable[[], object]] = [
        lambda: seeded.read(Stage.CURRENT),
        lambda: seeded.promote("tok-1"),
        lambda: seeded.acquire("me", 30),
    ]
    for call in calls:
        with denied_access(env_path), pytest.raises(StoreDenied) as caught:
            call()
        assert "permission denied" in str(caught.value)
    assert files_in(tmp_path) == before


# ----------------------------------------------------------------------------------------------- the lock


def test_lock_file_says_who_holds_it_and_keeps_the_fence(seeded: EnvStore) -> None:
    with held_lease(seeded, "rotate app", 45) as lease:
        holder = json.loads(seeded.lock_path.read_text())
        assert holder["owner"] == "rotate app"
        assert holder["pid"] == os.getpid()
        assert holder["ttl_seconds"] == 45
        assert holder["fence"] == lease.fence
    assert json.loads(seeded.lock_path.read_text()) == {"fence": lease.fence}
    with held_lease(seeded, "next", 45) as later:
        assert later.fence == lease.fence + 1


# ----------------------------------------------------------------------------------------------- atomic_write_text


def test_atomic_write_creates_0600_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        result = atomic_write_text(tmp_path / "f.txt", "a\r\nb")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").read_bytes() == b"a\r\nb"
    assert mode_of(tmp_path / "f.txt") == 0o600
    assert result.previous_mode is None
    assert not result.mode_tightened


def test_atomic_write_reports_a_tightened_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write(target, "old", mode=0o640)
    result = atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert mode_of(target) == 0o600
    assert result.previous_mode == 0o640
    assert result.mode_tightened
    assert result.owner_kept


def test_atomic_write_cleans_up_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    write(target, "old")

    def no_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="no space"):
        atomic_write_text(target, "new")
    assert files_in(tmp_path) == {"f.txt": b"old"}


def test_snapshot_helper_sees_the_record(seeded: EnvStore) -> None:
    """Guards the contract suite itself: a change that only touches the record must change the snapshot."""
    before = snapshot(seeded)
    write_under_a_lease(seeded, {"phase": "x"})
    assert snapshot(seeded) != before


def write_under_a_lease(store: EnvStore, record: dict[str, Any]) -> None:
    with held_lease(store, "test", 30) as lease:
        store.write_record(record, lease=lease, version=store.read_record().version)
