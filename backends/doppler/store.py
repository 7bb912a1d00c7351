"""The Doppler store: one credential in a Doppler config, as a deploy target only (`also_deploy_to`).

Applications run under `doppler run` (`--watch` restarts them when the config changes: the consumer-side reload)
and read `{prefix}API_KEY`, `{prefix}API_SECRET` and, when present or asked for (`fields`), `{prefix}KEY_ID`,
`{prefix}ENVIRONMENT`, `{prefix}BASE_URL` (`field_names` renames any of them). Other secrets of the config are
never touched.

Stages: applications see CURRENT only. PENDING, PREVIOUS and their tokens live in a stage document
(`backends.stage_document`, the env store's sidecar format) kept as the JSON value of one secret, `state_secret`
(BLUUM_ROTATOR_STATE by default), in `state_config` (by default the same config). In the same config `doppler run`
injects that secret too, so applications could read the PENDING and PREVIOUS pairs: name a config of its own
(a branch config such as `prd_rotator` does not leak into `prd`) with a token that reaches both. The moves are
`backends.projected`'s, as for Vault and env: the document first, the secrets applications read second, and a
crash between the two is repaired by calling again.

Never a ledger, never a primary: Doppler has no compare-and-set on a config and no lease, so two runners could both
believe they won. A Doppler target is written only under the lease its credential's primary (dotenv, Vault or AWS)
holds, and the configuration refuses Doppler as a primary (`rotator.config.doppler`). The token comes from the
environment variable `token_env` names (DOPPLER_TOKEN by default), never from rotator.toml; what the REST calls
are, and how they are retried, is `backends.doppler.api`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Final

import httpx

from backends import stages
from backends.doppler.api import DEFAULT_API_URL, DopplerApi, DopplerRetry, DopplerSecret
from backends.key_fields import FIELDS, FieldMap
from backends.projected import Projected
from backends.stage_document import DocumentReader, StageDocument
from backends.stages import StageLog
from rotator.core import in_flight
from rotator.core.errors import ConfigError, StoreConflict, StoreError, StoreNotFound
from rotator.core.findings import Finding, Severity
from rotator.core.model import Environment, Stage, StoredKey
from rotator.core.urls import url_problem

__all__ = ["DEFAULT_STATE_SECRET", "DEFAULT_TOKEN_ENV", "SECRET_NAME", "DopplerStore"]

log = logging.getLogger("rotator.store.doppler")

DEFAULT_TOKEN_ENV: Final = "DOPPLER_TOKEN"  # noqa: S105 - the name of a variable, not a token
DEFAULT_STATE_SECRET: Final = "BLUUM_ROTATOR_STATE"  # noqa: S105 - a secret's name
SECRET_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]*")
"""Doppler's rule for a secret's name: uppercase letters, digits and underscores, not starting with a digit."""
_CONFIG_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")


class DopplerStore:
    """One credential's fields in a Doppler config, with its stages in a secret beside them (or in `state_config`).

    `environ` is where the token is read (os.environ by default); `transport` and `retry` are for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        project: str,
        config: str,
        token_env: str = DEFAULT_TOKEN_ENV,
        url: str = DEFAULT_API_URL,
        state_config: str | None = None,
        state_secret: str = DEFAULT_STATE_SECRET,
        prefix: str = "BLUUM_",
        fields: Sequence[str] = (),
        field_names: Mapping[str, str] | None = None,
        environment: Environment | None = None,
        base_url: str | None = None,
        timeout: float = in_flight.DOPPLER_DEFAULT_TIMEOUT,
        max_attempts: int = 5,
        allow_insecure_http: bool = False,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: DopplerRetry | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.name = name
        self._project = _checked_name(name, "project", project, _CONFIG_NAME)
        self._config = _checked_name(name, "config", config, _CONFIG_NAME)
        self._state_config = _checked_name(name, "state_config", state_config or config, _CONFIG_NAME)
        self._state_secret = _checked_name(name, "state_secret", state_secret, SECRET_NAME)
        self._token_env = token_env
        self._fields = _field_map(name, prefix, fields, field_names, environment, base_url)
        if self._state_config == self._config and self._state_secret in self._fields.ours({}):
            raise ConfigError(f"store {name!r}: state_secret must differ from the secrets applications read")
        self._api = DopplerApi(
            store=name,
            url=_checked_url(name, url, allow_insecure_http),
            token=_token(name, token_env, environ),
            token_env=token_env,
            project=self._project,
            timeout=_seconds(name, timeout),
            retry=retry or DopplerRetry(max_attempts=_attempts(name, max_attempts)),
            transport=transport,
        )
        self._reader = DocumentReader(
            self._state_where,
            name,
            "put the document right, or delete that secret when no rotation is under way (the stages restart from "
            "what applications read)",
        )
        self._projected = Projected(self, StageLog(log, name, self.describe()))
        self._document_seen: tuple[str, ...] = ()
        self._app_seen: tuple[str, ...] = ()
        self._known: tuple[StoredKey, ...] = ()

    # ----------------------------------------------------------------------------------------------- where

    def describe(self) -> str:
        """Where the secret lives, for messages (never the token)."""
        return f"Doppler project {self._project!r} config {self._config!r} at {self._api.url}"

    @property
    def _state_where(self) -> str:
        return f"Doppler secret {self._state_secret} of project {self._project!r} config {self._state_config!r}"

    def __repr__(self) -> str:
        return f"DopplerStore(name={self.name!r}, project={self._project!r}, config={self._config!r})"

    # ----------------------------------------------------------------------------------------------- the stages

    def read(self, stage: Stage) -> StoredKey | None:
        """CURRENT as applications read it (plus the document's token when it holds that key); the rest from the
        stage document."""
        return self._projected.read(stage)

    def read_stages(self) -> dict[Stage, StoredKey]:
        """Every stage that holds a key, from one reading of the document and of the config (`backends.base`)."""
        return self._projected.read_stages()

    def put_pending(self, key: StoredKey) -> stages.Staged:
        """Stage `key` as PENDING under its token, in the document only: applications see nothing yet."""
        stages.require_token(key)
        self.check_show(key)
        return self._projected.put_pending(key, where=self._state_where, store=self.name)

    def promote(self, token: str) -> stages.Promotion:
        """PENDING(token) becomes CURRENT, the key applications read becomes PREVIOUS: the document, then the config."""
        return self._projected.promote(token, where=self._state_where, store=self.name)

    def restore_previous(self, token: str) -> stages.Rollback:
        """Rollback: PREVIOUS is written back to the secrets applications read (the document first)."""
        return self._projected.restore_previous(token, where=self._state_where, store=self.name)

    def clear_previous(self, token: str) -> stages.Cleared:
        """Forget PREVIOUS once its key is revoked; applications never read it, so only the document changes."""
        return self._projected.clear_previous(token)

    # ------------------------------------------------------------------------------------- before a rotation

    def check_writable(self) -> None:
        """Refuse a rotation before anything changes when the token cannot read the config (a 401, 403 or 404 says
        which); whether it may write is known only from a write, and a read-only service token is refused there."""
        self._api.list_secrets(self._config)
        if self._state_config != self._config:
            self._api.list_secrets(self._state_config)

    def check_access(self) -> list[Finding]:
        """`rotator plan` (backends.access.AccessChecked): the reads prove themselves (a bad token, project or config
        raises here, with its fix). Whether the token may WRITE is told by Doppler only in answer to a write, which a
        plan never makes: said as not checked, with what a rotation needs, never guessed from the token's prefix."""
        self.check_writable()
        configs = " and ".join(dict.fromkeys((self._config, self._state_config)))
        return [
            Finding(
                part=f"store {self.name} ({self.describe()})",
                problem=f"whether the token in ${self._token_env} may write secrets in config {configs}: Doppler "
                "tells only by refusing a write",
                fix="a service token (dp.st.…) needs read/write access to that config (Project > Config > Access); a "
                "personal token (dp.pt.…) writes what its user may",
                severity=Severity.UNCHECKED,
            )
        ]

    def check_unchanged(self, token: str) -> None:
        """Nothing is pinned in a Doppler config (no path that could be swapped for another)."""

    # -------------------------------------------------------------------------------- the two places (for Projected)

    def load_document(self) -> StageDocument:
        """The stage document (an empty one when the secret does not exist yet)."""
        secrets = self._api.list_secrets(self._state_config)
        self._document_seen = tuple(secrets)
        if self._state_config == self._config:
            self._app_seen = self._document_seen
        held = secrets.get(self._state_secret)
        if held is None or not held.raw:
            return self._remembered(StageDocument())
        try:
            raw = json.loads(held.raw)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self._state_where} is not JSON (line {exc.lineno} column {exc.colno}): put the document right, or "
                "delete that secret when no rotation is under way",
                store=self.name,
            ) from None
        return self._remembered(self._reader.parse(raw))

    def _remembered(self, document: StageDocument) -> StageDocument:
        """`document`, its keys kept: the secrets applications read may show one of them until the move in hand
        has shown its key (`show`)."""
        self._known = tuple(k for k in (document.current, document.pending, document.previous) if k is not None)
        return document

    def save_document(self, document: StageDocument) -> None:
        """Write the document as one secret's value (one update request, one new version of the config)."""
        text = json.dumps(document.to_dict(), separators=(",", ":"))
        self._api.update(self._state_config, {self._state_secret: text}, self._document_seen)
        if self._state_secret not in self._document_seen:
            self._document_seen = (*self._document_seen, self._state_secret)

    def shown(self) -> StoredKey:
        """The key applications read now: the config's secrets as `doppler run` injects them (computed)."""
        secrets = self._api.list_secrets(self._config)
        self._app_seen = tuple(secrets)
        return self._fields.key_from(_computed(secrets), self.describe())

    def check_show(self, key: StoredKey) -> None:
        """Refuse a key applications could not use (an empty key or secret)."""
        if not key.api_key or not key.api_secret.reveal():
            raise StoreError(f"{key.label} has an empty API key or secret; nothing was written", store=self.name)

    def show(self, key: StoredKey) -> bool:
        """Make applications read `key` (one update of our secrets; the others kept); False when they already do.

        Only over a key some stage held, or none: a key a person put there by hand is never overwritten."""
        self.check_show(key)
        secrets = self._api.list_secrets(self._config)
        self._app_seen = tuple(secrets)
        ours = self._fields.ours(_computed(secrets))
        present = {name: value for name, value in ours.items() if value is not None}
        wanted = self._fields.wanted(key, present)
        if wanted == present:
            return False
        self._check_may_write(key, present)
        values: dict[str, str | None] = {name: wanted.get(name) for name in {*present, *wanted}}
        self._api.update(self._config, values, self._app_seen)
        return True

    def _check_may_write(self, key: StoredKey, present: Mapping[str, object]) -> None:
        try:
            shown = self._fields.key_from(present, self.describe())
        except (StoreNotFound, StoreError):
            return  # no usable key there yet: nothing of anyone's is overwritten
        known = self._known
        self.load_document()
        if any(shown.same_key(k) for k in (*known, *self._known, key)):
            return
        raise StoreConflict(
            f"{self.describe()} shows {shown.label}, which no rotation of this store put there (someone set it by "
            "hand?), so it was not overwritten; applications keep reading it. If that key is right, nothing more is "
            "needed here; otherwise put the expected key there, then run `rotator resume`",
            store=self.name,
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._api.close()


def _field_map(
    store: str,
    prefix: str,
    fields: Sequence[str],
    field_names: Mapping[str, str] | None,
    environment: Environment | None,
    base_url: str | None,
) -> FieldMap:
    """The secrets applications read: `{prefix}API_KEY`... unless `field_names` renames them, each a Doppler name."""
    names = {field: f"{prefix}{field.upper()}" for field in FIELDS} | dict(field_names or {})
    for field, secret in names.items():
        _checked_name(store, f"the secret name of {field} (prefix, field_names)", secret, SECRET_NAME)
    return FieldMap(
        store,
        fields=fields,
        field_names=names,
        environment=environment,
        base_url=base_url,
        fix="set it in the Doppler dashboard or with `doppler secrets set`",
    )


def _computed(secrets: Mapping[str, DopplerSecret]) -> dict[str, str]:
    return {name: secret.computed for name, secret in secrets.items() if secret.computed is not None}


def _checked_name(store: str, option: str, value: object, pattern: re.Pattern[str]) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    rule = (
        "uppercase letters, digits and underscores, not starting with a digit"
        if pattern is SECRET_NAME
        else "a Doppler name (letters, digits, _ . -)"
    )
    raise ConfigError(f"store {store!r}: {option} must be {rule}")


def _token(store: str, token_env: str, environ: Mapping[str, str]) -> str:
    token = environ.get(token_env, "").strip() if isinstance(token_env, str) else ""
    if not token:
        raise ConfigError(
            f"store {store!r}: no Doppler token: set the environment variable {token_env} to a service token "
            "(dp.st.…, read/write on this config) or a personal token (dp.pt.…); a token is never written in "
            "rotator.toml (`token_env` names another variable)"
        )
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in token):
        raise ConfigError(f"store {store!r}: the token in {token_env} holds characters a token never has")
    return token


def _checked_url(store: str, url: object, allow_insecure_http: object) -> str:
    if not isinstance(allow_insecure_http, bool):
        raise ConfigError(f"store {store!r}: allow_insecure_http must be true or false")
    text = url.strip() if isinstance(url, str) else ""
    problem = url_problem(text, allow_plain_http=allow_insecure_http) if text else "is no URL"
    if problem is not None:
        raise ConfigError(
            f"store {store!r}: url {problem}. Fix: remove `url` (Doppler's API, {DEFAULT_API_URL}), or use https:// "
            "or a loopback address"
        )
    return text


def _seconds(store: str, value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not seconds > 0:
        raise ConfigError(f"store {store!r}: timeout must be a number of seconds, e.g. timeout = 10")
    return seconds


def _attempts(store: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"store {store!r}: max_attempts must be a whole number, 1 or more (e.g. max_attempts = 5)")
    return value
