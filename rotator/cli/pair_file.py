"""The pair file of `--new-key-file` (issuer manual): a key pair a person made in Bluum's dashboard, as JSON
`{"api_key": ..., "api_secret": ..., "key_id": ...}` (and optionally `environment`), from a file or stdin.

Errors name the file and the field, never a value: the file holds a secret.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rotator.core.errors import ConfigError
from rotator.core.model import Environment, StoredKey
from rotator.core.secret import Secret

__all__ = ["read_new_pair"]


def read_new_pair(path: str, name: str | None) -> StoredKey:
    """Parse the operator's new pair from `path` (- for stdin) for credential `name`."""
    if name is None:
        raise ConfigError("--new-key-file goes with one credential NAME, not --all")
    where = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --new-key-file {where}: {exc.strerror}") from exc
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--new-key-file {where} is not JSON (line {exc.lineno}): expected "
            '{"api_key": "...", "api_secret": "...", "key_id": "..."}'
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"--new-key-file {where} must hold a JSON object with api_key, api_secret, key_id")
    missing = [field for field in ("api_key", "api_secret") if not isinstance(data.get(field), str) or not data[field]]
    if missing:
        raise ConfigError(f"--new-key-file {where} lacks {', '.join(missing)} (non-empty strings)")
    key_id = data.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        raise ConfigError(f"--new-key-file {where}: key_id must be a string")
    environment = None
    if "environment" in data:
        try:
            environment = Environment.from_bluum(str(data["environment"]))
        except ValueError as exc:
            raise ConfigError(f"--new-key-file {where}: {exc}") from None
    return StoredKey(
        api_key=data["api_key"], api_secret=Secret(data["api_secret"]), key_id=key_id, environment=environment
    )
