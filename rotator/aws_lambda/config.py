"""What the Lambda trusts: the deployer's configuration, never a managed secret's own JSON (I8).

Anyone allowed to put a value into one managed secret (an application team's CI, the README's "first rotation" step)
must not decide which investor the tenant key mints for, or where the key pairs are sent. So each managed secret's
investor, environment and base URL come from the function's configuration (ROTATOR_SECRETS, which the Terraform
module builds from its `secrets` map: only who may change the function's configuration may change them), a secret
whose JSON says otherwise is refused, and Bluum base URLs are limited to Bluum's documented hosts unless the deployer
names another host (ROTATOR_ALLOWED_HOSTS; the tests' simulator on 127.0.0.1 is one).

Pure decisions on values already read: no I/O, and only the standard library at import (the handler's cold start).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from rotator.core.errors import ConfigError

__all__ = [
    "ALLOWED_HOSTS_VARIABLE",
    "SECRETS_VARIABLE",
    "LambdaConfigError",
    "ManagedSecret",
    "SecretDisagrees",
    "allowed_hosts",
    "check_base_url",
    "check_secret_json",
    "managed_secrets",
    "toml_string",
]

SECRETS_VARIABLE: Final = "ROTATOR_SECRETS"
ALLOWED_HOSTS_VARIABLE: Final = "ROTATOR_ALLOWED_HOSTS"
ENVIRONMENTS: Final = ("sandbox", "production")
_FIX_SECRETS: Final = (
    f"set {SECRETS_VARIABLE} to a JSON object mapping each managed secret's ARN to "
    '{"investor_id": "inv_...", "environment": "sandbox" or "production", "base_url": optional}; '
    "the Terraform module builds it from its `secrets` map"
)


class LambdaConfigError(ConfigError):
    """The function's configuration is wrong, or an event asks for something it does not do; says what to set."""


class SecretDisagrees(LambdaConfigError):
    """A managed secret's JSON names another investor, environment or base URL than the deployer configured."""


@dataclass(frozen=True, slots=True)
class ManagedSecret:
    """One managed secret as the deployer configured it."""

    arn: str
    investor_id: str
    environment: str
    base_url: str | None
    """None: the environment's default Bluum URL."""

    def effective_base_url(self) -> str:
        from rotator.core.model import DEFAULT_BASE_URLS, Environment

        return self.base_url or DEFAULT_BASE_URLS[Environment(self.environment)]


def managed_secrets(environ: Mapping[str, str]) -> dict[str, ManagedSecret]:
    """ROTATOR_SECRETS, checked: ARN -> what the deployer says about that secret. Every base URL obeys the host rule."""
    raw = environ.get(SECRETS_VARIABLE, "").strip()
    if not raw:
        old = [name for name in ("ROTATOR_SECRET_IDS", "ROTATOR_SECRET_TAG") if environ.get(name, "").strip()]
        why = (
            f" ({' and '.join(old)} no longer suffice: a secret's own JSON is not trusted to say its investor, "
            "environment and base URL)"
            if old
            else ""
        )
        raise LambdaConfigError(f"{SECRETS_VARIABLE} is not set{why}: {_FIX_SECRETS}")
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not parsed:
        raise LambdaConfigError(f"{SECRETS_VARIABLE} is not a non-empty JSON object: {_FIX_SECRETS}")
    hosts = allowed_hosts(environ)
    secrets = {}
    for arn, entry in parsed.items():
        secret = _entry(arn, entry)
        if secret.base_url is not None:
            check_base_url(secret.base_url, secret.environment, hosts, what=f"{SECRETS_VARIABLE}[{arn}].base_url")
        secrets[arn] = secret
    return secrets


def _entry(arn: str, entry: object) -> ManagedSecret:
    where = f"{SECRETS_VARIABLE}[{_shown(arn)}]"
    if not arn.startswith("arn:") or ":secretsmanager:" not in arn:
        raise LambdaConfigError(f"{where}: the key must be the secret's full ARN: {_FIX_SECRETS}")
    if not isinstance(entry, dict):
        raise LambdaConfigError(f"{where} must be a JSON object: {_FIX_SECRETS}")
    unknown = sorted(set(entry) - {"investor_id", "environment", "base_url"})
    if unknown:
        raise LambdaConfigError(f"{where} has unknown field(s) {', '.join(map(_shown, unknown))}: {_FIX_SECRETS}")
    investor, environment, base_url = entry.get("investor_id"), entry.get("environment"), entry.get("base_url")
    if not _printable(investor):
        raise LambdaConfigError(f"{where}.investor_id must name the investor whose key this is: {_FIX_SECRETS}")
    if environment not in ENVIRONMENTS:
        raise LambdaConfigError(f'{where}.environment must be "sandbox" or "production": {_FIX_SECRETS}')
    if base_url is not None and not _printable(base_url):
        raise LambdaConfigError(f"{where}.base_url must be a URL, or absent for the environment's default")
    assert isinstance(investor, str)
    assert isinstance(environment, str)
    return ManagedSecret(
        arn=arn,
        investor_id=investor,
        environment=environment,
        base_url=base_url.rstrip("/") if isinstance(base_url, str) else None,
    )


def allowed_hosts(environ: Mapping[str, str]) -> frozenset[str]:
    """ROTATOR_ALLOWED_HOSTS: hosts (`host` or `host:port`) the deployer allows beyond Bluum's documented ones."""
    raw = environ.get(ALLOWED_HOSTS_VARIABLE, "")
    hosts = set()
    for item in raw.split(","):
        host = item.strip().lower().rstrip(".")
        if not host:
            continue
        if not all(c.isalnum() or c in ".-:[]" for c in host):
            raise LambdaConfigError(
                f"{ALLOWED_HOSTS_VARIABLE}: {_shown(item)} is not a host name: give host names or host:port, "
                "comma-separated (e.g. bluum-proxy.internal.example.com)"
            )
        hosts.add(host)
    return frozenset(hosts)


def check_base_url(url: str, environment: str | None, hosts: frozenset[str], *, what: str) -> None:
    """A Bluum base URL's host must be one Bluum documents (for `environment` when known) or one the deployer named."""
    from rotator.config.endpoints import PRODUCTION_HOSTS, SANDBOX_HOSTS

    try:
        parts = urlsplit(url)
    except ValueError:
        parts = urlsplit("")
    if parts.username is not None or parts.password is not None:
        raise LambdaConfigError(f"{what}: a base URL must not carry a user name or password before '@'")
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port
    except ValueError:
        host, port = "", None
    documented = {"sandbox": SANDBOX_HOSTS, "production": PRODUCTION_HOSTS}.get(environment or "")
    if documented is None:
        documented = SANDBOX_HOSTS | PRODUCTION_HOSTS
    if parts.scheme == "https" and host in documented and port in (None, 443):
        return
    named = host in hosts or (port is not None and f"{host}:{port}" in hosts)
    if host and named:
        return
    raise LambdaConfigError(
        f"{what}: {_shown(url)} is not one of Bluum's documented {environment or 'Bluum'} hosts "
        f"({', '.join(sorted(documented))}, over https), and {ALLOWED_HOSTS_VARIABLE} does not name "
        f"{_shown(host) if host else 'it'}: the key pairs would be sent there. Use a documented URL, or name the "
        f"host in {ALLOWED_HOSTS_VARIABLE} (the Terraform module's `allowed_hosts`) if it really is your Bluum "
        "endpoint"
    )


def check_secret_json(secret: ManagedSecret, value: Mapping[str, Any]) -> None:
    """Refuse a managed secret whose AWSCURRENT JSON names another investor, environment or base URL than the
    deployer configured: whoever wrote it could otherwise make the tenant key mint a key for another investor into
    this secret, or send key pairs to a host of their choosing. A field the JSON leaves out is simply the configured
    one."""
    from rotator.core.model import Environment

    secrets = {v for k, v in value.items() if k in ("api_key", "api_secret") and isinstance(v, str)}
    configured = {
        "investor_id": secret.investor_id,
        "environment": secret.environment,
        "base_url": secret.effective_base_url(),
    }
    for field, want in configured.items():
        if field not in value or value[field] is None:
            continue
        found = value[field]
        same = found == want
        if isinstance(found, str) and field == "environment":
            try:
                same = Environment.from_bluum(found).value == want
            except ValueError:
                same = False
        elif isinstance(found, str) and field == "base_url":
            same = found.strip().rstrip("/") == want
        if same:
            continue
        shown = "(a value that looks like the key itself)" if found in secrets else _shown(found)
        raise SecretDisagrees(
            f"{secret.arn}: its JSON says {field} = {shown}, but the function is configured with {field} = "
            f"{_shown(want)} ({SECRETS_VARIABLE}, from the Terraform module's `secrets` map). Nothing was minted "
            f"or sent. If the configuration is right, put the secret's value back with {field} {_shown(want)} (or "
            f"without {field}); if the secret's value is right, change `secrets` in the Terraform module and apply"
        )


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and every control character escaped, so no value can
    end the string or start a line of its own (json.dumps is not TOML: it leaves DEL bare and writes surrogate
    pairs TOML refuses)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _printable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 2048 and value.isprintable() and value.strip() == value


def _shown(value: object) -> str:
    """A value for a message: quoted, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
