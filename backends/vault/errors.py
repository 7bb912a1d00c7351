"""hvac and requests errors, translated in one place into the store errors, with what to do about each.

Why one place: the Vault store reads and writes two KV paths and logs in four ways, and an operator at 3 a.m. needs
the same answer to "sealed", "permission denied" or "check-and-set" whichever call met it. Messages carry Vault's
own error text (it names paths, never a secret value: Vault does not echo request bodies) and the path, never a
token; the original exception is chained for debugging.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import requests
from hvac import exceptions as vault

from backends.vault.redirects import RedirectRefused
from rotator.core.errors import ExitCode, StoreConflict, StoreDenied, StoreError, StoreNotFound, StoreUnavailable

__all__ = ["CAS_MISMATCH", "POLICY_HINT", "WriteOutcomeUnknown", "translated"]

CAS_MISMATCH: Final = "check-and-set parameter did not match"
_CAS_REQUIRED: Final = "check-and-set parameter required"
_SHOWN_ERROR_CHARS: Final = 300
POLICY_HINT: Final = "README 'Keys in Vault or OpenBao (KV v2)'"
"""Where the minimal policy is documented (a test checks that heading exists)."""
_ERROR_COUNT_RE: Final = re.compile(r"^\d+ errors? occurred:\s*")
_AGAIN: Final = "run the command again (or `rotator resume` if a rotation was under way)"


class WriteOutcomeUnknown(StoreError):
    """A write whose answer was lost, and Vault stopped answering before it could be read back: it may have been
    applied. Exit 4, never 5: "nothing was changed, safe to retry as is" might be false (the lease may be held, the
    record may name a new rotation); `rotator status` shows what is there once Vault answers."""

    exit_code = ExitCode.INCOMPLETE


def _said(exc: vault.VaultError) -> str:
    """What Vault itself said (its `errors` list) on one line, shortened; never the request.

    Vault wraps errors as "1 error occurred:\n\t* permission denied\n\n"; only "permission denied" is kept."""
    errors = exc.errors if isinstance(exc.errors, list) else [str(exc.args[0] if exc.args else "")]
    parts = [_ERROR_COUNT_RE.sub("", str(item).strip()) for item in errors if item]
    text = "; ".join(" ".join(part.replace("* ", " ").split()) for part in parts) or type(exc).__name__
    return text if len(text) <= _SHOWN_ERROR_CHARS else text[:_SHOWN_ERROR_CHARS] + "…"


@contextmanager
def translated(
    action: str, where: str, *, store: str, address: str, token_valid: Callable[[], bool | None] | None = None
) -> Iterator[None]:
    """Run a Vault call; re-raise its failure as a `StoreError` that says `action` on `where` failed and why.

    `token_valid`, when given, is asked after a 403 whether the token itself still works, so that an expired or
    revoked token is told apart from a policy that is too narrow (Vault answers 403 to both).
    """
    where = f"{action} {where}" if where else action
    try:
        yield
    except vault.VaultError as exc:
        raise _from_vault(exc, where, store=store, address=address, token_valid=token_valid) from exc
    except RedirectRefused as exc:
        raise StoreError(
            f"{where}: Vault at {address} redirected to {exc.target}, another address; the token is never sent to "
            "another address, so nothing was asked there. Fix: if that is your Vault (a standby redirecting to the "
            "active node), set `url` (or VAULT_ADDR) to it or to an address that forwards to the active node",
            store=store,
        ) from None
    except requests.exceptions.SSLError as exc:
        raise StoreUnavailable(
            f"{where}: TLS to Vault at {address} failed ({type(exc).__name__}). Fix: point `ca_cert` (or "
            "VAULT_CACERT) at the CA bundle that signed Vault's certificate",
            store=store,
        ) from exc
    except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema):
        raise StoreError(  # not chained: requests repeats the header value, which may be a token
            f"{where}: the request to Vault at {address} could not be made: the address is not a URL, or a "
            "credential holds characters HTTP cannot carry. Check `url` (or VAULT_ADDR) and the token",
            store=store,
        ) from None
    except requests.exceptions.Timeout as exc:
        raise StoreUnavailable(
            f"{where}: Vault at {address} did not answer in time. If this was a write it may have been "
            "applied; once Vault answers, " + _AGAIN + " (every step can be repeated safely)",
            store=store,
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise StoreUnavailable(
            f"{where}: cannot reach Vault at {address} ({type(exc).__name__}). Check that the server is up "
            "and that `url` (or VAULT_ADDR) is right; once it answers, " + _AGAIN,
            store=store,
        ) from exc


def _from_vault(
    exc: vault.VaultError,
    where: str,
    *,
    store: str,
    address: str,
    token_valid: Callable[[], bool | None] | None,
) -> StoreError:
    said = _said(exc)
    head = f"{where}: Vault said: {said}"
    if isinstance(exc, vault.VaultDown):
        return StoreUnavailable(
            f"{head}. Vault at {address} is sealed or in maintenance: unseal it (`bao operator unseal` / `vault "
            "operator unseal`), then " + _AGAIN,
            store=store,
        )
    if isinstance(exc, vault.VaultNotInitialized):
        return StoreUnavailable(f"{head}. Vault at {address} is not initialized: initialize and unseal it", store=store)
    if isinstance(exc, vault.Forbidden | vault.Unauthorized):
        if token_valid is not None and token_valid() is False:
            return StoreDenied(
                f"{head}. The Vault token has expired or was revoked: log in again (a new VAULT_TOKEN, or check the "
                "`auth` method's credentials), then " + _AGAIN,
                store=store,
            )
        return StoreDenied(
            f"{head}. The token's policy does not allow this: grant create, read and update on this path (the "
            f"minimal policy is in the {POLICY_HINT}), then run the command again",
            store=store,
        )
    if isinstance(exc, vault.InvalidPath):
        return StoreNotFound(f"{head}. Nothing is stored there (or the mount does not exist)", store=store)
    if isinstance(exc, vault.InvalidRequest) and CAS_MISMATCH in said:
        return StoreConflict(
            f"{head}. Someone else wrote it since it was read; nothing of this runner's was written. Run the command "
            "again (a rotation resumes with `rotator resume`)",
            store=store,
        )
    if isinstance(exc, vault.InvalidRequest) and _CAS_REQUIRED in said:
        return StoreError(f"{head}. This is a bug: every write names a version; please report it", store=store)
    if isinstance(exc, vault.RateLimitExceeded):
        return StoreUnavailable(f"{head}. Vault is rate-limiting this client: run the command again later", store=store)
    if isinstance(exc, vault.InternalServerError | vault.BadGateway | vault.UnexpectedError):
        return StoreUnavailable(f"{head}. Vault at {address} failed to answer; once it does, {_AGAIN}", store=store)
    return StoreError(head, store=store)
