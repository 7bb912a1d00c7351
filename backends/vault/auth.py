"""How the Vault store gets and keeps a token: token, AppRole, Kubernetes or AWS IAM auth, plus renewal.

Why a unit of its own: logging in is the part of the Vault store that differs by where the rotator runs (a laptop
with VAULT_TOKEN, a VM with AppRole, a pod with its service-account JWT, a Lambda with its IAM role), while reading
and writing KV is the same everywhere. A rotation can wait for propagation and a grace window for longer than a
token lives, so the session renews a renewable token at half its life and logs in again before a login token runs
out; a token that cannot be renewed is warned about once, when it is first looked at.

The environment Vault's own CLI reads is respected: VAULT_ADDR, VAULT_TOKEN (and ~/.vault-token), VAULT_NAMESPACE,
VAULT_CACERT; AppRole's role_id and secret_id come from files or VAULT_ROLE_ID / VAULT_SECRET_ID; AWS credentials
from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (what a Lambda is given), or from botocore's
chain when botocore is installed. Tokens and secret ids are never logged or put in a message.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import hvac
from hvac import exceptions as vault

from backends.vault.errors import translated
from backends.vault.redirects import refuse_redirects_elsewhere
from rotator.core.errors import ConfigError, StoreDenied, StoreError, StoreNotFound

__all__ = ["AuthMethod", "VaultAuth", "VaultSession"]

log = logging.getLogger("rotator.store.vault")

_SHORTEST_SAFE_TTL: Final = 600.0
"""A token with less than this left may run out between two Vault calls of a rotation (the keepalive is every 5
minutes); such a token is warned about."""
_CREDENTIAL_RE: Final = re.compile(r"[\x21-\x7e]+")
"""What a token, role id, secret id or JWT consists of: printable ASCII, no spaces or line breaks."""
KUBERNETES_JWT: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""Where Kubernetes mounts a pod's service-account token."""


class AuthMethod(StrEnum):
    """How the store logs in to Vault (`auth` in the store's table)."""

    TOKEN = "token"  # noqa: S105 - the method's name, not a credential
    APPROLE = "approle"
    KUBERNETES = "kubernetes"
    AWS = "aws"


@dataclass(frozen=True, slots=True)
class VaultAuth:
    """The `auth` options of one store, checked when the store is built (no network until first use)."""

    method: AuthMethod
    mount: str
    """Where the auth method is mounted (`auth_mount`; by default its own name)."""
    role: str | None = None
    token_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    jwt_file: Path = Path(KUBERNETES_JWT)
    aws_region: str | None = None
    aws_header_value: str | None = None

    @classmethod
    def from_options(cls, store: str, options: Mapping[str, Any]) -> VaultAuth:
        """Build from the store table's auth options; ConfigError naming the option and the fix."""
        raw_method = options.get("auth") or AuthMethod.TOKEN.value
        try:
            method = AuthMethod(raw_method)
        except ValueError:
            # Its text is never echoed: a token pasted into `auth` would be printed whole (issue 16, item 7).
            known = [m.value for m in AuthMethod]
            close = difflib.get_close_matches(str(raw_method), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f'store {store!r}: `auth` is not one of {", ".join(known)}{hint}. Fix: write auth = "token" (or '
                "approle, kubernetes, aws); a token itself never goes in rotator.toml: use VAULT_TOKEN or token_file"
            ) from None
        role = options.get("role")
        if method in (AuthMethod.KUBERNETES, AuthMethod.AWS) and not role:
            raise ConfigError(
                f"store {store!r}: auth = {method.value!r} needs `role`, the Vault role to log in as "
                f'(e.g. role = "bluum-rotator")'
            )
        if method is AuthMethod.TOKEN and role:
            raise ConfigError(f"store {store!r}: `role` is for approle, kubernetes or aws auth; remove it for a token")
        allowed = {
            AuthMethod.TOKEN: {"token_file"},
            AuthMethod.APPROLE: {"role_id_file", "secret_id_file"},
            AuthMethod.KUBERNETES: {"jwt_file"},
            AuthMethod.AWS: {"aws_region", "aws_header_value"},
        }[method]
        misplaced = sorted(
            name
            for name in ("token_file", "role_id_file", "secret_id_file", "jwt_file", "aws_region", "aws_header_value")
            if options.get(name) is not None and name not in allowed
        )
        if misplaced:
            raise ConfigError(
                f"store {store!r}: {', '.join(misplaced)} do not apply to auth = {method.value!r}; remove them or "
                "change `auth`"
            )

        def path(name: str) -> Path | None:
            value = options.get(name)
            return Path(str(value)).expanduser() if value else None

        return cls(
            method=method,
            mount=str(options.get("auth_mount") or method.value),
            role=str(role) if role else None,
            token_file=path("token_file"),
            role_id_file=path("role_id_file"),
            secret_id_file=path("secret_id_file"),
            jwt_file=path("jwt_file") or Path(KUBERNETES_JWT),
            aws_region=options.get("aws_region"),
            aws_header_value=options.get("aws_header_value"),
        )


class VaultSession:
    """One logged-in hvac client for a store, logging in on first use and keeping its token alive.

    `client()` is what every call goes through: it logs in when there is no token yet and renews (or logs in again)
    when the token has lived half (or two thirds, for login tokens) of its time.
    """

    def __init__(
        self,
        *,
        store: str,
        url: str,
        auth: VaultAuth,
        namespace: str | None = None,
        ca_cert: str | None = None,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
        client: hvac.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._auth = auth
        self._environ = os.environ if environ is None else environ
        self._monotonic = monotonic
        self._url = url
        self._client = client or hvac.Client(
            url=url,
            namespace=namespace,
            verify=ca_cert if ca_cert else True,
            timeout=timeout,  # type: ignore[arg-type]
        )
        refuse_redirects_elsewhere(self._client.session)  # the token never follows a redirect to another address
        self._logged_in = bool(client is not None and client.token)
        """An injected client that already has a token is used as it is; otherwise the configured way logs in."""
        self._renewable = False
        self._lookup_worked = False
        """Whether this token could ever look itself up: only then does a refused lookup mean it expired."""
        self._refresh_at: float | None = None
        """Monotonic time at which to renew or log in again; None: the token does not expire (or is not known to)."""
        self._mutex = threading.RLock()

    @property
    def address(self) -> str:
        """Vault's address, for messages."""
        return self._url

    def client(self) -> hvac.Client:
        """The hvac client with a live token."""
        with self._mutex:
            if not self._logged_in:
                self._log_in()
            elif self._refresh_at is not None and self._monotonic() >= self._refresh_at:
                self._refresh()
            return self._client

    def token_valid(self) -> bool | None:
        """Whether the token still works (None: cannot tell), to tell an expired token from a narrow policy.

        A token that was never allowed to look itself up (created without the `default` policy) cannot tell: its
        403 then says nothing about expiry."""
        try:
            self._client.auth.token.lookup_self()
        except (vault.Forbidden, vault.Unauthorized):
            return False if self._lookup_worked else None
        except Exception:  # only a hint for a message; the real error is already being raised
            return None
        self._lookup_worked = True
        return True

    def close(self) -> None:
        """Close the HTTP connections (the token is left alone: another runner may share it)."""
        self._client.adapter.close()

    def log_in_again(self) -> bool:
        """After a 403 from an expired login token: log in anew. False for a plain token (nothing to log in with)."""
        if self._auth.method is AuthMethod.TOKEN:
            return False
        with self._mutex:
            self._log_in()
        return True

    # ------------------------------------------------------------------------------------------------- internals

    def _log_in(self) -> None:
        """Log in; a 404 here is a wrong address or auth mount, never "nothing stored": StoreNotFound would tell
        callers that the key's place is empty (a store added after enrollment) when Vault was not even reached."""
        try:
            self._log_in_once()
        except StoreNotFound as exc:
            raise StoreError(
                f"{exc}: nothing at {self._url} answers as Vault's auth/{self._auth.mount}. Check the store's `url` "
                "(the Vault server, not a proxy in front of it) and its `auth` mount, then run the command again",
                store=exc.store,
            ) from exc

    def _log_in_once(self) -> None:
        method = self._auth.method
        with translated(
            f"logging in to Vault ({method.value} auth at auth/{self._auth.mount})",
            "",
            store=self._store,
            address=self._url,
        ):
            if method is AuthMethod.TOKEN:
                self._client.token = self._token()
                ttl, renewable = self._look_up()
            else:
                response = self._login_call()
                auth = response.get("auth") or {}
                ttl, renewable = float(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
                self.token_valid()  # learns whether this token may look itself up (for messages later)
        self._logged_in = True
        self._renewable = renewable
        self._schedule(ttl, renewable)

    def _login_call(self) -> dict[str, Any]:
        auth, client = self._auth, self._client
        if auth.method is AuthMethod.APPROLE:
            role_id = self._from_file_or_env(auth.role_id_file, "VAULT_ROLE_ID", "role_id_file")
            secret_id = self._from_file_or_env(auth.secret_id_file, "VAULT_SECRET_ID", "secret_id_file")
            result: dict[str, Any] = client.auth.approle.login(
                role_id=role_id, secret_id=secret_id, mount_point=auth.mount
            )
            return result
        if auth.method is AuthMethod.KUBERNETES:
            jwt = self._read_file(auth.jwt_file, "jwt_file")
            kubernetes: dict[str, Any] = client.auth.kubernetes.login(role=auth.role, jwt=jwt, mount_point=auth.mount)
            return kubernetes
        access_key, secret_key, session_token = self._aws_credentials()
        # hvac sends the login to STS's global endpoint, which only accepts signatures for us-east-1; a regional
        # endpoint (set `aws_region`, and Vault's `sts_endpoint`/`sts_region` to match) is the user's choice.
        region = auth.aws_region or "us-east-1"
        aws: dict[str, Any] = client.auth.aws.iam_login(
            access_key,
            secret_key,
            session_token,
            header_value=auth.aws_header_value,
            role=auth.role,
            region=region,
            mount_point=auth.mount,
        )
        return aws

    def _token(self) -> str:
        if self._auth.token_file is not None:
            return self._read_file(self._auth.token_file, "token_file")
        token = self._environ.get("VAULT_TOKEN", "").strip()
        if token:
            return self._checked(token, "VAULT_TOKEN")
        home_token = Path(self._environ.get("HOME", str(Path.home()))) / ".vault-token"
        if home_token.is_file():
            return self._read_file(home_token, "~/.vault-token")
        raise StoreDenied(
            "no Vault token: set VAULT_TOKEN, log in with `bao login` / `vault login` (it writes ~/.vault-token), "
            "set `token_file`, or choose another `auth` method (approle, kubernetes, aws)",
            store=self._store,
        )

    def _look_up(self) -> tuple[float, bool]:
        """The token's remaining seconds and whether it can be renewed (0: no expiry, or the policy hides it)."""
        try:
            data = self._client.auth.token.lookup_self().get("data") or {}
        except vault.Forbidden:
            log.warning(
                "store %s: the Vault token cannot look itself up (no `default` policy?); it will not be renewed",
                self._store,
                extra={"fields": {"store": self._store}},
            )
            return 0.0, False
        self._lookup_worked = True
        ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
        if 0 < ttl < _SHORTEST_SAFE_TTL:
            log.warning(
                "store %s: the Vault token has %.0f s left; between two Vault calls a rotation can wait up to 5 "
                "minutes (the lease keepalive), so a token this short may expire unrenewed: use a longer TTL",
                self._store,
                ttl,
                extra={"fields": {"store": self._store, "ttl_seconds": ttl}},
            )
        if ttl and not renewable:
            log.warning(
                "store %s: the Vault token expires in %.0f s and cannot be renewed; a rotation that outlives it fails "
                "and is finished by `rotator resume` with a new token",
                self._store,
                ttl,
                extra={"fields": {"store": self._store, "ttl_seconds": ttl}},
            )
        return ttl, renewable

    def _schedule(self, ttl: float, renewable: bool) -> None:
        """When to act: a renewable token is renewed at half its life; a login token that cannot be renewed is
        replaced by a new login at two thirds; a plain token that cannot be renewed is left to run out."""
        if ttl <= 0 or (self._auth.method is AuthMethod.TOKEN and not renewable):
            self._refresh_at = None
            return
        self._refresh_at = self._monotonic() + ttl * (0.5 if renewable else 2 / 3)

    def _refresh(self) -> None:
        if not self._renewable:
            self._log_in()
            return
        try:
            with translated(
                "renewing the Vault token", "", store=self._store, address=self._url, token_valid=self.token_valid
            ):
                auth = (self._client.auth.token.renew_self() or {}).get("auth") or {}
        except StoreError:
            if self._auth.method is AuthMethod.TOKEN:
                raise
            log.info("store %s: the Vault token could not be renewed; logging in again", self._store)
            self._log_in()
            return
        ttl = float(auth.get("lease_duration") or 0)
        log.debug("store %s: renewed the Vault token for %.0f s", self._store, ttl)
        if self._auth.method is not AuthMethod.TOKEN and ttl < 1:
            self._log_in()  # at its max TTL: renewal gives no more time
            return
        self._schedule(ttl, bool(auth.get("renewable")))

    def _aws_credentials(self) -> tuple[str, str, str | None]:
        env = self._environ
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None
        try:  # optional: profiles, SSO and instance roles through botocore's own chain
            botocore_session: Any = importlib.import_module("botocore.session")
        except ImportError:
            botocore_session = None
        if botocore_session is not None:
            try:
                found = botocore_session.get_session().get_credentials()
                frozen = found.get_frozen_credentials() if found is not None else None
            except Exception as exc:
                raise StoreDenied(
                    f"auth = 'aws' could not get AWS credentials ({type(exc).__name__}): check AWS_PROFILE and the "
                    "AWS config files, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    store=self._store,
                ) from None
            if frozen is not None:
                return str(frozen.access_key), str(frozen.secret_key), frozen.token
        raise StoreDenied(
            "auth = 'aws' found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a Lambda has "
            "them), or install botocore to use profiles and instance roles",
            store=self._store,
        )

    def _from_file_or_env(self, path: Path | None, variable: str, option: str) -> str:
        if path is not None:
            return self._read_file(path, option)
        value = self._environ.get(variable, "").strip()
        if not value:
            raise StoreDenied(
                f"AppRole login needs {variable.lower().removeprefix('vault_')}: set `{option}` to a file holding it, "
                f"or the {variable} environment variable",
                store=self._store,
            )
        return self._checked(value, variable)

    def _read_file(self, path: Path, option: str) -> str:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise StoreDenied(
                f"{option} {path} is not UTF-8 text: put only the credential in it", store=self._store
            ) from None
        except OSError as exc:
            raise StoreDenied(
                f"cannot read {option} {path} ({exc.strerror or type(exc).__name__}): check the path and that this "
                "user may read it",
                store=self._store,
            ) from exc
        if not value:
            raise StoreDenied(f"{option} {path} is empty: put the credential in it", store=self._store)
        return self._checked(value, f"{option} {path}")

    def _checked(self, value: str, where: str) -> str:
        """A credential HTTP can carry in a header; never echoed."""
        if not _CREDENTIAL_RE.fullmatch(value):
            raise StoreDenied(
                f"{where} holds spaces, line breaks or other characters a Vault credential never has: put only the "
                "credential in it, on one line",
                store=self._store,
            )
        return value
