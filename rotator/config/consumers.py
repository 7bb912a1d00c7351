"""The `consumers` array of a `[stores.NAME]` table: the applications that read a store, and how to ask each one which
key it is using right now (issue 19; the protocol is docs/consumer-attestation.md).

Why per store, beside `reload`: applications read a store, and a store belongs to one credential, so a store's
consumers are its credential's. The old key is revoked only once every consumer of the credential (across its
targets) reports the new key's fingerprint; a store that holds the new key proves nothing about a process that read
its key at start.

    consumers = [
      { name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" },
      { name = "nightly", command = ["/opt/batch/bin/key-fingerprint"], timeout = "10s" },
    ]

Like `reload`, the array is the rotator's: a store factory is never handed it. A command is an argument list, never a
shell string; a URL follows the one URL rule (rotator/core/urls.py): https, or plain http to this machine only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal

from rotator.config import action_fields as fields
from rotator.config.tables import Problems, Table

__all__ = [
    "CONSUMERS_KEY",
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_URL_TIMEOUT",
    "MAX_CONSUMER_TIMEOUT",
    "Consumer",
    "check_consumer_names",
    "parse_consumers",
]

CONSUMERS_KEY: Final = "consumers"
"""The key in `[stores.NAME]`; kept out of the options a store factory receives."""
CONSUMER_KEYS: Final = ("name", "url", "command", "timeout", "pass_env")
DEFAULT_URL_TIMEOUT: Final = timedelta(seconds=5)
DEFAULT_COMMAND_TIMEOUT: Final = timedelta(seconds=30)
MAX_CONSUMER_TIMEOUT: Final = timedelta(minutes=2)
"""One poll waits for its slowest consumer; a consumer that needs longer to say which key it holds is down."""
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A consumer's name goes into messages, alerts, the record and metric labels: letters, digits, `.`, `_`, `-`."""
_URL_EXAMPLE: Final = '{ name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" }'
_COMMAND_EXAMPLE: Final = '{ name = "nightly", command = ["/opt/batch/bin/key-fingerprint"] }'
_COMMAND_ARGV: Final = 'command = ["/opt/batch/bin/key-fingerprint", "--json"]'


@dataclass(frozen=True, slots=True)
class Consumer:
    """One consumer of one store, validated. Exactly one of `command` and `url` is set."""

    name: str
    store: str
    """The store it reads: messages say "trader-1 (store app)"."""
    kind: Literal["command", "url"]
    timeout: timedelta
    cwd: Path
    """Where a command runs: the configuration file's folder, as for reload commands."""
    command: tuple[str, ...] = ()
    url: str = ""
    pass_env: tuple[str, ...] = ()


def parse_consumers(table: Table, store: str, base_dir: Path) -> tuple[Consumer, ...] | None:
    """The store table's `consumers`; () when absent; None when any is wrong (each problem is recorded)."""
    value = table.data.get(CONSUMERS_KEY)
    if value is None:
        return ()
    if not isinstance(value, list):
        table.problem(CONSUMERS_KEY, "expected an array of inline tables", f"write consumers = [{_URL_EXAMPLE}]")
        return None
    parsed = [_parse_one(table, index, item, store, base_dir) for index, item in enumerate(value)]
    if None in parsed:
        return None
    consumers = tuple(consumer for consumer in parsed if consumer is not None)
    seen: set[str] = set()
    for index, consumer in enumerate(consumers):
        if consumer.name in seen:
            table.problem(f"{CONSUMERS_KEY}[{index}].name", "repeats a name used before in this store", "rename it")
            return None
        seen.add(consumer.name)
    return consumers


def _parse_one(table: Table, index: int, item: object, store: str, base_dir: Path) -> Consumer | None:
    where = f"{CONSUMERS_KEY}[{index}]"
    if not isinstance(item, dict):
        table.problem(where, "expected an inline table", f"write {_URL_EXAMPLE} or {_COMMAND_EXAMPLE}")
        return None
    entry = Table(item, table.key(where), table.problems)
    before = len(table.problems.items)
    entry.check_keys(CONSUMER_KEYS)
    if len(table.problems.items) > before:
        return None
    name = entry.text("name", example='"trader-1"', required=True, why=" (how messages and alerts name it)")
    if name is not None and not NAME_PATTERN.fullmatch(name):
        entry.problem("name", "must be 1 to 64 letters, digits, '.', '_' or '-'", 'write name = "trader-1"')
        name = None
    has_command, has_url = "command" in item, "url" in item
    if has_command == has_url:
        what = "has both command and url" if has_command else "has neither command nor url"
        table.problem(where, what, f"give one per consumer: {_URL_EXAMPLE} or {_COMMAND_EXAMPLE}")
        return None
    command = fields.argv(entry, item["command"], subject="command", example=_COMMAND_ARGV) if has_command else ()
    url = fields.url(entry, item["url"], example='url = "http://127.0.0.1:9001/-/bluum-key"') if has_url else ""
    default = DEFAULT_COMMAND_TIMEOUT if has_command else DEFAULT_URL_TIMEOUT
    timeout = fields.timeout(entry, default, MAX_CONSUMER_TIMEOUT)
    pass_env = fields.pass_env(entry, item.get("pass_env", []), has_command)
    if name is None or command is None or url is None or timeout is None or pass_env is None:
        return None
    kind: Literal["command", "url"] = "command" if has_command else "url"
    return Consumer(name, store, kind, timeout, base_dir, command=command, url=url, pass_env=pass_env)


def check_consumer_names(
    targets_by_credential: Mapping[str, Iterable[tuple[str, tuple[Consumer, ...]]]], problems: Problems
) -> None:
    """A consumer's name is unique within its credential, across the credential's targets: alerts and the record
    name consumers by it, and two of one name would read as one."""
    for credential, targets in targets_by_credential.items():
        first: dict[str, str] = {}
        for store, consumers in targets:
            for index, consumer in enumerate(consumers):
                earlier = first.setdefault(consumer.name, store)
                if earlier != store:
                    problems.add(
                        f"stores.{store}.{CONSUMERS_KEY}[{index}].name",
                        f"is also the name of a consumer of store {earlier!r}; both are consumers of credential "
                        f"{credential!r}, whose consumers are named uniquely",
                        "rename one of them",
                    )
