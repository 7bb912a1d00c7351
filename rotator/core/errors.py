"""The one exception tree of bluum-rotator, and the exit code each error means.

    RotatorError                      exit 2 unless a subclass says otherwise
    ├── ConfigError                   bad rotator.toml, bad flag, bad input file        (2: nothing changed)
    │   └── ConfigUntrusted           rotator.toml (or a folder above it) others could change  (2)
    ├── StoreError                    a secret store failed                              (2)
    │   ├── StoreNotFound             the secret/file/path is not there
    │   ├── StoreCorrupt              it is there but malformed
    │   ├── StoreConflict             someone else wrote first (check-and-set lost)
    │   ├── StoreDenied               credentials of the store lack permission
    │   ├── UnsafeTarget              a file others could swap, a hard link, a bind mount (2: nothing changed)
    │   └── StoreUnavailable          the store cannot be reached                        (5: retry later)
    ├── BluumError                    Bluum answered with an error, or could not be reached
    │   ├── BluumAuthError            401: BLUM-401-001..005 (see `.reason`)
    │   ├── BluumForbidden            403
    │   ├── BluumNotFound             404
    │   ├── BluumConflict             409 (e.g. Idempotency-Key reused with another body)
    │   ├── BluumInvalidRequest       400 / 422
    │   ├── BluumRateLimited          429 after retries ran out                          (5)
    │   ├── BluumServerError          5xx after retries ran out                          (5)
    │   │   └── BluumUnexpectedResponse   2xx whose body breaks the contract (2: retrying will not help)
    │   └── BluumUnavailable          network error or timeout after retries ran out    (5)
    └── RotationError
        ├── EnvironmentMismatch       I7: a sandbox key where a production key belongs, or the reverse (2)
        ├── RotationInProgress        another rotation of this credential holds the lease      (3)
        │   └── LeaseLost             this runner's lease expired or was taken over: it stops  (3)
        ├── RotationFailed            verification failed; rolled back, old key still current  (1)
        └── RotationIncomplete        stopped half-way; `rotator resume` or a person finishes   (4)
            ├── RollbackFailed        rollback itself failed, chained to the first failure      (4)
            └── TargetChanged         a target file was swapped during the rotation: not written (4)

Exit 5 (UNAVAILABLE) means Bluum or a store did not answer usefully before anything changed: safe to retry as
is, so monitoring can page on 2 and 4 and merely retry on 5. Once a rotation has changed something, every error
exits 4 instead (the engine re-raises it as RotationIncomplete, which says to run `rotator resume`).

Each message says what went wrong and what to do about it. No message ever contains a secret value: only
key ids, paths, codes and request ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the same for every command, documented in --help and the README."""

    OK = 0
    ROLLED_BACK = 1
    BAD_INPUT = 2
    IN_PROGRESS = 3
    INCOMPLETE = 4
    UNAVAILABLE = 5

    @property
    def severity(self) -> int:
        """How urgent, for the one code a command over several credentials exits with: a rotation left half-way
        (4) outranks Bluum or a store being unreachable (5), which outranks everything else."""
        return {ExitCode.INCOMPLETE: 6, ExitCode.UNAVAILABLE: 5}.get(self, int(self))


def most_severe(codes: Iterable[ExitCode]) -> ExitCode:
    """The exit code of a command that acted on several credentials (OK when there were none)."""
    return max(codes, key=lambda code: code.severity, default=ExitCode.OK)


class RotatorError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class ConfigError(RotatorError):
    """Configuration or command input is wrong; nothing was changed."""


class ConfigUntrusted(ConfigError):
    """rotator.toml, or a folder above it, could be changed by a user other than its owner and root; not read.

    `problems` holds one line per file or folder (path, owner, mode and what is wrong), `fixes` the commands."""

    def __init__(self, message: str, *, problems: Iterable[str] = (), fixes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
        self.fixes = tuple(fixes)


class StoreError(RotatorError):
    """A secret store failed; `store` names which one."""

    def __init__(self, message: str, *, store: str = "") -> None:
        super().__init__(f"store {store!r}: {message}" if store else message)
        self.store = store


class StoreNotFound(StoreError):
    """The secret, file or path does not exist."""


class StoreCorrupt(StoreError):
    """The secret exists but cannot be parsed or lacks required fields."""


class StoreConflict(StoreError):
    """A concurrent writer changed the secret first; nothing of ours was written."""


class StoreDenied(StoreError):
    """The store refused our credentials."""


class UnsafeTarget(StoreError):
    """A target the rotator must not write: a folder others can write (they could swap the file for a link), a
    hard-linked file, a single-file bind mount. The message says why and the fix."""


class StoreUnavailable(StoreError):
    """The store could not be reached."""

    exit_code = ExitCode.UNAVAILABLE


class BluumError(RotatorError):
    """Bluum answered with an error, or did not answer. Carries what support needs to trace the call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        self.trace_id = trace_id
        self.detail = message
        parts = [message]
        meta = [
            f"{label}={value}"
            for label, value in (
                ("status", status),
                ("code", code),
                ("request_id", request_id),
                ("trace_id", trace_id),
            )
            if value is not None
        ]
        if meta:
            parts.append("(" + ", ".join(meta) + ")")
        super().__init__(" ".join(parts))


class BluumAuthError(BluumError):
    """401. `code` tells why: 001/002 header problems, 003 wrong or revoked, 004 inactive, 005 expired."""


class BluumForbidden(BluumError):
    """403: the key lacks permission (e.g. an investor-scoped key on a tenant-only route)."""


class BluumNotFound(BluumError):
    """404: unknown resource or endpoint."""


class BluumConflict(BluumError):
    """409: e.g. an Idempotency-Key reused with a different body."""


class BluumInvalidRequest(BluumError):
    """400 or 422: the request itself is wrong; retrying will not help."""


class BluumRateLimited(BluumError):
    """429 after every retry was spent."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, trace_id=trace_id)
        self.retry_after = retry_after


class BluumServerError(BluumError):
    """5xx after every retry was spent."""

    exit_code = ExitCode.UNAVAILABLE


class BluumUnexpectedResponse(BluumServerError):
    """Bluum answered 2xx, but the body breaks the contract (no secret, wrong environment, not JSON...).

    A subclass of BluumServerError because the fault is on the server side and retrying will not fix it.
    `key_id` names a key that the faulty answer says was created, so the caller can revoke it.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        key_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, trace_id=trace_id)
        self.key_id = key_id


class BluumUnavailable(BluumError):
    """No answer (connection refused, dropped, timed out) after every retry was spent."""

    exit_code = ExitCode.UNAVAILABLE


class RotationError(RotatorError):
    """A rotation could not run or could not finish."""


class EnvironmentMismatch(RotationError):
    """I7: the key's environment differs from the credential's; refused before deploying."""


class RotationInProgress(RotationError):
    """Another rotation of the same credential holds the lock; this one changed nothing."""

    exit_code = ExitCode.IN_PROGRESS
    held_by: str | None = None
    """Who holds the lease, when the ledger knows (a paying-key lane's waiting line names it: rotator.ops.lanes)."""
    held_until: float | None = None
    """When that lease ends (wall-clock seconds), when the ledger knows."""


class LeaseLost(RotationInProgress):
    """This runner's lease on the credential expired or was taken over; it changed nothing more and stops.

    Whoever holds the lease now finishes the rotation (or `rotator resume` does, once that lease ends).
    """


class RotationFailed(RotationError):
    """Verification failed and the rotation was rolled back: the old key is still current and active."""

    exit_code = ExitCode.ROLLED_BACK


class RotationIncomplete(RotationError):
    """The rotation stopped half-way; `rotator resume NAME` (or a person, as the message says) finishes it."""

    exit_code = ExitCode.INCOMPLETE


class RollbackFailed(RotationIncomplete):
    """Rolling back failed too. Chained (`__cause__`) to the rollback error; `.original` is the first one."""

    def __init__(self, message: str, *, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


class TargetChanged(RotationIncomplete):
    """A target (a dotenv file, its symlink, its folder) is not what the rotation pinned when it started: swapped by
    someone who can write its folder. Nothing is written to it; the record keeps the new key for resume/rollback."""
