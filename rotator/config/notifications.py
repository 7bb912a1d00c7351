"""The `[notifications.NAME]` tables (webhooks and SNS topics), the events a sink may ask for, and the `[alerts]` table.

Kept apart from config.py (which only calls `parse_notifications` and `parse_alerts_table`) so the rules of
notifications and alerts sit in one short file. The parsers use the table helpers of rotator/config/tables.py, so
every problem reads like the rest of the file's: "notifications.ops.topic_arn: ... Fix: ...".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rotator.config.alerts import ALERTS_KEYS, AlertSettings, parse_alerts, parse_alerts_table
from rotator.config.tables import Problems, Table, did_you_mean, named_tables
from rotator.core.urls import LOOPBACK_HINT, url_problem

__all__ = [
    "ALERTS_KEYS",
    "NOTIFICATION_EVENTS",
    "NOTIFICATION_FORMATS",
    "NOTIFICATION_KEYS",
    "NOTIFICATION_TYPES",
    "SNS_KEYS",
    "AlertSettings",
    "SnsSettings",
    "WebhookSettings",
    "parse_alerts",
    "parse_alerts_table",
    "parse_events",
    "parse_notifications",
    "parse_sns",
]

NOTIFICATION_EVENTS: Final = (
    "started",
    "emergency",
    "completed",
    "rolled_back",
    "stopped",
    "waiting",
    "needs_person",
    "resumed",
    "overdue",
    "orphan",
    "alert",
)
"""What a sink may be told about; the default is all of them. (Progress lines, steps and notes stay in the log.)"""
NOTIFICATION_KEYS: Final = ("type", "url", "secret_env", "format", "events", "timeout")
NOTIFICATION_TYPES: Final = ("webhook", "sns")
NOTIFICATION_FORMATS: Final = ("json", "slack")
SNS_KEYS: Final = ("type", "topic_arn", "region", "endpoint_url", "events", "timeout")
_TOPIC_ARN: Final = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$")
_ARN_EXAMPLE: Final = '"arn:aws:sns:us-east-1:123456789012:bluum-rotator"'
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What `secret_env` must look like: the name of an environment variable."""


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
class SnsSettings:
    """One `[notifications.NAME]` table with `type = "sns"`: an SNS topic told about rotations (boto3's credentials)."""

    name: str
    topic_arn: str
    region: str
    """The topic's region: `region`, else the one in the ARN."""
    endpoint_url: str | None = None
    """Another endpoint than AWS's own (a VPC endpoint; moto in tests)."""
    events: tuple[str, ...] = NOTIFICATION_EVENTS
    timeout: timedelta = timedelta(seconds=5)


def parse_notifications(value: object, problems: Problems) -> tuple[WebhookSettings | SnsSettings, ...]:
    """Every `[notifications.NAME]` table: a webhook (the default) or an SNS topic; one with problems is left out."""
    hooks: list[WebhookSettings | SnsSettings] = []
    for name, raw in named_tables(value, "notifications", problems).items():
        table = Table(raw, f"notifications.{name}", problems)
        kind = raw.get("type", "webhook")
        if kind not in NOTIFICATION_TYPES:
            table.problem(
                "type",
                f"is not one of {', '.join(NOTIFICATION_TYPES)}{did_you_mean(str(kind), NOTIFICATION_TYPES)}",
                'write type = "webhook" or type = "sns"',
            )
            continue
        if kind == "sns":
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
        if url is not None and (problem := url_problem(url)) is not None:
            table.problem("url", problem, f"use https://HOST/PATH ({LOOPBACK_HINT})")
            url = None
        if secret_env is not None and not ENV_NAME.fullmatch(secret_env):
            table.problem(
                "secret_env",
                "is not an environment variable name (letters, digits and _, not starting with a digit); it names the "
                "variable that holds the signing key, never the key itself",
                'write secret_env = "ROTATOR_WEBHOOK_SECRET" and put the key in that variable',
            )
            secret_env = None
        if form not in NOTIFICATION_FORMATS:
            table.problem(
                "format",
                f"is not one of {', '.join(NOTIFICATION_FORMATS)}{did_you_mean(form, NOTIFICATION_FORMATS)}",
                'write format = "json"',
            )
            form = ""
        if url and secret_env and form and timeout is not None and events is not None:
            hooks.append(WebhookSettings(name, url, secret_env, form, events, timeout))
    return tuple(hooks)


def parse_events(table: Table, default: Sequence[str] = NOTIFICATION_EVENTS) -> tuple[str, ...] | None:
    """The table's `events` list (every event when absent); None, with a problem, when it names unknown ones."""
    events = table.data.get("events", list(default))
    choose = f"choose from {', '.join(NOTIFICATION_EVENTS)}"
    if not isinstance(events, list):
        table.problem("events", "expected an array of event names", f'write events = ["alert", ...]; {choose}')
        return None
    wrong = [(index, event) for index, event in enumerate(events) if event not in NOTIFICATION_EVENTS]
    for index, event in wrong:  # by position, never by text (see tables.show)
        hint = did_you_mean(event, NOTIFICATION_EVENTS) if isinstance(event, str) else ""
        table.problem(f"events[{index}]", f"is not an event name{hint}", choose)
    return None if wrong else tuple(str(e) for e in events)


def parse_sns(table: Table, name: str) -> SnsSettings | None:
    """A `type = "sns"` table; None when it has problems (each recorded on `table`)."""
    table.check_keys(SNS_KEYS)
    arn = table.text("topic_arn", example=_ARN_EXAMPLE, required=True, why=" (the SNS topic to publish to)")
    region = table.text("region", example='"us-east-1"')
    endpoint = table.text("endpoint_url", example='"https://sns.us-east-1.amazonaws.com"')
    timeout = table.duration("timeout", timedelta(seconds=5))
    events = parse_events(table)
    arn_region = None
    if arn is not None:
        match = _TOPIC_ARN.match(arn)
        if match is None:
            table.problem(
                "topic_arn",
                "is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                f"copy the topic's ARN from the SNS console or `aws sns list-topics`, e.g. topic_arn = {_ARN_EXAMPLE}",
            )
            arn = None
        else:
            arn_region = match.group(1)
    if region is not None and arn_region is not None and region != arn_region:
        table.problem(
            "region",
            f"is not the topic's region {arn_region!r} (from topic_arn)",
            "remove region (the ARN's region is used), or fix topic_arn",
        )
        region = None
    if endpoint is not None and (problem := url_problem(endpoint)) is not None:
        table.problem("endpoint_url", problem, f"use https://HOST ({LOOPBACK_HINT})")
        endpoint = None
    if arn is None or arn_region is None or (table.has("region") and region is None) or events is None:
        return None
    if timeout is None or (table.has("endpoint_url") and endpoint is None):
        return None
    return SnsSettings(name, arn, region or arn_region, endpoint, events, timeout)
