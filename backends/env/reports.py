"""How the env store words what went wrong with a file, and what it warns about a secret file's mode or owner.

Why one place: the dotenv file (`backends.env.dotenv_file`), the sidecar (`backends.env.sidecar`), the lock file
(`backends.env.ledger`) and the store's writes (`backends.env.store`) all turn an OSError into the Store* error that
says what to do, and all warn alike when a file holding a secret had a mode others could read. One wording, one
exit code per kind of problem, wherever the file is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rotator.core.errors import StoreDenied, StoreNotFound, StoreUnavailable

if TYPE_CHECKING:
    from rotator.core.atomicfile import ReplacedFile

__all__ = ["FILE_MODE", "denied", "os_errors", "report_replaced", "unavailable", "warn_tightened"]

log = logging.getLogger("rotator.store.env")

FILE_MODE: Final = 0o600


def denied(store: str, action: str, path: Path) -> StoreDenied:
    """Permission denied: the rotator's user must be let in (exit 2, a deployer's fix)."""
    return StoreDenied(
        f"permission denied {action} {path}: let the rotator's user read and write it and its folder",
        store=store,
    )


def unavailable(store: str, action: str, path: Path, exc: OSError) -> StoreUnavailable:
    """Any other OSError: the file system failed (worth a retry), named without the file's content."""
    return StoreUnavailable(f"{action} {path} failed: {exc.strerror or type(exc).__name__}", store=store)


@contextmanager
def os_errors(store: str, action: str, path: Path) -> Iterator[None]:
    """Translate OSError of a write into the Store* error that says what to do."""
    try:
        yield
    except PermissionError as exc:
        raise denied(store, action, path) from exc
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise StoreNotFound(
            f"{action} {path} failed: folder {path.parent} does not exist; create it or fix `path` in rotator.toml",
            store=store,
        ) from exc
    except OSError as exc:
        raise unavailable(store, action, path, exc) from exc


def warn_tightened(store: str, path: Path, old_mode: int) -> None:
    """A file of ours that others could read was made 0600: said, since someone may have chosen that mode."""
    log.warning(
        "%s had mode %s; tightened it to %s because it holds an API secret",
        path,
        oct(old_mode),
        oct(FILE_MODE),
        extra={"fields": {"store": store, "path": str(path), "old_mode": oct(old_mode)}},
    )


def report_replaced(store: str, path: Path, result: ReplacedFile) -> None:
    """Warn about what a write of the application's file had to keep or change: a mode tightened, a mode every user
    can read (kept so that no application loses access), an owner that could not be kept."""
    if result.mode_tightened and result.previous_mode is not None:
        warn_tightened(store, path, result.previous_mode)
    if result.readable_by_everyone:
        log.warning(
            "%s is readable by every user of this machine (mode %s), and it holds an API secret: the mode was "
            "kept so that no application loses access, but restrict it (chmod o-rwx %s)",
            result.written,
            oct(result.mode),
            result.written,
            extra={"fields": {"store": store, "path": str(result.written), "mode": oct(result.mode)}},
        )
    if not result.owner_kept:
        log.warning(
            "%s now belongs to the rotator's user: the old owner could not be kept; make sure applications can "
            "still read it",
            path,
            extra={"fields": {"store": store, "path": str(path)}},
        )
