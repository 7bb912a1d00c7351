"""rotator.toml: which credentials exist, where each one is deployed, and how often it rotates.

The file is read once and validated completely into frozen objects before anything touches Bluum or a
store, so a typo can never surface half-way through a rotation. Validation collects every problem it
finds and reports them together: whoever is fixing the file at 3 a.m. should not have to run the
command once per mistake. Each problem names the file, the key (`credentials.trading.grace`), what is
wrong and what to write instead. Values from the file are echoed only shortened, and store options
never: a secret pasted into the wrong place must not end up in a log.

Validation is written out by hand rather than with msgspec.convert: msgspec reports a table of tables as
`$.credentials[...]` (the credential's name is lost), stops at the first error, and its wording would
have to be rewritten with regular expressions to say what to do. Plain checks say it directly.

Cross-checks done here, so the engine can rely on them:
- every store, also_deploy_to and manager reference resolves; a store holds exactly one credential;
- I7 at the configuration level: a credential's base URL is never a host of the other environment, and
  its manager is a credential of the same environment;
- credentials never travel over plain HTTP, except to a loopback address (the local simulator);
- rotate_every is at most 90 days (Bluum's rule) and the overlap (grace) is shorter than it.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from rotator.durations import DURATION_HINT, InvalidDuration, format_duration, parse_duration
from rotator.errors import ConfigError
from rotator.model import DEFAULT_BASE_URLS, Environment
from rotator.notify_config import NOTIFICATION_EVENTS, AlertSettings, SnsSettings, parse_alerts, parse_events, parse_sns
from rotator.reload_config import RELOAD_KEY, ReloadAction, parse_reload

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_NAME",
    "BluumSettings",
    "Config",
    "ConfigProblems",
    "CredentialConfig",
    "Issuer",
    "StoreConfig",
    "find_config_path",
    "load_config",
    "parse_config",
    "parse_duration",
]

CONFIG_ENV_VAR: Final = "ROTATOR_CONFIG"
"""Environment variable naming the config file; wins over ./rotator.toml, loses to --config."""

DEFAULT_CONFIG_NAME: Final = "rotator.toml"
README_HINT: Final = "see README 'Configuration reference'"

Issuer = Literal["bluum", "manual"]
ISSUERS: Final[tuple[Issuer, ...]] = ("bluum", "manual")
_ISSUER_BY_NAME: Final[dict[str, Issuer]] = {issuer: issuer for issuer in ISSUERS}

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+")
"""Store and credential names: they become file names, lock names, metric labels and CLI arguments."""

INVESTOR_ID_PATTERN: Final = re.compile(r"inv_[0-9a-z]{26}")
"""Bluum's prefixed ids: `inv_` + 26 lowercase base32 characters (Crockford's alphabet is a subset)."""
INVESTOR_ID_EXAMPLE: Final = "inv_2ahq810t9rgmwgncgcawcm5400"

SANDBOX_HOSTS: Final = frozenset(
    {"sandbox.api.bluumfinance.com", "test-service.bluumfinance.com", "sandbox.api.bluum.finance"}
)
PRODUCTION_HOSTS: Final = frozenset({"api.bluumfinance.com", "service.bluumfinance.com", "api.bluum.finance"})
"""The three host generations Bluum's docs use (bluum-api.md §3). Any of them may be configured."""

DEFAULT_ROTATE_EVERY: Final = timedelta(days=90)
MAX_VERIFY_TIMEOUT: Final = timedelta(minutes=10)
"""A rotation polls up to verify_timeout before deploying, after deploying and after revoking; each wait renews the
lease (rotation.driver.LEASE_TTL_SECONDS, 15 min, renewed every third of it): 10 minutes keeps one poll's gap small."""
MAX_ROTATE_EVERY: Final = timedelta(days=90)
"""Bluum asks for rotation at least quarterly; a longer schedule would be out of policy from day one."""
DEFAULT_GRACE: Final = timedelta(hours=1)
DEFAULT_VERIFY_TIMEOUT: Final = timedelta(seconds=60)
DEFAULT_CHECK_PATH: Final = "/assets?asset_class=us_equity&tradable=true"
"""Bluum's own "test your credentials" call: read-only, cheap, and allowed for every key scope."""
DEFAULT_API_KEYS_PATH: Final = "/investors/{investor_id}/api-keys"
"""Where issuer "bluum" creates, lists and revokes keys. Configurable so a future tenant-key API needs no code."""

DEFAULT_TIMEOUT: Final = timedelta(seconds=10)
DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_RETRY_BUDGET: Final = timedelta(seconds=30)

FILE_PATH_STORE_TYPES: Final = frozenset({"env"})
"""Store types whose `path` option is a file, resolved against the config file's folder.

Only these: for other types `path` may mean something else entirely (a Vault KV path, for one), so
their options are passed through exactly as written.
"""

KNOWN_STORE_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "env": ("path", "prefix", "reader", "fields", "state_dir"),
        "vault": (
            "path",
            "mount",
            "state_path",
            "url",
            "namespace",
            "ca_cert",
            "timeout",
            "auth",
            "auth_mount",
            "role",
            "token_file",
            "role_id_file",
            "secret_id_file",
            "jwt_file",
            "aws_region",
            "aws_header_value",
            "fields",
            "field_names",
        ),
        "aws": ("secret_id", "region", "ledger_table", "fields", "field_names"),
    }
)
DEFAULT_STATE_DIR: Final = "rotator-state"
"""Where file stores keep their stages and record (secrets), relative to rotator.toml: the rotator's folder, never
the application's, so an application's `git add -A` or image build cannot pick the secrets up."""
"""Options of built-in store types, so a typo (`prefx`) is caught here with a suggestion instead of surfacing as a
TypeError when the store is built. Third-party types are not listed: their options pass through unchecked.
Keep in step with the constructors in backends/ (the engine supplies `name`, `environment` and `base_url`)."""

RESERVED_STORE_OPTIONS: Final = ("name",)
"""Keyword arguments the engine passes to every store factory itself: a store's name is its table's name."""

MINIMAL_EXAMPLE: Final = """\
    [stores.app]
    type = "env"
    path = "app.env"

    [credentials.app]
    environment = "sandbox"
    issuer = "manual"
    store = "app\""""

TOP_LEVEL_KEYS: Final = ("stores", "credentials", "bluum", "history", "notifications", "fleet", "alerts")
HISTORY_KEYS: Final = ("dir", "keep")
FLEET_KEYS: Final = ("concurrency", "per_payer")
DEFAULT_CONCURRENCY: Final = 16
"""Rotations in flight in one process, over every paying key."""
DEFAULT_PER_PAYER: Final = 12
"""Rotations in flight per paying key: enough to keep Bluum's 25 requests/s busy while each waits for propagation."""
MAX_CONCURRENCY: Final = 256
NOTIFICATION_KEYS: Final = ("type", "url", "secret_env", "format", "events", "timeout")
NOTIFICATION_TYPES: Final = ("webhook", "sns")
NOTIFICATION_FORMATS: Final = ("json", "slack")
DEFAULT_HISTORY_DIR: Final = "rotator-history"
DEFAULT_HISTORY_KEEP: Final = timedelta(days=400)
MIN_HISTORY_KEEP: Final = timedelta(days=30)
"""Bluum asks for at least 30 days of records (bluum-api.md §4)."""
CREDENTIAL_KEYS: Final = (
    "environment",
    "base_url",
    "issuer",
    "investor_id",
    "manager",
    "store",
    "also_deploy_to",
    "rotate_every",
    "grace",
    "verify_timeout",
    "check_path",
    "api_keys_path",
    "seeded_key_age",
)
SEEDED_KEY_AGES: Final = ("count", "due")
BLUUM_KEYS: Final = ("timeout", "max_attempts", "retry_budget", "rate_limit_sandbox", "rate_limit_production")


# --------------------------------------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """One `[stores.NAME]` table: a place that holds one credential.

    `options` is everything in the table except `type`, handed to the store factory as keyword arguments.
    For file-based types (FILE_PATH_STORE_TYPES) `path` is already an absolute `Path`, resolved against the
    config file's folder, so the daemon and the Lambda find the same file whatever their working directory.
    """

    name: str
    type: str
    options: Mapping[str, Any]
    reload: tuple[ReloadAction, ...] = ()
    """What makes the applications reading this store load a new key (rotator/reload_config.py); never an option."""


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    """One `[credentials.NAME]` table: a key pair, who mints it, and where it is deployed."""

    name: str
    environment: Environment
    base_url: str
    """No trailing slash; ends in /v1 for Bluum's own hosts."""
    issuer: Issuer
    investor_id: str | None
    """Set exactly when issuer is "bluum": whose investor-scoped key this is."""
    manager: str | None
    """Set exactly when issuer is "bluum": the credential (of the same environment) that creates/revokes."""
    store: str
    """The primary store: it also holds the rotation record and the lock."""
    also_deploy_to: tuple[str, ...]
    rotate_every: timedelta
    grace: timedelta
    verify_timeout: timedelta
    check_path: str
    """Read-only path, relative to base_url, that a working key answers with 200."""
    api_keys_path: str = DEFAULT_API_KEYS_PATH
    """Relative to base_url; `{investor_id}` is filled in. Used by issuer "bluum" only."""
    seeded_key_age: str = "count"
    """A key seeded by hand (never rotated here): "count" its age from Bluum's creation time, or from when the
    rotator first saw it; "due" rotates it at the first scheduled run."""

    @property
    def targets(self) -> tuple[str, ...]:
        """Every store the key is deployed to, primary first."""
        return (self.store, *self.also_deploy_to)


@dataclass(frozen=True, slots=True)
class BluumSettings:
    """The optional `[bluum]` table: HTTP client behaviour shared by every credential."""

    timeout: float = DEFAULT_TIMEOUT.total_seconds()
    """Seconds per HTTP request."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Tries per call, the first one included, for retryable failures (429, 5xx, network)."""
    retry_budget: float = DEFAULT_RETRY_BUDGET.total_seconds()
    """Seconds all retries of one call may take together, waits included."""
    rate_limits: Mapping[Environment, float] = field(
        default_factory=lambda: MappingProxyType({env: env.default_rate_limit for env in Environment})
    )
    """Requests per second per key pair that we allow ourselves (Bluum: 10 sandbox, 25 production)."""


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """The optional `[history]` table: where each credential's append-only rotation history is kept, and how long."""

    dir: Path
    keep: timedelta = DEFAULT_HISTORY_KEEP


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """The optional `[fleet]` table: how many rotations one process keeps in flight (`rotate --all`, `run-due`,
    `resume`, the daemon), over all, and per key that pays for them (a manager key's rate budget is shared)."""

    concurrency: int = DEFAULT_CONCURRENCY
    per_payer: int = DEFAULT_PER_PAYER


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """One `[notifications.NAME]` table: a webhook told about rotations, signed with a secret from the environment."""

    name: str
    url: str
    secret_env: str
    """The environment variable holding the HMAC key (the key itself never sits in rotator.toml)."""
    format: str = "json"
    events: tuple[str, ...] = NOTIFICATION_EVENTS
    timeout: timedelta = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated file. Mappings keep the file's order and are read-only."""

    path: Path | None
    """The file it came from (absolute), or None when parsed from text."""
    stores: Mapping[str, StoreConfig]
    credentials: Mapping[str, CredentialConfig]
    bluum: BluumSettings
    history: HistorySettings
    source: str = DEFAULT_CONFIG_NAME
    """How messages name the file."""
    notifications: tuple[WebhookSettings | SnsSettings, ...] = ()
    fleet: FleetSettings = FleetSettings()
    _store_owners: Mapping[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def credential(self, name: str) -> CredentialConfig:
        """The credential called `name`; ConfigError listing the known ones (and a near match) otherwise."""
        try:
            return self.credentials[name]
        except KeyError:
            raise ConfigError(
                f"{self.source}: there is no credential {_show(name)}{_did_you_mean(name, self.credentials)}. "
                f"Fix: use one of: {_names(self.credentials)}; or add [credentials.{name}] to {self.source}."
            ) from None

    def store(self, name: str) -> StoreConfig:
        """The store called `name`; ConfigError listing the known ones otherwise."""
        try:
            return self.stores[name]
        except KeyError:
            raise ConfigError(
                f"{self.source}: there is no store {_show(name)}{_did_you_mean(name, self.stores)}. "
                f"Fix: use one of: {_names(self.stores)}; or add [stores.{name}] to {self.source}."
            ) from None

    def credential_for_store(self, store: str) -> CredentialConfig | None:
        """The credential deployed to `store` (validation guarantees at most one), if any."""
        name = self._store_owners.get(store)
        return None if name is None else self.credentials[name]

    def __post_init__(self) -> None:
        # An index, not a scan: each revoke asks this for every store, so a scan made a fleet quadratic.
        owners = {target: cred.name for cred in reversed(list(self.credentials.values())) for target in cred.targets}
        object.__setattr__(self, "_store_owners", MappingProxyType(owners))


class ConfigProblems(ConfigError):
    """A config file with one or more problems; `problems` holds each one as a line, for `status`/CI checks."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{source} has {len(self.problems)} problems:\n{lines}"
        super().__init__(message)


# --------------------------------------------------------------------------------------------- finding


def find_config_path(explicit: str | None, environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Path:
    """The config file to use: --config, then $ROTATOR_CONFIG, then ./rotator.toml. Returns an absolute path.

    A place that is given but wrong is an error rather than a reason to look further: falling through
    from a mistyped --config to ./rotator.toml could rotate the wrong environment's keys.
    """
    base = cwd if cwd is not None else Path.cwd()
    if explicit:
        candidate = _absolute(explicit, base)
        problem = _not_a_file(candidate)
        if problem is None:
            return candidate
        raise ConfigError(
            f"--config {explicit}: {candidate} {problem}. Fix: pass the path of an existing {DEFAULT_CONFIG_NAME} "
            f"(relative paths start at {base})."
        )
    from_env = environ.get(CONFIG_ENV_VAR, "").strip()
    if from_env:
        candidate = _absolute(from_env, base)
        problem = _not_a_file(candidate)
        if problem is None:
            return candidate
        raise ConfigError(
            f"${CONFIG_ENV_VAR}={from_env}: {candidate} {problem}. Fix: point {CONFIG_ENV_VAR} at an existing file, "
            f"or unset it to use ./{DEFAULT_CONFIG_NAME}."
        )
    default = base / DEFAULT_CONFIG_NAME
    problem = _not_a_file(default)
    if problem is None:
        return default
    raise ConfigError(
        f"no configuration file found. Looked at: --config (not given), ${CONFIG_ENV_VAR} (not set), "
        f"{default} ({problem}). Fix: create {default}, set {CONFIG_ENV_VAR}=/path/to/{DEFAULT_CONFIG_NAME}, "
        f"or pass --config PATH; {README_HINT}."
    )


def _absolute(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _not_a_file(path: Path) -> str | None:
    """Why `path` cannot be read as the config file, or None when it can be."""
    if path.is_file():
        return None
    if path.is_dir():
        return "is a directory"
    if path.exists():
        return "is not a regular file"
    return "does not exist"


# --------------------------------------------------------------------------------------------- loading


def load_config(path: Path, *, store_types: Collection[str] | None = None) -> Config:
    """Read and validate the file at `path`. Store paths are resolved against its folder."""
    absolute = path.expanduser().absolute()
    source = str(absolute)
    try:
        raw = absolute.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file. Fix: create it, or pass --config / set {CONFIG_ENV_VAR}.") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory. Fix: pass the path of the file itself.") from None
    except PermissionError:
        raise ConfigError(
            f"{source}: permission denied. Fix: run as a user that can read it (check its owner and mode)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror}). Fix: check the file and the disk.") from exc
    try:
        text = raw.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some Windows editors add
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: is not UTF-8 text (bad byte at offset {exc.start}). Fix: save the file as UTF-8."
        ) from None
    return _parse(text, source=source, base_dir=absolute.parent, path=absolute, store_types=store_types)


def parse_config(
    text: str,
    *,
    base_dir: Path,
    source: str = DEFAULT_CONFIG_NAME,
    store_types: Collection[str] | None = None,
) -> Config:
    """Validate TOML `text`; relative paths in it (stores, history) are read from `base_dir`.

    `base_dir` has no default on purpose: a default of the working folder once let a test write its history
    into the checkout. `store_types` defaults to the names registered under `rotator.backends`.
    """
    return _parse(text, source=source, base_dir=base_dir, path=None, store_types=store_types)


def _parse(text: str, *, source: str, base_dir: Path, path: Path | None, store_types: Collection[str] | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid TOML ({_toml_position(str(exc))}). Fix the syntax; {README_HINT}."
        ) from None
    if store_types is None:
        from backends.base import load_store_factories  # entry-point scan: only when a file is really loaded

        store_types = tuple(load_store_factories())
    problems = _Problems()
    root = _Table(data, "", problems)
    root.check_keys(TOP_LEVEL_KEYS)
    bluum = _parse_bluum(data.get("bluum"), problems)
    history = _parse_history(data.get("history"), base_dir, problems)
    stores = _parse_stores(data.get("stores"), base_dir=base_dir, store_types=store_types, problems=problems)
    credentials = _parse_credentials(data, problems)
    notifications = _parse_notifications(data.get("notifications"), problems)
    fleet = _parse_fleet(data.get("fleet"), problems)
    alerts = _parse_alerts(data.get("alerts"), problems)
    if problems.items or bluum is None or history is None or fleet is None:
        raise ConfigProblems(source, problems.items)
    return Config(
        path=path,
        stores=MappingProxyType(stores),
        credentials=MappingProxyType(credentials),
        bluum=bluum,
        history=history,
        source=source,
        notifications=notifications,
        fleet=fleet,
        alerts=alerts,
    )


def _toml_position(message: str) -> str:
    """tomllib says "Invalid value (at line 3, column 9)"; we lead with the position, where eyes go first."""
    match = re.fullmatch(r"(?s)(.*?)\s*\(at (line \d+, column \d+|end of document)\)", message)
    if match is None:
        return message
    what, where = match.groups()
    return f"{where}: {what}"


# --------------------------------------------------------------------------------------------- helpers


class _Problems:
    """Collects problems as "key.path: what is wrong. Fix: what to do." lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str, fix: str) -> None:
        self.items.append(f"{where or 'top level'}: {what.removesuffix('.')}. Fix: {fix.removesuffix('.')}.")


_MISSING: Final = object()


class _Table:
    """One TOML table plus its key path, with typed getters that record a problem instead of raising."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: _Problems) -> None:
        self.data = data
        self.where = where
        self.problems = problems

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data

    def problem(self, key: str, what: str, fix: str) -> None:
        self.problems.add(self.key(key), what, fix)

    def check_keys(self, known: Collection[str]) -> None:
        for key in self.data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.add(
                self.where,
                f"unknown key {_show(key)}{hint}",
                f"rename or remove it. Known keys: {', '.join(known)}",
            )

    def text(self, key: str, *, example: str, required: bool = False, why: str = "") -> str | None:
        """A string value; None when absent or wrong (a problem is recorded when wrong or required)."""
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.problem(key, f"missing{why}", f"add {key} = {example}")
            return None
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {_toml_type(value)} {_show(value)}", f"write {key} = {example}")
            return None
        if not value.strip():
            self.problem(key, "is empty", f"write {key} = {example}")
            return None
        return value

    def duration(self, key: str, default: timedelta) -> timedelta | None:
        """A duration string like "90d"; the default when absent; None (problem recorded) when junk."""
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.problem(
                key,
                f"expected a duration in quotes with a unit, got the bare number {value!r}",
                f'write {key} = "{value}s" for seconds, or {DURATION_HINT}',
            )
            return None
        if not isinstance(value, str):
            self.problem(key, f"expected a duration string, got {_toml_type(value)}", DURATION_HINT)
            return None
        try:
            return parse_duration(value)
        except InvalidDuration as exc:
            self.problem(key, exc.reason, DURATION_HINT)
            return None

    def positive_number(self, key: str, default: float, *, example: str) -> float | None:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {_toml_type(value)} {_show(value)}", f"write {key} = {example}")
            return None
        if not value > 0:  # also rejects nan
            self.problem(key, f"must be greater than 0, got {value!r}", f"write {key} = {example}")
            return None
        return float(value)

    def count(self, key: str, default: int, *, limit: int, example: str) -> int | None:
        """A whole number from 1 to `limit`; the default when absent; None (problem recorded) otherwise."""
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            got = f"{_toml_type(value)} {_show(value)}"
            self.problem(key, f"expected an integer, got {got}", f"write {key} = {example}")
            return None
        if not 1 <= value <= limit:
            self.problem(key, f"must be from 1 to {limit}, got {value}", f"write {key} = {example}")
            return None
        return value

    def string_list(self, key: str, *, example: str) -> tuple[str, ...] | None:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(
                key,
                f"expected an array of names, got {_toml_type(value)} {_show(value)}",
                f"write {key} = {example} (or [] for none)",
            )
            return None
        return tuple(cast(list[str], value))


def _toml_type(value: object) -> str:
    """The TOML word for a parsed value's type, since that is what the person wrote."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime | date | time):
        return "date/time"
    return type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    """A short repr for messages: enough to recognise a typo, too short to carry a pasted secret whole."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 10]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(names: Iterable[str]) -> str:
    listed = ", ".join(names)
    return listed or "(none)"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_name(kind: str, name: str, problems: _Problems) -> bool:
    if NAME_PATTERN.fullmatch(name):
        return True
    problems.add(
        f"{kind}.{name!r}" if name else f'{kind}.""',
        f"{_show(name) if name else 'an empty name'} is not a valid {kind[:-1]} name",
        "use only letters, digits, '-' and '_' (names become file names, lock names and CLI arguments)",
    )
    return False


def _tables(value: object, kind: str, problems: _Problems) -> dict[str, Mapping[str, Any]]:
    """The valid `[kind.NAME]` sub-tables of `value`, with a problem for each one that is not a table."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(kind, f"expected tables like [{kind}.NAME], got {_toml_type(value)}", f"write [{kind}.NAME]")
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for name, table in value.items():
        if not _check_name(kind, name, problems):
            continue
        if not isinstance(table, dict):
            problems.add(
                f"{kind}.{name}",
                f"expected a table, got {_toml_type(table)}",
                f"write a [{kind}.{name}] table with its keys on the lines below",
            )
            continue
        found[name] = table
    return found


# --------------------------------------------------------------------------------------------- [bluum]


def _parse_bluum(value: object, problems: _Problems) -> BluumSettings | None:
    if value is None:
        return BluumSettings()
    if not isinstance(value, dict):
        problems.add("bluum", f"expected a table, got {_toml_type(value)}", "write a [bluum] table, or remove it")
        return None
    table = _Table(value, "bluum", problems)
    table.check_keys(BLUUM_KEYS)
    timeout = table.duration("timeout", DEFAULT_TIMEOUT)
    if timeout is not None and timeout <= timedelta(0):
        table.problem("timeout", "must be longer than 0s", 'write timeout = "10s"')
        timeout = None
    retry_budget = table.duration("retry_budget", DEFAULT_RETRY_BUDGET)
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    raw_attempts = value.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(raw_attempts, bool) or not isinstance(raw_attempts, int):
        table.problem(
            "max_attempts",
            f"expected an integer, got {_toml_type(raw_attempts)} {_show(raw_attempts)}",
            "write max_attempts = 5",
        )
        max_attempts = None
    elif raw_attempts < 1:
        table.problem(
            "max_attempts",
            f"must be at least 1 (the first try counts), got {raw_attempts}",
            "write max_attempts = 5 (or 1 for no retries)",
        )
        max_attempts = None
    else:
        max_attempts = raw_attempts
    sandbox = table.positive_number("rate_limit_sandbox", Environment.SANDBOX.default_rate_limit, example="10")
    production = table.positive_number("rate_limit_production", Environment.PRODUCTION.default_rate_limit, example="25")
    if timeout is None or retry_budget is None or max_attempts is None or sandbox is None or production is None:
        return None
    return BluumSettings(
        timeout=timeout.total_seconds(),
        max_attempts=max_attempts,
        retry_budget=retry_budget.total_seconds(),
        rate_limits=MappingProxyType({Environment.SANDBOX: sandbox, Environment.PRODUCTION: production}),
    )


def _parse_history(value: object, base_dir: Path, problems: _Problems) -> HistorySettings | None:
    if value is None:
        return HistorySettings(dir=base_dir / DEFAULT_HISTORY_DIR)
    if not isinstance(value, dict):
        problems.add("history", f"expected a table, got {_toml_type(value)}", "write a [history] table, or remove it")
        return None
    table = _Table(value, "history", problems)
    table.check_keys(HISTORY_KEYS)
    folder = table.text("dir", example='"/var/lib/bluum-rotator/history"')
    keep = table.duration("keep", DEFAULT_HISTORY_KEEP)
    if keep is not None and keep < MIN_HISTORY_KEEP:
        table.problem(
            "keep", f"must be at least {MIN_HISTORY_KEEP.days}d (Bluum asks for 30 days)", 'write keep = "400d"'
        )
        keep = None
    if keep is None or (table.has("dir") and folder is None):
        return None
    return HistorySettings(dir=_absolute(folder, base_dir) if folder else base_dir / DEFAULT_HISTORY_DIR, keep=keep)


def _parse_fleet(value: object, problems: _Problems) -> FleetSettings | None:
    if value is None:
        return FleetSettings()
    if not isinstance(value, dict):
        problems.add("fleet", f"expected a table, got {_toml_type(value)}", "write a [fleet] table, or remove it")
        return None
    table = _Table(value, "fleet", problems)
    table.check_keys(FLEET_KEYS)
    concurrency = table.count("concurrency", DEFAULT_CONCURRENCY, limit=MAX_CONCURRENCY, example="16")
    per_payer = table.count("per_payer", DEFAULT_PER_PAYER, limit=MAX_CONCURRENCY, example="12")
    if concurrency is None or per_payer is None:
        return None
    return FleetSettings(concurrency=concurrency, per_payer=per_payer)


# --------------------------------------------------------------------------------------------- [notifications]


def _parse_notifications(value: object, problems: _Problems) -> tuple[WebhookSettings | SnsSettings, ...]:
    hooks: list[WebhookSettings | SnsSettings] = []
    for name, raw in _tables(value, "notifications", problems).items():
        table = _Table(raw, f"notifications.{name}", problems)
        kind = raw.get("type", "webhook")
        if kind not in NOTIFICATION_TYPES:
            table.problem("type", f"{_show(kind)} is not one of {', '.join(NOTIFICATION_TYPES)}", 'write "webhook"')
            continue
        if kind == "sns":  # rotator/notify_config.py
            if (sns := parse_sns(table, name)) is not None:
                hooks.append(sns)
            continue
        table.check_keys(NOTIFICATION_KEYS)
        url = table.text("url", example='"https://hooks.example.com/bluum"', required=True, why=" (where to POST)")
        secret_env = table.text(
            "secret_env", example='"ROTATOR_WEBHOOK_SECRET"', required=True, why=" (the variable holding the HMAC key)"
        )
        form = table.text("format", example='"json"') or "json"
        timeout = table.duration("timeout", timedelta(seconds=5))
        events = parse_events(table)
        if url is not None and not _webhook_url_ok(url):
            table.problem("url", f"{_show(url)} is not an https URL", "use https:// (http only to 127.0.0.1)")
            url = None
        if form not in NOTIFICATION_FORMATS:
            table.problem("format", f"{_show(form)} is not one of {', '.join(NOTIFICATION_FORMATS)}", 'write "json"')
            form = ""
        if url and secret_env and form and timeout is not None and events is not None:
            hooks.append(WebhookSettings(name, url, secret_env, form, events, timeout))
    return tuple(hooks)


def _parse_alerts(value: object, problems: _Problems) -> AlertSettings:
    """The `[alerts]` table (rotator/notify_config.py); its defaults when absent or wrong (a wrong one is a problem)."""
    if value is None:
        return AlertSettings()
    if not isinstance(value, dict):
        problems.add("alerts", f"expected a table, got {_toml_type(value)}", "write an [alerts] table, or remove it")
        return AlertSettings()
    return parse_alerts(_Table(value, "alerts", problems)) or AlertSettings()


def _webhook_url_ok(url: str) -> bool:
    """https anywhere; plain http only to this machine (a receiver beside the rotator, or a test)."""
    return url.startswith("https://") or url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


# --------------------------------------------------------------------------------------------- [stores]


def _parse_stores(
    value: object, *, base_dir: Path, store_types: Collection[str], problems: _Problems
) -> dict[str, StoreConfig]:
    stores: dict[str, StoreConfig] = {}
    known_types = sorted(store_types)
    for name, raw in _tables(value, "stores", problems).items():
        table = _Table(raw, f"stores.{name}", problems)
        store_type = table.text(
            "type",
            example=f'"{known_types[0] if known_types else "env"}"',
            required=True,
            why=" (which kind of store this is)",
        )
        if store_type is None:
            continue
        if store_type not in store_types:
            table.problem(
                "type",
                f"unknown store type {_show(store_type)}{_did_you_mean(store_type, known_types)}",
                f"use one of the installed types: {_names(known_types)}; a third-party store must be installed "
                "in this environment and register itself under the 'rotator.backends' entry-point group",
            )
            continue
        known_options = KNOWN_STORE_OPTIONS.get(store_type)
        if known_options is not None:
            before = len(problems.items)
            table.check_keys(("type", *known_options, RELOAD_KEY))
            if len(problems.items) > before:
                continue
        reserved = [key for key in RESERVED_STORE_OPTIONS if key in raw]
        for key in reserved:
            table.problem(key, "is reserved: a store is named by its table, [stores.NAME]", f"remove {key}")
        if reserved:
            continue
        reload = parse_reload(table, base_dir)
        if reload is None:
            continue
        options = {key: option for key, option in raw.items() if key not in ("type", RELOAD_KEY)}
        if store_type in FILE_PATH_STORE_TYPES:
            file_path = table.text("path", example=f'"{name}.env"', required=True, why=" (the file this store writes)")
            if file_path is None:
                continue
            resolved = Path(file_path).expanduser()
            options["path"] = resolved if resolved.is_absolute() else (base_dir / resolved).absolute()
            state_dir = table.text("state_dir", example='"/var/lib/bluum-rotator"') if "state_dir" in raw else None
            if "state_dir" in raw and state_dir is None:
                continue
            state = Path(state_dir or DEFAULT_STATE_DIR).expanduser()
            options["state_dir"] = state if state.is_absolute() else (base_dir / state).absolute()
        if store_type == "env" and "prefix" in raw:
            prefix = raw["prefix"]
            if not isinstance(prefix, str) or (prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix)):
                table.problem(
                    "prefix",
                    f"{_show(prefix)} cannot start an environment variable name",
                    'use letters, digits and "_", not starting with a digit, e.g. prefix = "BLUUM_" (or "" for none)',
                )
                continue
        stores[name] = StoreConfig(name=name, type=store_type, options=MappingProxyType(options), reload=reload)
    _check_same_location(stores, problems)
    return stores


def _check_same_location(stores: Mapping[str, StoreConfig], problems: _Problems) -> None:
    """Two store tables naming one place would hold two credentials in one spot: a store holds one key."""
    seen: dict[str, str] = {}
    for store in stores.values():
        for location in _locations(store):
            earlier = seen.get(location)
            if earlier is None or earlier == store.name:
                seen[location] = store.name
                continue
            same = {"env": "the same file", "vault": "the same Vault secret"}.get(
                store.type, "the same type and options"
            )
            problems.add(
                f"stores.{store.name}",
                f"points at the same place as stores.{earlier} ({same})",
                "give each store its own location (env stores: their own file, since the stage sidecar and the lock "
                "are kept per file; Vault stores: their own path and state_path)",
            )
            break


_SAME_PLACE: Final = {"env": "the same file", "vault": "the same Vault secret"}


def _locations(store: StoreConfig) -> list[str]:
    """What identifies where a store writes. An env store's sidecar and lock are per file, whatever the prefix; a
    Vault store writes two KV secrets (the path applications read and its stage document), at the address it would
    use (`url`, else VAULT_ADDR)."""
    options = store.options
    if store.type in FILE_PATH_STORE_TYPES:
        return [f"{store.type}:{options.get('path')}"]
    if store.type == "vault":
        address = str(options.get("url") or os.environ.get("VAULT_ADDR", "")).strip().rstrip("/").lower()
        namespace = str(options.get("namespace") or os.environ.get("VAULT_NAMESPACE", "")).strip("/")
        mount = str(options.get("mount") or "secret").strip("/")
        path = str(options.get("path", "")).strip("/")
        state_path = str(options.get("state_path") or f"bluum-rotator/{path}").strip("/")
        return [f"vault:{address}|{namespace}|{mount}|{where}" for where in (path, state_path)]
    return [f"{store.type}:{sorted((key, repr(value)) for key, value in options.items())!r}"]


# --------------------------------------------------------------------------------------------- [credentials]


@dataclass(slots=True)
class _Draft:
    """A credential's fields as far as they parsed; turned into a CredentialConfig only when all is well."""

    name: str
    environment: Environment | None = None
    base_url: str | None = None
    issuer: Issuer | None = None
    investor_id: str | None = None
    manager: str | None = None
    store: str | None = None
    also_deploy_to: tuple[str, ...] | None = ()
    rotate_every: timedelta | None = None
    grace: timedelta | None = None
    verify_timeout: timedelta | None = None
    check_path: str | None = None
    api_keys_path: str | None = None
    seeded_key_age: str = "count"

    def finish(self) -> CredentialConfig:
        if (
            self.environment is None
            or self.base_url is None
            or self.issuer is None
            or self.store is None
            or self.also_deploy_to is None
            or self.rotate_every is None
            or self.grace is None
            or self.verify_timeout is None
            or self.check_path is None
            or self.api_keys_path is None
        ):
            raise AssertionError(f"credential {self.name!r} built with a field missing but no problem recorded")
        return CredentialConfig(
            name=self.name,
            environment=self.environment,
            base_url=self.base_url,
            issuer=self.issuer,
            investor_id=self.investor_id,
            manager=self.manager,
            store=self.store,
            also_deploy_to=self.also_deploy_to,
            rotate_every=self.rotate_every,
            grace=self.grace,
            verify_timeout=self.verify_timeout,
            check_path=self.check_path,
            api_keys_path=self.api_keys_path,
            seeded_key_age=self.seeded_key_age,
        )


_ENVIRONMENT_NAMES: Final = frozenset(env.value for env in Environment)
_ENVIRONMENT_ALIASES: Final = {
    "prod": "production",
    "live": "production",
    "test": "sandbox",
    "sand": "sandbox",
}


def _parse_credentials(data: Mapping[str, Any], problems: _Problems) -> dict[str, CredentialConfig]:
    """Each credential on its own, then the references between them and to stores.

    References are checked against every name the file defines, even a table that has problems of its own, so
    one mistake is reported once rather than again at each place that mentions it.
    """
    raw_credentials = data.get("credentials")
    if raw_credentials is None or raw_credentials == {}:
        problems.add(
            "credentials",
            "no credentials are defined, so there is nothing to rotate",
            f"add at least one [credentials.NAME] table and the store it lives in, e.g.\n{MINIMAL_EXAMPLE}\n"
            f"({README_HINT})",
        )
        return {}
    tables = _tables(raw_credentials, "credentials", problems)
    raw_stores = data.get("stores")
    store_names = list(raw_stores) if isinstance(raw_stores, dict) else []
    drafts = {name: _parse_credential(name, raw, store_names, problems) for name, raw in tables.items()}
    all_credential_names = list(raw_credentials) if isinstance(raw_credentials, dict) else []
    for draft in drafts.values():
        _check_manager(draft, drafts, all_credential_names, problems)
    _check_store_sharing(drafts, problems)
    if problems.items:
        return {}
    return {name: draft.finish() for name, draft in drafts.items()}


def _parse_credential(name: str, raw: Mapping[str, Any], store_names: list[str], problems: _Problems) -> _Draft:
    where = f"credentials.{name}"
    table = _Table(raw, where, problems)
    table.check_keys(CREDENTIAL_KEYS)
    draft = _Draft(name=name)

    environment = table.text(
        "environment",
        example='"sandbox" or "production"',
        required=True,
        why=" (which Bluum environment this key belongs to)",
    )
    if environment is not None:
        try:
            draft.environment = Environment(environment)
        except ValueError:
            guess = _ENVIRONMENT_ALIASES.get(environment.strip().lower())
            guess = guess or (
                environment.strip().lower() if environment.strip().lower() in _ENVIRONMENT_NAMES else None
            )
            hint = f' (did you mean "{guess}"?)' if guess else ""
            table.problem(
                "environment",
                f"expected sandbox or production, got {_show(environment)}{hint}",
                f'write environment = "{guess or "sandbox"}"' + ("" if guess else ' or environment = "production"'),
            )

    issuer = table.text(
        "issuer",
        example='"bluum" or "manual"',
        required=True,
        why=' ("bluum" mints keys through the API, "manual" means a person does)',
    )
    if issuer is not None:
        draft.issuer = _ISSUER_BY_NAME.get(issuer)
        if draft.issuer is None:
            table.problem(
                "issuer",
                f"expected bluum or manual, got {_show(issuer)}{_did_you_mean(issuer, ISSUERS)}",
                'write issuer = "bluum" (investor-scoped keys, made through the API) or issuer = "manual" '
                "(keys made by a person in Bluum's dashboard, such as tenant keys)",
            )

    investor_id = table.text("investor_id", example=f'"{INVESTOR_ID_EXAMPLE}"')
    if investor_id is not None:
        if INVESTOR_ID_PATTERN.fullmatch(investor_id):
            draft.investor_id = investor_id
        else:
            lower = " (Bluum's ids are lowercase)" if INVESTOR_ID_PATTERN.fullmatch(investor_id.lower()) else ""
            table.problem(
                "investor_id",
                f"{_show(investor_id)} is not a Bluum investor id: expected inv_ followed by 26 lowercase "
                f"letters and digits{lower}",
                f'copy the id from Bluum (GET /v1/investors), e.g. investor_id = "{INVESTOR_ID_EXAMPLE}"',
            )
    manager = table.text("manager", example='"tenant"')
    draft.manager = manager

    if draft.issuer == "bluum":
        if not table.has("investor_id"):
            table.problem(
                "investor_id",
                'missing: issuer "bluum" needs the investor whose investor-scoped key this is',
                f'add investor_id = "{INVESTOR_ID_EXAMPLE}" (your investor\'s id), or set issuer = "manual" '
                "if a person makes this key in Bluum's dashboard",
            )
        if not table.has("manager"):
            table.problem(
                "manager",
                'missing: issuer "bluum" needs the credential (a tenant key) whose key creates and revokes this one',
                'add manager = "NAME" naming that [credentials.NAME] table, or set issuer = "manual"',
            )
    elif draft.issuer == "manual":
        for key in ("investor_id", "manager"):
            if table.has(key):
                table.problem(
                    key,
                    'is only used with issuer "bluum"; with issuer "manual" it would be ignored',
                    f'remove {key}, or set issuer = "bluum" if Bluum\'s API should make this key',
                )

    _parse_base_url(table, draft)
    _parse_targets(table, draft, store_names)
    _parse_timing(table, draft)
    _parse_paths(table, draft)
    seeded = table.text("seeded_key_age", example='"count"')
    if seeded is not None and seeded not in SEEDED_KEY_AGES:
        table.problem(
            "seeded_key_age",
            f"must be one of {', '.join(SEEDED_KEY_AGES)}, not {_show(seeded)}",
            'write seeded_key_age = "count" (age from Bluum, or from first seen) or "due" (rotate at the next run)',
        )
    elif seeded is not None:
        draft.seeded_key_age = seeded
    return draft


def _parse_base_url(table: _Table, draft: _Draft) -> None:
    """I7 at configuration time: the base URL must belong to the credential's environment (or be loopback)."""
    url = table.text("base_url", example='"https://api.bluumfinance.com/v1"')
    if url is None:
        if not table.has("base_url") and draft.environment is not None:
            draft.base_url = DEFAULT_BASE_URLS[draft.environment]
        return
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None:
        # Do not echo the URL: the part before '@' may be a key or secret.
        table.problem(
            "base_url",
            "contains a user name or password before '@'",
            "remove it; the key pair lives in the credential's stores, never in rotator.toml",
        )
        return
    if scheme not in ("http", "https") or not parts.hostname:
        table.problem(
            "base_url",
            f"{_show(url, 60)} is not an http(s) URL",
            'write a full URL such as base_url = "https://sandbox.api.bluumfinance.com/v1"',
        )
        return
    if parts.query or parts.fragment:
        table.problem(
            "base_url",
            "must not have a query (?...) or fragment (#...)",
            "put the query in check_path instead, and end base_url with /v1",
        )
        return
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        table.problem("base_url", f"{_show(url, 60)} has an invalid port", "use a port number between 1 and 65535")
        return
    host = parts.hostname.rstrip(".").lower()
    env = draft.environment
    if env is Environment.PRODUCTION and host in SANDBOX_HOSTS:
        table.problem(
            "base_url",
            f"{host} is Bluum's sandbox, but this credential's environment is production: a sandbox URL must never "
            "be used where a production key belongs (I7)",
            f'use base_url = "{DEFAULT_BASE_URLS[Environment.PRODUCTION]}" (or remove base_url for the default), '
            'or set environment = "sandbox" if this really is a sandbox key',
        )
        return
    if env is Environment.SANDBOX and host in PRODUCTION_HOSTS:
        table.problem(
            "base_url",
            f"{host} is Bluum's production, but this credential's environment is sandbox: a production URL must "
            "never be used where a sandbox key belongs (I7)",
            f'use base_url = "{DEFAULT_BASE_URLS[Environment.SANDBOX]}" (or remove base_url for the default), '
            'or set environment = "production" if this really is a production key',
        )
        return
    if scheme != "https" and not _is_loopback(host):
        table.problem(
            "base_url",
            f"uses plain http to {host}: the API key and secret would cross the network unencrypted",
            "use https://, or a loopback address (127.0.0.1, localhost, [::1]) for the local simulator",
        )
        return
    if (host in SANDBOX_HOSTS or host in PRODUCTION_HOSTS) and parts.path.rstrip("/") != "/v1":
        table.problem(
            "base_url",
            f"Bluum serves its API under /v1, but this URL's path is {parts.path or '/'!r}",
            f'write base_url = "{scheme}://{parts.netloc}/v1"',
        )
        return
    draft.base_url = url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_targets(table: _Table, draft: _Draft, store_names: list[str]) -> None:
    defined = f"defined stores: {_names(store_names)}" if store_names else "no [stores.NAME] table is defined yet"
    store = table.text(
        "store", example='"NAME"', required=True, why=" (the primary store: it holds this key and the rotation record)"
    )
    if store is not None:
        if store in store_names:
            draft.store = store
        else:
            table.problem(
                "store",
                f"no store is called {_show(store)}{_did_you_mean(store, store_names)}",
                f"name one of the [stores.NAME] tables ({defined}), or add [stores.{store}]",
            )
    also = table.string_list("also_deploy_to", example='["NAME", ...]')
    if also is None:
        draft.also_deploy_to = None
        return
    unknown = [name for name in also if name not in store_names]
    for name in unknown:
        table.problem(
            "also_deploy_to",
            f"no store is called {_show(name)}{_did_you_mean(name, store_names)}",
            f"name [stores.NAME] tables only ({defined}), or add [stores.{name}]",
        )
    targets = [store, *also] if store is not None else list(also)
    repeated = sorted({name for name in targets if targets.count(name) > 1})
    for name in repeated:
        what = "is the primary store and is listed again" if name == store else "is listed twice"
        table.problem(
            "also_deploy_to",
            f"store {name!r} {what}; a store holds one copy of one credential",
            f"list each store once, and not the primary store ({store!r})" if store else "list each store once",
        )
    if unknown or repeated:
        draft.also_deploy_to = None
    else:
        draft.also_deploy_to = also


def _parse_timing(table: _Table, draft: _Draft) -> None:
    rotate_every = table.duration("rotate_every", DEFAULT_ROTATE_EVERY)
    if rotate_every is not None:
        if rotate_every <= timedelta(0):
            table.problem("rotate_every", "must be longer than 0s", 'write rotate_every = "90d" (or less)')
            rotate_every = None
        elif rotate_every > MAX_ROTATE_EVERY:
            table.problem(
                "rotate_every",
                f"{format_duration(rotate_every)} is longer than 90 days; Bluum requires rotation at least every "
                "90 days",
                'write rotate_every = "90d" or less',
            )
            rotate_every = None
    grace = table.duration("grace", DEFAULT_GRACE)
    if grace is not None and rotate_every is not None and grace >= rotate_every:
        table.problem(
            "grace",
            f"{format_duration(grace)} is not shorter than rotate_every ({format_duration(rotate_every)}): the next "
            "rotation would start while the old key is still active, which makes three keys",
            'make grace (the overlap before the old key is revoked) much shorter, e.g. grace = "1h"',
        )
        grace = None
    verify_timeout = table.duration("verify_timeout", DEFAULT_VERIFY_TIMEOUT)
    if verify_timeout is not None and verify_timeout <= timedelta(0):
        table.problem(
            "verify_timeout",
            "must be longer than 0s: a new key needs time to be accepted by Bluum",
            'write verify_timeout = "60s"',
        )
        verify_timeout = None
    elif verify_timeout is not None and verify_timeout > MAX_VERIFY_TIMEOUT:
        table.problem(
            "verify_timeout",
            f"{format_duration(verify_timeout)} is longer than {format_duration(MAX_VERIFY_TIMEOUT)}: a rotation "
            "waits up to this long several times while holding the credential's lock, and a lease-based lock "
            "could run out under it",
            'write at most verify_timeout = "10m"; a key that takes longer to propagate needs a person',
        )
        verify_timeout = None
    draft.rotate_every, draft.grace, draft.verify_timeout = rotate_every, grace, verify_timeout


def _parse_paths(table: _Table, draft: _Draft) -> None:
    check_path = table.text("check_path", example=f'"{DEFAULT_CHECK_PATH}"')
    if check_path is None:
        if not table.has("check_path"):
            draft.check_path = DEFAULT_CHECK_PATH
    elif _relative_path_ok(table, "check_path", check_path, draft):
        draft.check_path = check_path

    api_keys_path = table.text("api_keys_path", example=f'"{DEFAULT_API_KEYS_PATH}"')
    if api_keys_path is None:
        if not table.has("api_keys_path"):
            draft.api_keys_path = DEFAULT_API_KEYS_PATH
        return
    if not _relative_path_ok(table, "api_keys_path", api_keys_path, draft):
        return
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(api_keys_path) if name is not None}
    except ValueError:
        fields = {"<unbalanced braces>"}
    if not fields <= {"investor_id"}:
        table.problem(
            "api_keys_path",
            f"uses placeholders {sorted(fields)!r}; only {{investor_id}} is filled in",
            f'write api_keys_path = "{DEFAULT_API_KEYS_PATH}"',
        )
        return
    draft.api_keys_path = api_keys_path


def _relative_path_ok(table: _Table, key: str, path: str, draft: _Draft) -> bool:
    """A path relative to base_url: starts with '/', no host, no whitespace, and no second /v1."""
    if not path.startswith("/") or path.startswith("//") or any(char.isspace() for char in path):
        table.problem(
            key,
            f"{_show(path, 60)} is not a path relative to base_url",
            f"start it with '/' and leave out the host and /v1, e.g. {key} = \"{DEFAULT_CHECK_PATH}\""
            if key == "check_path"
            else f"start it with '/' and leave out the host and /v1, e.g. {key} = \"{DEFAULT_API_KEYS_PATH}\"",
        )
        return False
    if (
        draft.base_url is not None
        and urlsplit(draft.base_url).path.rstrip("/").endswith("/v1")
        and (path == "/v1" or path.startswith(("/v1/", "/v1?")))
    ):
        table.problem(
            key,
            "starts with /v1, but base_url already ends with /v1 (the request would go to /v1/v1/...)",
            f"remove the leading /v1: {key} = {path[3:] or '/'!r}",
        )
        return False
    return True


def _check_manager(draft: _Draft, drafts: Mapping[str, _Draft], all_names: list[str], problems: _Problems) -> None:
    manager = draft.manager
    if manager is None or draft.issuer != "bluum":
        return
    where = f"credentials.{draft.name}.manager"
    if manager == draft.name:
        problems.add(
            where,
            "a credential cannot manage itself: the manager's key creates and revokes this one",
            'name the tenant credential (usually issuer = "manual") whose key creates investor keys',
        )
        return
    if manager not in all_names:
        others = [name for name in all_names if name != draft.name]
        problems.add(
            where,
            f"no credential is called {_show(manager)}{_did_you_mean(manager, others)}",
            f"name one of the [credentials.NAME] tables (defined: {_names(others)}), or add [credentials.{manager}]",
        )
        return
    boss = drafts.get(manager)
    if boss is None or boss.environment is None or draft.environment is None:
        return  # that credential has its own problems, already reported
    if boss.environment is not draft.environment:
        problems.add(
            where,
            f"{manager!r} is a {boss.environment.value} credential but {draft.name!r} is {draft.environment.value}; "
            "a key can only create and revoke keys of its own environment (I7)",
            f"point manager at a {draft.environment.value} tenant credential",
        )


def _check_store_sharing(drafts: Mapping[str, _Draft], problems: _Problems) -> None:
    """A store holds one credential: the same store in two credentials' targets would overwrite one with the other."""
    users: dict[str, list[str]] = {}
    for draft in drafts.values():
        targets = [draft.store] if draft.store is not None else []
        targets += list(draft.also_deploy_to or ())
        for store in dict.fromkeys(targets):
            users.setdefault(store, []).append(draft.name)
    for store, names in users.items():
        if len(names) > 1:
            listed = " and ".join(f"credentials.{name}" for name in names)
            problems.add(
                f"stores.{store}",
                f"is used by {listed}; a store holds exactly one credential, so they would overwrite each other",
                "give each credential its own store (for example a second [stores.NAME] table with another path "
                "or prefix)",
            )
