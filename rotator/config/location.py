"""Which rotator.toml a command reads: --config, then $ROTATOR_CONFIG, then ./rotator.toml.

A place that is given but wrong is an error, never a reason to look further: falling through from a mistyped --config
to ./rotator.toml could rotate the wrong environment's keys. Kept apart from the loader, which validates what is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from rotator.config.tables import README_HINT, absolute_path
from rotator.core.errors import ConfigError

CONFIG_ENV_VAR: Final = "ROTATOR_CONFIG"
"""Environment variable naming the config file; wins over ./rotator.toml, loses to --config."""

DEFAULT_CONFIG_NAME: Final = "rotator.toml"


def find_config_path(explicit: str | None, environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Path:
    """The config file to use: --config, then $ROTATOR_CONFIG, then ./rotator.toml. Returns an absolute path.

    A place that is given but wrong is an error rather than a reason to look further: falling through
    from a mistyped --config to ./rotator.toml could rotate the wrong environment's keys.
    """
    base = cwd if cwd is not None else Path.cwd()
    if explicit:
        candidate = absolute_path(explicit, base)
        problem = _not_a_file(candidate)
        if problem is None:
            return candidate
        raise ConfigError(
            f"--config {explicit}: {candidate} {problem}. Fix: pass the path of an existing {DEFAULT_CONFIG_NAME} "
            f"(relative paths start at {base})."
        )
    from_env = environ.get(CONFIG_ENV_VAR, "").strip()
    if from_env:
        candidate = absolute_path(from_env, base)
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


def _not_a_file(path: Path) -> str | None:
    """Why `path` cannot be read as the config file, or None when it can be."""
    if path.is_file():
        return None
    if path.is_dir():
        return "is a directory"
    if path.exists():
        return "is not a regular file"
    return "does not exist"
