"""Who starts a Lambda-managed secret's rotations (ROTATOR_SCHEDULER), and what decides when, as configuration data.

Two modes, chosen by the deployer (the Terraform module's `scheduler`):
- `secrets_manager` (the default): Secrets Manager's rotation rule starts rotations and calls the four steps; the
  tick only finishes them. Nothing of the rotator's own scheduling applies: AWS's schedule and a person's
  `aws secretsmanager rotate-secret` look the same to the function, so neither windows nor a pause can hold one back.
- `tick`: no rotation rule exists; the scheduled tick IS the scheduler. It runs what `rotator run-due` and the daemon
  run (`RotationService.run_due`): finish what is unfinished, and start what is due, gated by a pause, the allow and
  deny windows, the expiry lead and the cap per paying key. Secrets Manager's steps are refused (a rotation turned
  on by hand would be started by AWS's schedule, ungated); a person starts one with the `{"rotator": "rotate"}` event.

What decides comes from the function's environment alone, never from a secret's value (I8): ROTATOR_ROTATE_EVERY (the
rotation period, `rotate_every`), ROTATOR_SEEDED_KEY_AGE (`seeded_key_age`: "count" dates a key put in by hand from
Bluum's key list, "due" rotates it at the first tick) and ROTATOR_WINDOWS (the `[windows]` table as JSON: allow and
deny windows, expiry_lead, starts_per_window, cap_window). They become tables of the configuration made per call and
go through the parser every rotator.toml goes through, so a bad cron or zone is refused with the key and the fix.
A pause lives in the secret's ledger item (DynamoDB), where every runner reads it.

Pure: no I/O, only the standard library at import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from rotator.aws_lambda.config import MANAGED, MANAGER, LambdaConfigError, ManagedSecret, config_data

__all__ = [
    "SCHEDULER_VARIABLE",
    "SECRETS_MANAGER",
    "TICK",
    "WINDOWS_VARIABLE",
    "fleet_config_data",
    "scheduler",
    "with_schedule",
]

SCHEDULER_VARIABLE: Final = "ROTATOR_SCHEDULER"
SECRETS_MANAGER: Final = "secrets_manager"
TICK: Final = "tick"
WINDOWS_VARIABLE: Final = "ROTATOR_WINDOWS"
ROTATE_EVERY_VARIABLE: Final = "ROTATOR_ROTATE_EVERY"
SEEDED_KEY_AGE_VARIABLE: Final = "ROTATOR_SEEDED_KEY_AGE"
_TICK_ONLY: Final = (WINDOWS_VARIABLE, ROTATE_EVERY_VARIABLE, SEEDED_KEY_AGE_VARIABLE)


def scheduler(environ: Mapping[str, str]) -> str:
    """ROTATOR_SCHEDULER: "secrets_manager" (unset too) or "tick". The tick-only settings are refused without "tick":
    they would look like they gate Secrets Manager's schedule, which they cannot."""
    value = environ.get(SCHEDULER_VARIABLE, "").strip() or SECRETS_MANAGER
    if value not in (SECRETS_MANAGER, TICK):
        raise LambdaConfigError(
            f'{SCHEDULER_VARIABLE} must be "{SECRETS_MANAGER}" (Secrets Manager\'s rotation rule starts rotations) or '
            f'"{TICK}" (the scheduled tick starts them, gated by pause and windows), not {value!r}: the Terraform '
            "module's `scheduler`"
        )
    given = [name for name in _TICK_ONLY if environ.get(name, "").strip()]
    if value == SECRETS_MANAGER and given:
        raise LambdaConfigError(
            f"{', '.join(given)} apply only with {SCHEDULER_VARIABLE}={TICK}: Secrets Manager's rotation rule starts "
            f'rotations here, and nothing the function reads can hold it back. Set scheduler = "{TICK}" in the '
            "Terraform module (the tick then starts rotations, inside the windows), or remove them"
        )
    return value


def with_schedule(environ: Mapping[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (the tables of one call's configuration) with the deployer's schedule: `[windows]` from ROTATOR_WINDOWS,
    and `rotate_every` / `seeded_key_age` on every managed credential (the manager's key is never rotated here)."""
    windows = _windows_table(environ)
    if windows is not None:
        data["windows"] = windows
    fields = {
        key: environ[variable].strip()
        for key, variable in (("rotate_every", ROTATE_EVERY_VARIABLE), ("seeded_key_age", SEEDED_KEY_AGE_VARIABLE))
        if environ.get(variable, "").strip()
    }
    for name, table in data["credentials"].items():
        if name != MANAGER:
            table.update(fields)
    return data


def fleet_config_data(
    environ: Mapping[str, str], secrets: Mapping[str, ManagedSecret], manager_json: Mapping[str, Any]
) -> dict[str, Any]:
    """One configuration for several managed secrets (credential name -> secret), each its own store named as its
    credential, all paid for by the one manager key: so the cap per paying key counts every secret's starts, as one
    `run-due` over a rotator.toml does. The caller groups secrets by environment (the manager's environment, when its
    JSON names none, is the managed secret's)."""
    data: dict[str, Any] | None = None
    for name, secret in secrets.items():
        one = config_data(environ, secret, manager_json, credential=name)
        if data is None:
            data = {**one, "stores": {MANAGER: one["stores"][MANAGER]}, "credentials": {}}
            data["credentials"][MANAGER] = one["credentials"][MANAGER]
        data["stores"][name] = one["stores"][MANAGED]
        data["credentials"][name] = {**one["credentials"][name], "store": name}
    if data is None:
        raise LambdaConfigError("no managed secret to schedule")
    return with_schedule(environ, data)


def _windows_table(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """ROTATOR_WINDOWS: a JSON object, the `[windows]` table of a rotator.toml. Nulls (a Terraform optional left
    out) are dropped: TOML has none, and an absent key is the default."""
    raw = environ.get(WINDOWS_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise LambdaConfigError(
            f'{WINDOWS_VARIABLE} must be a JSON object, the [windows] table of rotator.toml (README "When rotations '
            'may run"), e.g. {"timezone": "UTC", "allow": [{"cron": "0 1 * * *", "duration": "4h"}]}: the '
            "Terraform module's `windows`"
        )
    cleaned = _without_nulls(parsed)
    assert isinstance(cleaned, dict)
    return cleaned


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
