"""rotator.toml: which credentials exist, where each one is deployed, and how often it rotates.

The file is read once and validated completely into frozen objects before anything touches Bluum or a
store, so a typo can never surface half-way through a rotation. Validation collects every problem it
finds and reports them together: whoever is fixing the file at 3 a.m. should not have to run the
command once per mistake. Each problem names the file, the key (`credentials.trading.grace`), what is
wrong and what to write instead. A string from the file is never echoed, only its key path (tables.show):
a secret pasted into the wrong place must not end up in a terminal, a log or a notification.

Validation is written out by hand rather than with msgspec.convert: msgspec reports a table of tables as
`$.credentials[...]` (the credential's name is lost), stops at the first error, and its wording would
have to be rewritten with regular expressions to say what to do. Plain checks say it directly.

This module finds and reads the file, hands each top-level table to its own module and assembles `Config`; a caller
that makes its configuration (the Lambda, from its environment) hands the same tables over as data instead
(`parse_config_data`), through the same checks, so no value of it is ever written into TOML text:
- tables.py: the typed getters every table is read with, and the problems they record;
- stores.py: `[stores.NAME]`; credentials.py and endpoints.py: `[credentials.NAME]`;
- settings.py: `[bluum]`, `[history]`, `[fleet]`; notifications.py: `[notifications.NAME]`, `[alerts]`;
  ledger.py: `[ledger]` (the lease's length); leak_reports.py: `[leak_reports]` (the daemon's signed route).
Every name the rest of the project imports from here is importable from this module; the face `rotator.config`
re-exports the ones callers imported from it before it became a package.

Cross-checks done in those modules, so the engine can rely on them:
- every store, also_deploy_to and manager reference resolves; a store holds exactly one credential;
- I7 at the configuration level: a credential's base URL is never a host of the other environment, and
  its manager is a credential of the same environment;
- credentials never travel over plain HTTP, except to a loopback address (the local simulator);
- rotate_every is at most 90 days (Bluum's rule) and the overlap (grace) is shorter than it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from rotator.config.alerts import AlertSettings, parse_alerts_table
from rotator.config.credential_model import (
    DEFAULT_GRACE,
    DEFAULT_ROTATE_EVERY,
    DEFAULT_VERIFY_TIMEOUT,
    INVESTOR_ID_EXAMPLE,
    INVESTOR_ID_PATTERN,
    ISSUERS,
    MAX_ROTATE_EVERY,
    MAX_VERIFY_TIMEOUT,
    SEEDED_KEY_AGES,
    CredentialConfig,
    Issuer,
)
from rotator.config.credentials import CREDENTIAL_KEYS, MINIMAL_EXAMPLE, parse_credentials
from rotator.config.doppler import check_doppler_primaries
from rotator.config.endpoints import DEFAULT_API_KEYS_PATH, DEFAULT_CHECK_PATH, PRODUCTION_HOSTS, SANDBOX_HOSTS
from rotator.config.ledger import LedgerSettings, parse_ledger
from rotator.config.location import CONFIG_ENV_VAR, DEFAULT_CONFIG_NAME, find_config_path
from rotator.config.rollout import check_consumer_checks, check_rollouts
from rotator.config.settings import (
    BLUUM_KEYS,
    DEFAULT_CONCURRENCY,
    DEFAULT_HISTORY_DIR,
    DEFAULT_HISTORY_KEEP,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PER_PAYER,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
    FLEET_KEYS,
    HISTORY_KEYS,
    MAX_CONCURRENCY,
    MIN_HISTORY_KEEP,
    BluumSettings,
    FleetSettings,
    HistorySettings,
    parse_bluum,
    parse_fleet,
    parse_history,
)
from rotator.config.stores import (
    DEFAULT_STATE_DIR,
    FILE_PATH_STORE_TYPES,
    KNOWN_STORE_OPTIONS,
    RESERVED_STORE_OPTIONS,
    StoreConfig,
    parse_stores,
)
from rotator.config.tables import (
    NAME_PATTERN,
    README_HINT,
    Problems,
    Table,
    did_you_mean,
    list_names,
    quote_name,
)
from rotator.config.trust import check_config_trusted
from rotator.config.windows import apply_windows
from rotator.core.durations import parse_duration
from rotator.core.errors import ConfigError

if TYPE_CHECKING:  # imported by `_validate` only when the file has such a table (`rotator status` stays fast)
    from rotator.config.consumers import Consumer
    from rotator.config.leak_reports import LeakReportSettings
    from rotator.config.notifications import (
        NOTIFICATION_FORMATS,
        NOTIFICATION_KEYS,
        NOTIFICATION_TYPES,
        SnsSettings,
        WebhookSettings,
    )

_FROM_NOTIFICATIONS: Final = frozenset(
    {"NOTIFICATION_FORMATS", "NOTIFICATION_KEYS", "NOTIFICATION_TYPES", "SnsSettings", "WebhookSettings"}
)
"""Names this module has always exported, from rotator/config/notifications.py: imported when first asked for."""


def __getattr__(name: str) -> object:
    """`from rotator.config.loader import WebhookSettings` still works, without every load importing the module."""
    if name in _FROM_NOTIFICATIONS:
        from rotator.config import notifications

        return getattr(notifications, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Besides this module's own names, every name the rest of the project has always imported from rotator.config.loader.
__all__ = [
    "BLUUM_KEYS",
    "CONFIG_ENV_VAR",
    "CREDENTIAL_KEYS",
    "DEFAULT_API_KEYS_PATH",
    "DEFAULT_CHECK_PATH",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_GRACE",
    "DEFAULT_HISTORY_DIR",
    "DEFAULT_HISTORY_KEEP",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PER_PAYER",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_ROTATE_EVERY",
    "DEFAULT_STATE_DIR",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "FILE_PATH_STORE_TYPES",
    "FLEET_KEYS",
    "HISTORY_KEYS",
    "INVESTOR_ID_EXAMPLE",
    "INVESTOR_ID_PATTERN",
    "ISSUERS",
    "KNOWN_STORE_OPTIONS",
    "MAX_CONCURRENCY",
    "MAX_ROTATE_EVERY",
    "MAX_VERIFY_TIMEOUT",
    "MINIMAL_EXAMPLE",
    "MIN_HISTORY_KEEP",
    "NAME_PATTERN",
    "NOTIFICATION_FORMATS",
    "NOTIFICATION_KEYS",
    "NOTIFICATION_TYPES",
    "PRODUCTION_HOSTS",
    "README_HINT",
    "RESERVED_STORE_OPTIONS",
    "SANDBOX_HOSTS",
    "SEEDED_KEY_AGES",
    "TOP_LEVEL_KEYS",
    "BluumSettings",
    "Config",
    "ConfigProblems",
    "CredentialConfig",
    "FleetSettings",
    "HistorySettings",
    "Issuer",
    "LedgerSettings",
    "StoreConfig",
    "WebhookSettings",
    "find_config_path",
    "load_config",
    "parse_config",
    "parse_config_data",
    "parse_duration",
]

TOP_LEVEL_KEYS: Final = (
    "stores",
    "credentials",
    "bluum",
    "history",
    "notifications",
    "fleet",
    "alerts",
    "ledger",
    "leak_reports",
    "windows",
)


# --------------------------------------------------------------------------------------------- objects


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
    fleet: FleetSettings = FleetSettings()  # noqa: RUF009 - a frozen dataclass (settings.py)
    _store_owners: Mapping[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    ledger: LedgerSettings = LedgerSettings()  # noqa: RUF009 - a frozen dataclass (ledger.py)
    leak_reports: LeakReportSettings | None = None
    """The daemon's leak-report route; None (no `[leak_reports]` table): off."""

    def credential(self, name: str) -> CredentialConfig:
        """The credential called `name`; ConfigError listing the known ones (and a near match) otherwise."""
        try:
            return self.credentials[name]
        except KeyError:
            raise ConfigError(
                f"{self.source}: there is no credential {quote_name(name)}{did_you_mean(name, self.credentials)}. "
                f"Fix: use one of: {list_names(self.credentials)}; or add [credentials.{name}] to {self.source}."
            ) from None

    def store(self, name: str) -> StoreConfig:
        """The store called `name`; ConfigError listing the known ones otherwise."""
        try:
            return self.stores[name]
        except KeyError:
            raise ConfigError(
                f"{self.source}: there is no store {quote_name(name)}{did_you_mean(name, self.stores)}. "
                f"Fix: use one of: {list_names(self.stores)}; or add [stores.{name}] to {self.source}."
            ) from None

    def credential_for_store(self, store: str) -> CredentialConfig | None:
        """The credential deployed to `store` (validation guarantees at most one), if any."""
        name = self._store_owners.get(store)
        return None if name is None else self.credentials[name]

    def consumers_of(self, credential: str) -> tuple[Consumer, ...]:
        """Every consumer of the credential, across its targets (primary first): who must report the new key
        before the old one is revoked. () for a credential without consumers: its rotation is as before."""
        return tuple(c for target in self.credential(credential).targets for c in self.store(target).consumers)

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


# --------------------------------------------------------------------------------------------- loading


def load_config(path: Path, *, store_types: Collection[str] | None = None) -> Config:
    """Read and validate the file at `path`. Store paths are resolved against its folder.

    First, whether it may be believed at all (rotator/config/trust.py): a file another user could change is refused
    (ConfigUntrusted) before a byte of it is read."""
    absolute = path.expanduser().absolute()
    source = str(absolute)
    check_config_trusted(absolute)
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


def parse_config_data(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    source: str = DEFAULT_CONFIG_NAME,
    store_types: Collection[str] | None = None,
) -> Config:
    """Validate `data`, the configuration as tomllib would return it (tables as dicts, arrays as lists, strings,
    numbers, booleans, dates), with the checks and messages a file gets.

    For a caller that makes its configuration instead of reading a file (the Lambda, from its environment): built as
    data, a value is only ever a value, while one written into TOML text could end its string and add keys or
    tables. A value no TOML file could hold (None, a tuple, a key that is not a string) is a problem like any other.
    """
    problems = Problems()
    _check_toml_shaped(data, "", problems)
    if problems.items:
        raise ConfigProblems(source, problems.items)
    return _validate(dict(data), source=source, base_dir=base_dir, path=None, store_types=store_types)


def _parse(text: str, *, source: str, base_dir: Path, path: Path | None, store_types: Collection[str] | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid TOML ({_toml_position(str(exc))}). Fix the syntax; {README_HINT}."
        ) from None
    return _validate(data, source=source, base_dir=base_dir, path=path, store_types=store_types)


def _validate(
    data: dict[str, Any], *, source: str, base_dir: Path, path: Path | None, store_types: Collection[str] | None
) -> Config:
    """Every table of `data` by its own module, every problem collected, then the frozen `Config`."""
    if store_types is None:
        from backends.base import load_store_factories  # entry-point scan: only when a file is really loaded

        store_types = tuple(load_store_factories(_named_store_types(data)))
    problems = Problems()
    root = Table(data, "", problems)
    root.check_keys(TOP_LEVEL_KEYS)
    bluum = parse_bluum(data.get("bluum"), problems, base_dir)
    history = parse_history(data.get("history"), base_dir, problems)
    stores = parse_stores(data.get("stores"), base_dir=base_dir, store_types=store_types, problems=problems)
    credentials = apply_windows(data, parse_credentials(data, problems), problems)
    check_doppler_primaries(credentials, stores, problems)
    notifications = _notifications(data.get("notifications"), problems)
    fleet = parse_fleet(data.get("fleet"), problems)
    alerts = parse_alerts_table(data.get("alerts"), problems)
    ledger = parse_ledger(data.get("ledger"), problems, bluum, stores.values())
    leak_reports = _leak_reports(data.get("leak_reports"), problems)
    rollouts = {name: (cred.rollout, cred.targets) for name, cred in credentials.items()}
    reloads = {name: store.reload for name, store in stores.items()}
    check_rollouts(rollouts, reloads, problems)
    consumer_names = {
        name: {c.name for t in cred.targets if t in stores for c in stores[t].consumers}
        for name, cred in credentials.items()
    }
    check_consumer_checks({name: cred.targets for name, cred in credentials.items()}, reloads, consumer_names, problems)
    if any(store.consumers for store in stores.values()):  # without consumers there is no name to repeat
        from rotator.config.consumers import check_consumer_names

        check_consumer_names(
            {
                name: [(t, stores[t].consumers) for t in cred.targets if t in stores]
                for name, cred in credentials.items()
            },
            problems,
        )
    if problems.items or bluum is None or history is None or fleet is None or ledger is None:
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
        ledger=ledger,
        leak_reports=leak_reports,
    )


def _notifications(value: object, problems: Problems) -> tuple[WebhookSettings | SnsSettings, ...]:
    """Every `[notifications.NAME]` by rotator/config/notifications.py, imported only when the file has the key."""
    if value is None:
        return ()
    from rotator.config.notifications import parse_notifications

    return parse_notifications(value, problems)


def _leak_reports(value: object, problems: Problems) -> LeakReportSettings | None:
    """`[leak_reports]` by rotator/config/leak_reports.py, imported only when the file has that key: without it the
    route is off (None), and a command that loads the file (`rotator status`) does not pay for the module."""
    if value is None:
        return None
    from rotator.config.leak_reports import parse_leak_reports

    return parse_leak_reports(value, problems)


_TOML_SCALARS: Final = (str, int, float, bool, datetime, date, time)


def _check_toml_shaped(value: object, where: str, problems: Problems) -> None:
    """A problem for each value in `value` that tomllib could not have returned (the data entry's contract)."""
    if isinstance(value, Mapping) and (where == "" or isinstance(value, dict)):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(where, f"a key is {type(key).__name__}, not a string", "build tables with string keys")
                continue
            _check_toml_shaped(item, f"{where}.{key}" if where else key, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_toml_shaped(item, f"{where}[{index}]", problems)
    elif not isinstance(value, _TOML_SCALARS):
        problems.add(
            where,
            f"{type(value).__name__} is not a TOML value",
            "build tables as dicts, arrays as lists, and leave out a key that has no value",
        )


def _toml_position(message: str) -> str:
    """tomllib says "Invalid value (at line 3, column 9)"; we lead with the position, where eyes go first."""
    match = re.fullmatch(r"(?s)(.*?)\s*\(at (line \d+, column \d+|end of document)\)", message)
    if match is None:
        return message
    what, where = match.groups()
    return f"{where}: {what}"


def _named_store_types(data: Mapping[str, Any]) -> set[str]:
    """The `type` of every [stores.NAME] table, as written (a wrong one is reported by `parse_stores`)."""
    stores = data.get("stores")
    if not isinstance(stores, dict):
        return set()
    return {str(table.get("type")) for table in stores.values() if isinstance(table, dict)}
