"""What the Lambda trusts: the deployer's configuration, never a managed secret's own JSON (I8).

Anyone allowed to put a value into one managed secret (an application team's CI, the README's "first rotation" step)
must not decide which investor the tenant key mints for, or where the key pairs are sent. So each managed secret's
investor, environment and base URL come from the function's configuration (ROTATOR_SECRETS, which the Terraform
module builds from its `secrets` map: only who may change the function's configuration may change them), a secret
whose JSON says otherwise is refused, and Bluum base URLs are limited to Bluum's documented hosts unless the deployer
names another host (ROTATOR_ALLOWED_HOSTS; the tests' simulator on 127.0.0.1 is one).

The configuration of one call is built here as data (`config_data`: the tables of a rotator.toml as tomllib would
return them), from the function's environment, the managed secret as ROTATOR_SECRETS describes it and the manager
secret's JSON, and validated by the parser every rotator.toml goes through (`rotator.config.loader.parse_config_data`).
Never as TOML text: a value is only ever a value, so none can end its string and add a store or a credential.

Pure decisions on values already read: no I/O, and only the standard library at import (the handler's cold start).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from rotator.core.errors import ConfigError

__all__ = [
    "ALLOWED_HOSTS_VARIABLE",
    "MANAGED",
    "MANAGER",
    "MANAGER_VARIABLE",
    "SECRETS_VARIABLE",
    "LambdaConfigError",
    "ManagedSecret",
    "SecretDisagrees",
    "allowed_hosts",
    "check_base_url",
    "check_secret_json",
    "config_data",
    "managed_secrets",
    "manager_secret_id",
    "scratch_dir",
    "share_of",
]

SECRETS_VARIABLE: Final = "ROTATOR_SECRETS"
MANAGER_VARIABLE: Final = "ROTATOR_MANAGER_SECRET_ID"
ALLOWED_HOSTS_VARIABLE: Final = "ROTATOR_ALLOWED_HOSTS"
ENVIRONMENTS: Final = ("sandbox", "production")
MANAGED: Final = "managed"
"""The name of the managed secret's store in the configuration made per call; MANAGER: the manager secret's store
and credential."""
MANAGER: Final = "manager"
DEFAULT_LEDGER_TABLE: Final = "bluum-rotator-ledger"
_ENV_NAME_RE: Final = re.compile(r"^[A-Za-z0-9/_+=.@:-]+$")
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
        raise LambdaConfigError(
            f'{where}.environment must be "sandbox" or "production" (Bluum\'s TEST and PRODUCTION): {_FIX_SECRETS}'
        )
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


def config_data(
    environ: Mapping[str, str], secret: ManagedSecret, manager_json: Mapping[str, Any], *, credential: str
) -> dict[str, Any]:
    """The configuration of one call for `secret`, as the tables of a rotator.toml (what tomllib would return) for
    `rotator.config.loader.parse_config_data`: the managed secret's and the manager secret's AWS stores on one ledger
    table, the manager credential (its tenant key is made in Bluum's dashboard: never rotated here), the managed
    credential `credential` (minted through Bluum's API with the manager's key, for the configured investor), the
    history in the scratch folder, the lease, and this instance's share of Bluum's rate limits.

    Everything comes from the deployer (the environment, ROTATOR_SECRETS) but the manager's environment and base URL,
    which only its JSON gives; that base URL must be a host Bluum documents or the deployer named, as every other."""
    manager = manager_secret_id(environ)
    table = environ.get("ROTATOR_LEDGER_TABLE", DEFAULT_LEDGER_TABLE)
    share = concurrency(environ)
    return {
        "stores": {
            MANAGED: {"type": "aws", "secret_id": secret.arn, "ledger_table": table},
            MANAGER: {"type": "aws", "secret_id": manager, "ledger_table": table},
        },
        "credentials": {
            MANAGER: _manager_credential(environ, manager, manager_json, secret),
            credential: _managed_credential(environ, secret),
        },
        "history": {"dir": str(scratch_dir(environ) / "rotator-history")},
        "ledger": {"lease_ttl": environ.get("ROTATOR_LEASE_TTL", "15m")},
        "bluum": {"rate_limit_sandbox": share_of(10.0, share), "rate_limit_production": share_of(25.0, share)},
    }


def _manager_credential(
    environ: Mapping[str, str], manager: str, value: Mapping[str, Any], secret: ManagedSecret
) -> dict[str, Any]:
    """`[credentials.manager]`: the tenant key, in the managed secret's environment unless its JSON names one."""
    environment = value.get("environment")
    if not isinstance(environment, str) or not environment:
        environment = secret.environment
    table: dict[str, Any] = {"environment": environment, "issuer": "manual", "store": MANAGER}
    base_url = value.get("base_url")
    if base_url is not None:
        known = environment if environment in ENVIRONMENTS else None
        check_base_url(str(base_url), known, allowed_hosts(environ), what=f"the manager secret {manager}: its base_url")
        table["base_url"] = str(base_url)
    return table


def _managed_credential(environ: Mapping[str, str], secret: ManagedSecret) -> dict[str, Any]:
    """`[credentials.NAME]` of the managed secret: investor, environment and base URL as the deployer configured."""
    table: dict[str, Any] = {
        "environment": secret.environment,
        "issuer": "bluum",
        "investor_id": secret.investor_id,
        "manager": MANAGER,
        "store": MANAGED,
        "grace": environ.get("ROTATOR_GRACE", "1h"),
        "verify_timeout": environ.get("ROTATOR_VERIFY_TIMEOUT", "60s"),
    }
    if secret.base_url is not None:
        table["base_url"] = secret.base_url
    return table


def manager_secret_id(environ: Mapping[str, str]) -> str:
    """ROTATOR_MANAGER_SECRET_ID: the secret holding the tenant key that mints and revokes (a name or an ARN)."""
    value = environ.get(MANAGER_VARIABLE, "").strip()
    if not value or not _ENV_NAME_RE.match(value):
        raise LambdaConfigError(
            f"set {MANAGER_VARIABLE} (the ARN of the secret holding the tenant key that mints and revokes)"
        )
    return value


def concurrency(environ: Mapping[str, str]) -> int:
    """ROTATOR_CONCURRENCY: how many instances of the function may run at once (its reserved concurrency).

    Every rotation spends the one tenant key's rate limit (10 requests a second in sandbox, 25 in production), and
    each instance paces only itself; so each takes a share that keeps them within it together (`share_of`)."""
    raw = environ.get("ROTATOR_CONCURRENCY", "1").strip()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise LambdaConfigError(
            f"ROTATOR_CONCURRENCY must be a whole number of 1 or more (the reserved concurrency), not {raw!r}"
        )
    return value


def share_of(limit: float, instances: int) -> float:
    """The rate one instance may use so that `instances` of them never exceed `limit` in any one-second window.

    Each instance paces itself (one request every 1/rate seconds, `rotator.bluum.throttle`), and such a pacer can put
    rate + 1 requests in a one-second window (one at its start, then one per interval); uncoordinated instances can
    line those windows up. So each gets limit / instances - 1, and together they send at most `limit`."""
    return limit if instances == 1 else limit / instances - 1


def scratch_dir(environ: Mapping[str, str]) -> Path:
    """TMPDIR, or /tmp: a Lambda's only writable folder (the history goes there, relative paths start there)."""
    return Path(environ.get("TMPDIR", "/tmp"))  # noqa: S108 - a Lambda's only writable folder


def _printable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 2048 and value.isprintable() and value.strip() == value


def _shown(value: object) -> str:
    """A value for a message: quoted, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
