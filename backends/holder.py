"""Which process holds a lease, and whether that process is certainly gone.

Why: a lease kept in a remote store (Vault's stage document; later AWS) is a TTL, not a lock the kernel drops when
its holder dies. After a SIGKILL or an OOM kill, `rotator resume` on the same machine would otherwise be refused for
the rest of the lease (15 minutes) while the operator knows the runner is dead. So a lease records where its holder
runs, and a contender that runs in the very same place (same host name, same kernel boot, same PID namespace) may
ask the kernel whether that PID still exists. Anything less certain (another machine, another container, an
identity that cannot be read, a PID that exists, even if reused) counts as alive: the lease then ends by expiry.

One assumption: two machines never share host name, boot id and PID namespace. Clones of one VM snapshot do (until
they reboot), so give each clone its own host name, or a live lease on one clone could be taken over from another.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.ledger import Lease, lease_refusal
from rotator.core.errors import LeaseLost, RotationInProgress, StoreError
from rotator.core.timestamps import format_timestamp

__all__ = ["HandleLeases", "HeldLease", "HolderProcess", "contend", "refuse_write", "this_process"]

log = logging.getLogger("rotator.store")


@dataclass(frozen=True, slots=True)
class HolderProcess:
    """Where a lease holder runs: enough to tell, from the same place, that its process is gone."""

    host: str
    boot_id: str | None
    pid_namespace: str | None
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "boot_id": self.boot_id, "pid_namespace": self.pid_namespace, "pid": self.pid}

    @classmethod
    def from_json(cls, raw: object) -> HolderProcess | None:
        """The holder a lease recorded, or None when it recorded none (or something unusable: then it is alive)."""
        if not isinstance(raw, dict):
            return None
        host, pid = raw.get("host"), raw.get("pid")
        boot_id, namespace = raw.get("boot_id"), raw.get("pid_namespace")
        if not isinstance(host, str) or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        return cls(
            host=host,
            boot_id=boot_id if isinstance(boot_id, str) else None,
            pid_namespace=namespace if isinstance(namespace, str) else None,
            pid=pid,
        )

    def certainly_gone(self) -> bool:
        """True only when this process runs where the holder ran and the kernel says the holder's PID is gone."""
        here = this_process()
        same_place = (
            here.boot_id is not None
            and here.pid_namespace is not None
            and (self.host, self.boot_id, self.pid_namespace) == (here.host, here.boot_id, here.pid_namespace)
        )
        if not same_place or self.pid == here.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except (OSError, OverflowError, ValueError):  # EPERM: it exists; a PID out of range: not ours to judge
            return False
        return False


def this_process() -> HolderProcess:
    """Where this process runs."""
    return HolderProcess(
        host=socket.gethostname(),
        boot_id=_read(lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip()),
        pid_namespace=_read(lambda: os.readlink("/proc/self/ns/pid")),
        pid=os.getpid(),
    )


def _read(get: Callable[[], str]) -> str | None:
    try:
        value = get()
    except OSError:
        return None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A remote lease as a contender finds it (`owner` None: released; the fencing number stays)."""

    fence: int
    owner: str | None
    expires_at: float | None
    holder: HolderProcess | None

    def live(self, now: float) -> bool:
        return self.owner is not None and self.expires_at is not None and now < self.expires_at


def contend(held: HeldLease, *, owner: str, ttl_seconds: float, now: float, where: str, store: str) -> Lease:
    """The lease a contender may write over `held`: the next fencing number, or RotationInProgress while `held` is
    live and its holder not certainly gone. Shared by every ledger whose lease is a TTL in a remote store (Vault,
    DynamoDB); the caller writes the result with its own compare-and-set."""
    gone = held.holder is not None and held.holder.certainly_gone()
    if held.live(now) and not gone:
        assert held.expires_at is not None
        until = format_timestamp(held.expires_at)
        busy = RotationInProgress(
            f"another rotation of this credential is running ({held.owner}, fence {held.fence}, lease until {until}; "
            f"{where}); nothing was changed. Wait for it; if that runner is gone, its lease ends then and "
            "`rotator resume` finishes its rotation"
        )
        busy.held_by, busy.held_until = held.owner, held.expires_at
        raise busy
    if held.owner is not None:
        log.warning(
            "taking over the expired rotation lease of %s (fence %d) in %s"
            if not held.live(now)
            else "taking over the rotation lease of %s (fence %d) in %s: that runner's process is gone from this "
            "machine",
            held.owner,
            held.fence,
            where,
            extra={"fields": {"store": store, "owner": held.owner}},
        )
    return Lease(owner=owner, fence=held.fence + 1, expires_at=now + ttl_seconds, ttl_seconds=ttl_seconds)


def refuse_write(held: HeldLease, lease: Lease, *, now: float, describe: str, what: str) -> None:
    """LeaseLost, saying why, when `lease` no longer allows a write over `held` (the lease as stored now)."""
    holding = held.fence if held.owner is not None else None
    refusal = lease_refusal(held_fence=holding, latest_fence=held.fence, lease=lease, now=now)
    if refusal:
        raise LeaseLost(
            f"{describe}: {what}: {refusal}; this runner changes nothing more. The lease holder (or "
            "`rotator resume`, once no lease is held) finishes"
        )


class HandleLeases:
    """The fencing numbers of the leases one store handle acquired and has not released, from any thread: what the
    handle gives up when it closes, and the latest one its own stage writes are fenced by."""

    def __init__(self) -> None:
        self._fences: set[int] = set()
        self._mutex = threading.Lock()

    def add(self, fence: int) -> None:
        with self._mutex:
            self._fences.add(fence)

    def discard(self, fence: int) -> None:
        with self._mutex:
            self._fences.discard(fence)

    def latest(self) -> int | None:
        with self._mutex:
            return max(self._fences, default=None)

    def release_all(self, release: Callable[[Lease], None], where: str) -> None:
        """Call `release` for each lease still held; a release that fails is logged (the lease ends by expiry)."""
        with self._mutex:
            fences = sorted(self._fences)
        for fence in fences:
            try:
                release(Lease(owner="", fence=fence, expires_at=0.0, ttl_seconds=0.0))
            except StoreError as exc:
                log.warning("could not release the rotation lease in %s: %s", where, exc)
