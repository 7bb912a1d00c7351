"""The helpers every table of rotator.toml is read with: typed getters that record a problem instead of raising.

Validation collects every problem it finds and reports them together (see rotator/config/loader.py), so a getter never
raises: it records "key.path: what is wrong. Fix: what to do." on the shared `Problems` and returns None, and the
table's parser goes on to the next key. A string from the file is never echoed (`show` names its type and length):
a secret pasted into the wrong place must not end up in a terminal, a log or a notification.

Every table module uses these (settings, stores, credentials, notifications, reloads), so
a problem reads the same wherever it was found.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final, cast

from rotator.core.durations import DURATION_HINT, InvalidDuration, parse_duration

__all__ = [
    "NAME_PATTERN",
    "README_HINT",
    "Problems",
    "Table",
    "absolute_path",
    "did_you_mean",
    "list_names",
    "named_tables",
    "optional_table",
    "quote_name",
    "show",
    "toml_type",
]

README_HINT: Final = "see README 'Configuration reference'"

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+")
"""Store and credential names: they become file names, lock names, metric labels and CLI arguments."""


class Problems:
    """Collects problems as "key.path: what is wrong. Fix: what to do." lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str, fix: str) -> None:
        self.items.append(f"{where or 'top level'}: {what.removesuffix('.')}. Fix: {fix.removesuffix('.')}.")


_MISSING: Final = object()


def optional_table(value: object, name: str, problems: Problems) -> Table | None:
    """A top-level table that may be left out (`[bluum]`, `[history]`, `[fleet]`, `[alerts]`): left out, an empty
    table, so every key takes its default; not a table, a problem and None."""
    if value is None:
        return Table({}, name, problems)
    if not isinstance(value, dict):
        article = "an" if name[0] in "aeiou" else "a"
        problems.add(name, f"expected a table, got {toml_type(value)}", f"write {article} [{name}] table, or remove it")
        return None
    return Table(value, name, problems)


class Table:
    """One TOML table plus its key path, with typed getters that record a problem instead of raising."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: Problems) -> None:
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
            close = _close_matches(key, known)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.add(
                self.where,
                f"unknown key {quote_name(key)}{hint}",
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
            self.problem(key, f"expected a string, got {show(value)}", f"write {key} = {example}")
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
            self.problem(key, f"expected a duration string, got {toml_type(value)}", DURATION_HINT)
            return None
        try:
            return parse_duration(value)
        except InvalidDuration as exc:
            self.problem(key, exc.problem, DURATION_HINT)
            return None

    def positive_number(self, key: str, default: float, *, example: str) -> float | None:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {show(value)}", f"write {key} = {example}")
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
            self.problem(key, f"expected an integer, got {show(value)}", f"write {key} = {example}")
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
                f"expected an array of names, got {show(value)}",
                f"write {key} = {example} (or [] for none)",
            )
            return None
        return tuple(cast(list[str], value))


def toml_type(value: object) -> str:
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


def show(value: object) -> str:
    """How a message names a value read from rotator.toml: a number, a boolean or a date as written; a string, an
    array or a table by its type and size only.

    Why never a string's text: any key can receive a secret pasted in the wrong place (a key where a variable's
    name belongs, a token in a command, a password where a method name goes), and even a short one is a whole
    secret. A problem line reaches the terminal, the log and `rotator status`. The key path already says where to
    look, and the person fixing it has the file; a typo of a known word is named through `did_you_mean` instead.
    """
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        text = repr(value)
        return f"{toml_type(value)} {text if len(text) <= 24 else text[:21] + '...'}"
    if isinstance(value, datetime | date | time):
        return f"date/time {value.isoformat()}"
    if isinstance(value, str):
        return f"a string of {len(value)} character{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def quote_name(name: str, limit: int = 40) -> str:
    """A name quoted for a message: a key or table name from rotator.toml, or a name typed on the command line.
    Names, never values (see `show`), shortened so a name that is really a pasted secret is not printed whole."""
    if len(name) > limit:
        return f"{name[: limit - 30]!r}... ({len(name)} characters)"
    return repr(name)


def list_names(names: Iterable[str]) -> str:
    listed = ", ".join(names)
    return listed or "(none)"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = _close_matches(name, list(known))
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_name(kind: str, name: str, problems: Problems) -> bool:
    if NAME_PATTERN.fullmatch(name):
        return True
    problems.add(
        f"{kind}.{quote_name(name)}" if name else f'{kind}.""',
        f"{'the name' if name else 'an empty name'} is not a valid {kind[:-1]} name",
        "use only letters, digits, '-' and '_' (names become file names, lock names and CLI arguments)",
    )
    return False


def named_tables(value: object, kind: str, problems: Problems) -> dict[str, Mapping[str, Any]]:
    """The valid `[kind.NAME]` sub-tables of `value`, with a problem for each one that is not a table."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(kind, f"expected tables like [{kind}.NAME], got {toml_type(value)}", f"write [{kind}.NAME]")
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for name, table in value.items():
        if not _check_name(kind, name, problems):
            continue
        if not isinstance(table, dict):
            problems.add(
                f"{kind}.{name}",
                f"expected a table, got {toml_type(table)}",
                f"write a [{kind}.{name}] table with its keys on the lines below",
            )
            continue
        found[name] = table
    return found


def absolute_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _close_matches(word: str, known: Collection[str]) -> list[str]:
    """The one known name closest to a misspelt `word`, if any: only a mistake needs difflib, so only a mistake
    imports it (every command reads the configuration)."""
    import difflib

    return difflib.get_close_matches(word, list(known), n=1)
