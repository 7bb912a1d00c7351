"""rotator.toml -> frozen objects.

This face re-exports what callers imported from `rotator.config` before the package existed;
code in this repository imports the modules.
"""

from typing import TYPE_CHECKING

from rotator.config.loader import (
    BLUUM_KEYS,
    CONFIG_ENV_VAR,
    CREDENTIAL_KEYS,
    DEFAULT_API_KEYS_PATH,
    DEFAULT_CHECK_PATH,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_VERIFY_TIMEOUT,
    FLEET_KEYS,
    HISTORY_KEYS,
    KNOWN_STORE_OPTIONS,
    MAX_VERIFY_TIMEOUT,
    MINIMAL_EXAMPLE,
    PRODUCTION_HOSTS,
    README_HINT,
    SANDBOX_HOSTS,
    Config,
    ConfigProblems,
    CredentialConfig,
    FleetSettings,
    find_config_path,
    load_config,
    parse_config,
    parse_duration,
)

if TYPE_CHECKING:
    from rotator.config.notifications import NOTIFICATION_KEYS, WebhookSettings


def __getattr__(name: str) -> object:
    """NOTIFICATION_KEYS and WebhookSettings, from rotator/config/notifications.py when first asked for: loading a
    file without [notifications] never imports that module."""
    if name in ("NOTIFICATION_KEYS", "WebhookSettings"):
        from rotator.config import notifications

        return getattr(notifications, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLUUM_KEYS",
    "CONFIG_ENV_VAR",
    "CREDENTIAL_KEYS",
    "DEFAULT_API_KEYS_PATH",
    "DEFAULT_CHECK_PATH",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_VERIFY_TIMEOUT",
    "FLEET_KEYS",
    "HISTORY_KEYS",
    "KNOWN_STORE_OPTIONS",
    "MAX_VERIFY_TIMEOUT",
    "MINIMAL_EXAMPLE",
    "NOTIFICATION_KEYS",
    "PRODUCTION_HOSTS",
    "README_HINT",
    "SANDBOX_HOSTS",
    "Config",
    "ConfigProblems",
    "CredentialConfig",
    "FleetSettings",
    "WebhookSettings",
    "find_config_path",
    "load_config",
    "parse_config",
    "parse_duration",
]
