"""Third-party store types load through the `rotator.backends` entry-point group, for real.

Mocking `entry_points()` would only prove that our loop reads a list. Here each test installs a fake distribution
the way pip would leave it (a `*.dist-info` folder with METADATA and entry_points.txt) in `tmp_path` and puts that
folder on `sys.path`, where `importlib.metadata` discovers it, so discovery, lazy loading and the Protocol check
all run exactly as they would for a store published on PyPI.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.base import ENTRY_POINT_GROUP, SecretStore, load_store_factories
from backends.env.store import EnvStore
from backends.ledger import Ledger, held_lease
from backends.memory import MemoryStore
from rotator.core.errors import ConfigError
from rotator.core.model import DEFAULT_BASE_URLS, Environment, Stage
from tests.store_contract import assert_holds, make_key

SANDBOX_URL = DEFAULT_BASE_URLS[Environment.SANDBOX]

FAKE_ENTRY_POINTS = f"""\
[{ENTRY_POINT_GROUP}]
memory = backends.memory:MemoryStore
env = backends.memory:MemoryStore
"""

BROKEN_MODULE = "rotator_fakeplugin_broken"
BROKEN_SOURCE = '''\
"""Plug-in classes that look like stores but break the SecretStore protocol."""

from backends.memory import MemoryStore


class NotAStore:
    """Builds fine, has a name and describe(), but none of the stage calls."""

    def __init__(self, name, **options):
        self.name = name

    def describe(self):
        return "nowhere"


class NoRestore(MemoryStore):
    """Everything but the rollback: the most tempting thing to leave out."""

    restore_previous = None
'''


def install_fake_distribution(folder: Path, entry_points: str, name: str = "fakeplugin") -> None:
    """Leave `folder` as pip leaves site-packages for a distribution that only declares entry points."""
    dist_info = folder / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def plugin_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake plug-in installed in a folder at the front of `sys.path` (as a user site or a PYTHONPATH entry is)."""
    install_fake_distribution(tmp_path, FAKE_ENTRY_POINTS)
    monkeypatch.syspath_prepend(tmp_path)  # also invalidates importlib's caches
    return tmp_path


@pytest.fixture
def plugin_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same plug-in installed in a folder at the end of `sys.path`, after bluum-rotator's own site-packages."""
    install_fake_distribution(tmp_path, FAKE_ENTRY_POINTS)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    importlib.invalidate_caches()
    return tmp_path


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plug-in distribution whose classes do not implement the Protocol, with its module next to its dist-info."""
    (tmp_path / f"{BROKEN_MODULE}.py").write_text(BROKEN_SOURCE)
    install_fake_distribution(
        tmp_path,
        f"[{ENTRY_POINT_GROUP}]\nnot-a-store = {BROKEN_MODULE}:NotAStore\nno-restore = {BROKEN_MODULE}:NoRestore\n",
        name="brokenplugin",
    )
    monkeypatch.syspath_prepend(tmp_path)
    yield tmp_path
    sys.modules.pop(BROKEN_MODULE, None)


def test_without_the_plugin_there_is_no_memory_type() -> None:
    """The baseline the other tests change: `memory` is not built in, so finding it proves discovery works."""
    assert "memory" not in load_store_factories()
    assert "env" in load_store_factories()


@pytest.mark.usefixtures("plugin_first")
def test_a_plugin_store_type_is_discovered_and_builds_a_working_store() -> None:
    factories = load_store_factories()
    assert "memory" in factories
    # Built the way the engine builds every store: name positional, the credential's fallbacks as keywords.
    store = factories["memory"]("plugged", environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    assert isinstance(store, MemoryStore)
    assert isinstance(store, SecretStore)
    assert store.name == "plugged"
    new = make_key(1, token="tok-1")
    store.put_pending(new)
    store.promote("tok-1")
    assert_holds(store.read(Stage.CURRENT), new, token="tok-1")
    assert isinstance(store, Ledger)
    with held_lease(store, "plugin-test", 30) as lease:
        store.write_record({"phase": "deployed"}, lease=lease, version=0)
    assert store.read_record().record == {"phase": "deployed"}


def build_env(env_path: Path) -> object:
    """Build store type `env` with the env store's own options: what a rotator.toml with `type = "env"` does."""
    env_path.write_text("BLUUM_API_KEY=pk_plugin_0001\nBLUUM_API_SECRET=sk-plugin-0001-value\n")
    try:
        return load_store_factories()["env"]("app", path=env_path, environment=Environment.SANDBOX)
    except TypeError as exc:  # the plug-in's class got the env store's options
        return exc


def test_built_in_env_wins_over_a_plugin_listed_first(plugin_first: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="rotator.store")
    built = build_env(plugin_first / "app.env")
    assert "ignoring store plug-in 'env'" in caplog.text
    assert isinstance(built, EnvStore), f"type 'env' resolved to the plug-in: {built!r}"


def test_built_in_env_wins_over_a_plugin_listed_last(plugin_last: Path) -> None:
    """Built-ins win wherever the plug-in sits on sys.path (see the test above)."""
    assert "memory" in load_store_factories()
    built = build_env(plugin_last / "app.env")
    assert isinstance(built, EnvStore), f"type 'env' resolved to the plug-in: {built!r}"


@pytest.mark.parametrize("type_name", ["not-a-store", "no-restore"])
def test_a_plugin_class_that_breaks_the_protocol_is_a_config_error(broken_plugin: Path, type_name: str) -> None:
    factories = load_store_factories()
    assert type_name in factories
    assert BROKEN_MODULE not in sys.modules, "plug-ins are loaded lazily: listing types imports nothing"
    with pytest.raises(ConfigError, match="does not implement the SecretStore protocol") as caught:
        factories[type_name]("app", environment=Environment.SANDBOX, base_url=SANDBOX_URL)
    assert BROKEN_MODULE in str(caught.value)  # names the offending class so a person knows which plug-in to fix
