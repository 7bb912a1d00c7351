"""Which stores `Runtime.holdings` reads again: the rotating credential's own always, the others only when their
fingerprint moved (a dotenv file) or their last reading is older than HOLDINGS_TTL (a store without one).

A fleet of N credentials reads every store before each revoke (no key some application holds may be revoked): N
reads per rotation, N² per fleet, unless unchanged stores are not read again. These tests prove what is read again,
and that a hand edit of another credential's file is seen at once."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from backends.env.store import EnvStore
from backends.memory import MemoryStore
from rotator.config.loader import parse_config
from rotator.core.model import Environment, Stage, StoredKey
from rotator.core.secret import Secret
from rotator.rotation.runtime import HOLDINGS_TTL, Runtime

CONFIG = """
[stores.a]
type = "env"
path = "a.env"

[stores.b]
type = "env"
path = "b.env"

[stores.m]
type = "memory"
note = "a store with no fingerprint"

[credentials.a]
environment = "sandbox"
issuer = "manual"
store = "a"

[credentials.b]
environment = "sandbox"
issuer = "manual"
store = "b"

[credentials.m]
environment = "sandbox"
issuer = "manual"
store = "m"
"""


def key(n: int) -> StoredKey:
    return StoredKey(f"pk_test_holdings_{n:04d}", Secret(f"sk_test_holdings_secret_{n:04d}"), key_id=f"apk_{n:04d}")


def write_dotenv(path: Path, stored: StoredKey, *, settled: bool = True) -> None:
    """`settled`: dated a minute back, as a file nobody touched lately is (a file modified in the last two seconds
    is read again whatever its fingerprint: `backends.env.store.RACY_SECONDS`)."""
    path.write_text(f"BLUUM_API_KEY={stored.api_key}\nBLUUM_API_SECRET={stored.api_secret.reveal()}\n")
    if settled:
        past = time.time() - 60
        os.utime(path, (past, past))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counted(store: Any, reads: Counter[str]) -> None:
    original = store.read

    def read(stage: Stage) -> StoredKey | None:
        reads[store.name] += 1
        result: StoredKey | None = original(stage)
        return result

    store.read = read


def setup(tmp_path: Path) -> tuple[Runtime, Counter[str], Clock]:
    write_dotenv(tmp_path / "a.env", key(1))
    write_dotenv(tmp_path / "b.env", key(2))
    config = parse_config(CONFIG, base_dir=tmp_path, store_types=("env", "memory"))
    clock = Clock()
    memory = MemoryStore("m", current=key(3), environment=Environment.SANDBOX)
    runtime = Runtime(config, monotonic=clock, stores={"m": memory})
    reads: Counter[str] = Counter()
    for name in ("a", "b", "m"):
        counted(runtime.store(name), reads)
    return runtime, reads, clock


def held(runtime: Runtime, **kwargs: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for holding in runtime.holdings(**kwargs):
        found.setdefault(holding.store, set()).add(holding.public_key)
    return found


def test_without_fresh_every_store_is_read_every_time(tmp_path: Path) -> None:
    runtime, reads, _ = setup(tmp_path)
    held(runtime)
    held(runtime)
    assert reads == {"a": 6, "b": 6, "m": 6}  # three stages each, twice


def test_unchanged_stores_of_other_credentials_are_not_read_again(tmp_path: Path) -> None:
    runtime, reads, _ = setup(tmp_path)
    first = held(runtime, fresh={"a"})
    reads.clear()
    again = held(runtime, fresh={"a"})
    assert again == first
    assert reads == {"a": 3}  # only the rotating credential's own store


def test_a_hand_edit_of_another_credentials_file_is_seen_at_once(tmp_path: Path) -> None:
    runtime, reads, _ = setup(tmp_path)
    held(runtime, fresh={"a"})
    write_dotenv(tmp_path / "b.env", key(1), settled=False)  # someone copies a's key into b's file
    reads.clear()
    found = held(runtime, fresh={"a"})
    assert key(1).api_key in found["b"]
    assert reads["b"] == 3


def test_a_write_through_the_store_is_seen_at_once(tmp_path: Path) -> None:
    runtime, _, _ = setup(tmp_path)
    held(runtime, fresh={"a"})
    store = runtime.store("b")
    assert isinstance(store, EnvStore)
    pending = StoredKey(key(9).api_key, key(9).api_secret, key_id="apk_0009", token="t" * 32)
    store.put_pending(pending)  # only the sidecar changes
    assert key(9).api_key in held(runtime, fresh={"a"})["b"]


def test_a_store_without_a_fingerprint_is_read_again_after_the_ttl(tmp_path: Path) -> None:
    runtime, reads, clock = setup(tmp_path)
    held(runtime, fresh={"a"})
    reads.clear()
    clock.now += HOLDINGS_TTL / 2
    held(runtime, fresh={"a"})
    assert reads["m"] == 0
    clock.now += HOLDINGS_TTL
    held(runtime, fresh={"a"})
    assert reads["m"] == 3


def test_a_file_modified_in_the_last_two_seconds_never_matches_its_last_fingerprint(tmp_path: Path) -> None:
    """A filesystem with one- or two-second timestamps (or NFS's cached attributes) can show the same stat before and
    after an in-place edit of the same size within that second, so a recently modified file's fingerprint matches
    nothing, not even itself, and it is read again (git's "racily clean" rule); a settled file's is stable."""
    runtime, _, _ = setup(tmp_path)
    store = runtime.store("b")
    assert isinstance(store, EnvStore)
    assert store.fingerprint() == store.fingerprint()  # dated a minute back: settled
    now = time.time()
    os.utime(tmp_path / "b.env", (now, now))
    assert store.fingerprint() != store.fingerprint()


def test_a_symlinked_dotenv_retargeted_to_another_file_is_read_again(tmp_path: Path) -> None:
    """Deploys often point a stable name at a release's file (`b.env -> releases/7/b.env`); pointing it at another
    release changes what applications read, so it must change the fingerprint even when both files look alike."""
    runtime, reads, _ = setup(tmp_path)
    releases = tmp_path / "releases"
    releases.mkdir()
    first, second = releases / "one.env", releases / "two.env"
    write_dotenv(first, key(2))
    write_dotenv(second, key(1))  # another credential's key, same size, same (settled) times
    os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))
    link = tmp_path / "b.env"
    link.unlink()
    link.symlink_to(first)
    held(runtime, fresh={"a"})
    reads.clear()
    assert held(runtime, fresh={"a"})["b"] == {key(2).api_key}
    assert reads["b"] == 0  # unchanged: not read again
    link.unlink()
    link.symlink_to(second)  # retargeted
    assert held(runtime, fresh={"a"})["b"] == {key(1).api_key}
    assert reads["b"] == 3
