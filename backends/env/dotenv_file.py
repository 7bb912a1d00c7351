"""The env store's lines in a dotenv file: read as applications read them, rendered without touching the others.

Applications read `{PREFIX}API_KEY`, `{PREFIX}API_SECRET`, `{PREFIX}KEY_ID`, `{PREFIX}ENVIRONMENT` and
`{PREFIX}BASE_URL` from the dotenv file, so that file only ever shows CURRENT.

Only our own lines of the dotenv file are touched: comments, blank lines, other variables, `export` prefixes and
the quoting of other lines stay byte for byte. Lines are located with python-dotenv's own parser so that what we
rewrite is exactly what python-dotenv (what most applications use) reads. An inline comment after one of *our*
values is dropped when that line is rewritten; a comment on its own line is kept.

Values are written in single quotes with `\\` and `'` escaped, which python-dotenv reads back unchanged. One thing
cannot be escaped: python-dotenv expands `${NAME}` even inside single quotes, so a value containing `${` is refused
before anything is written, and one of our lines that uses `${...}` is reported (StoreCorrupt) rather than read
differently from what applications see. Another reader (env-file, shell: `backends.dotenv_lines`) reads each value
by its own rules, and every rendering is parsed back with them before it is written.

This module reads and renders text; where the bytes go (the pin, the rename) is `backends.env.target`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from dotenv.parser import Binding, parse_stream

from backends import dotenv_lines
from backends.dotenv_lines import Reader
from backends.env.regular_file import NotARegularFile, read_regular_file
from backends.env.reports import denied, unavailable
from backends.key_fields import OPTIONAL_FIELDS
from rotator.core.errors import ConfigError, StoreCorrupt, StoreError, StoreNotFound
from rotator.core.model import Environment, StoredKey
from rotator.core.secret import Secret

__all__ = ["DotenvFile"]

# Our variables, without the prefix, in the order they are appended to a file that lacks them.
_FIELDS: Final = ("API_KEY", "API_SECRET", "KEY_ID", "ENVIRONMENT", "BASE_URL")
_REQUIRED: Final = ("API_KEY", "API_SECRET")
_VALUE_TEXT_RE: Final = re.compile(r"[^\S\r\n]*=[^\S\r\n]*(.*?)(?:\r\n|\n|\r)?\Z", re.DOTALL)
_PREFIX_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The name at the start of a line python-dotenv could not parse, to tell "your BLUUM_API_SECRET line is broken"
# apart from "some other line is broken" (which is not ours to judge).
_BROKEN_LINE_NAME_RE: Final = re.compile(r"\s*(?:export\s+)?'?([^='\"\s#]+)")
_LEADING_WS_RE: Final = re.compile(r"\s*")
_WHOLE_BLANK_LINES_RE: Final = re.compile(r"(?:[^\S\r\n]*(?:\r\n|\n|\r))*")
_EXPORT_RE: Final = re.compile(r"export[^\S\r\n]+")
_EOL_RE: Final = re.compile(r"(?:\r\n|\n|\r)\Z")
_BOM: Final = "\ufeff"


class DotenvFile:
    """Store `name`'s lines (variables `prefix` + field) in the dotenv file at `path`, for the configured reader.

    `environment` and `base_url` are the credential's own; they fill in for a hand-seeded file that lacks those
    lines. `fields` names the optional lines (`backends.key_fields.OPTIONAL_FIELDS`) added to a file that lacks them.
    Raises ConfigError for a prefix, path, reader or fields that cannot work, never echoing what was given.
    """

    def __init__(
        self,
        name: str,
        *,
        path: str | os.PathLike[str],
        prefix: str,
        reader: str,
        fields: Sequence[str],
        environment: Environment | None,
        base_url: str | None,
    ) -> None:
        if prefix and not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(
                f"store {name!r}: prefix {prefix!r} is not a valid variable-name prefix: use letters, digits and _"
            )
        file_path = Path(path)
        if not file_path.name:
            raise ConfigError(f"store {name!r}: path {str(path)!r} names no file: point it at the dotenv file")
        try:
            self.reader = Reader(reader)
        except ValueError:
            known = ", ".join(r.value for r in Reader)
            raise ConfigError(f"store {name!r}: reader is not one of {known}") from None  # never echoed: item 7
        if isinstance(fields, str) or any(f not in OPTIONAL_FIELDS for f in fields):
            raise ConfigError(
                f"store {name!r}: fields may name only {', '.join(OPTIONAL_FIELDS)} (API key and secret are always "
                "written), as an array"
            )
        self._store = name
        self.path = file_path
        self.prefix = prefix
        self._extra_fields = {field.upper() for field in fields}
        self._environment = Environment(environment) if environment is not None else None
        self._base_url = base_url
        self._names = {prefix + field: field for field in _FIELDS}

    # ----------------------------------------------------------------------------------------------- reading

    def shown(self) -> StoredKey:
        """The key the dotenv file shows, as its reader reads it. StoreNotFound when the file is missing or holds
        neither our key nor our secret line (nothing shown yet: a credential before its first key)."""
        text = self.read_text()
        if not self._holds_any_line(text):
            raise StoreNotFound(
                f"{self.path} holds no {self.prefix}API_KEY or {self.prefix}API_SECRET line yet: put the key "
                f"applications use there, or give the credential its first key with `rotator enroll`",
                store=self._store,
            )
        return self._key_from_text(text)

    def read_text(self) -> str:
        """The dotenv file's text, exactly (no newline translation), or the Store* error a person can act on."""
        try:
            data = read_regular_file(self.path)
        except IsADirectoryError as exc:
            raise StoreCorrupt(
                f"{self.path} is a directory, not a dotenv file: point `path` in rotator.toml at the file "
                "applications read (for example .env inside that folder)",
                store=self._store,
            ) from exc
        except NotARegularFile as exc:
            raise StoreCorrupt(
                f"{self.path} is not a regular file but {exc.kind}: reading it could wait for ever or never end. Put "
                "the dotenv file back there, or point `path` in rotator.toml at it",
                store=self._store,
            ) from None
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise StoreNotFound(
                f"{self.path} does not exist: create it with {self.prefix}API_KEY and {self.prefix}API_SECRET "
                "lines, give the credential its first key with `rotator enroll NAME`, or fix `path` in rotator.toml",
                store=self._store,
            ) from exc
        except PermissionError as exc:
            raise denied(self._store, "reading", self.path) from exc
        except OSError as exc:
            raise unavailable(self._store, "reading", self.path, exc) from exc
        return self.decode(data)

    def decode(self, data: bytes) -> str:
        """The file's bytes as text, exactly; StoreCorrupt when they are not UTF-8."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreCorrupt(
                f"{self.path} is not UTF-8 text (bad byte at offset {exc.start}): save it as UTF-8",
                store=self._store,
            ) from None

    def text_or_empty(self) -> str:
        """The file's text, or nothing when the file does not exist yet (its folder must)."""
        try:
            return self.read_text()
        except StoreNotFound:
            if not self.path.parent.is_dir():
                raise
            return ""

    def _holds_any_line(self, text: str) -> bool:
        names = {self.prefix + field for field in _REQUIRED}
        return any(not b.error and b.key in names for b in parse_stream(io.StringIO(text)))

    def _parse(self, text: str) -> dict[str, tuple[int, str]]:
        """Our variables (by field name, e.g. "API_KEY") with their line numbers; StoreCorrupt when ambiguous."""
        found: dict[str, list[tuple[int, str | None]]] = {}
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                self._reject_if_ours_is_broken(binding)
                continue
            if binding.key in self._names:
                line = _binding_line(binding)
                value = binding.value if self.reader is Reader.DOTENV else self._read_as(binding, line)
                found.setdefault(self._names[binding.key], []).append((line, value))
        values = {field: self._checked_value(field, hits) for field, hits in found.items()}
        for field in _REQUIRED:
            if field not in values:
                raise self._corrupt(
                    f"{self.prefix}{field} is missing: add a {self.prefix}{field}=... line "
                    "(or fix `prefix` in rotator.toml if the file uses another one)"
                )
        return values

    def _checked_value(self, field: str, hits: list[tuple[int, str | None]]) -> tuple[int, str]:
        """The one line of `field` and its value; StoreCorrupt when there are several, or its value cannot be used."""
        variable = self.prefix + field
        if len(hits) > 1:
            lines = ", ".join(str(line) for line, _ in hits)
            raise self._corrupt(f"{variable} is defined {len(hits)} times (lines {lines}): keep exactly one")
        line, value = hits[0]
        if not value:
            raise self._corrupt(f"line {line}: {variable} has an empty value: give it one or delete the line")
        if "${" in value:
            raise self._corrupt(
                f"line {line}: {variable} uses ${{...}} interpolation, so what applications read depends on other "
                "variables and cannot be checked or rotated: write the value itself"
            )
        return line, value

    def _read_as(self, binding: Binding, line: int) -> str:
        """Our line's value as the configured reader (env-file, shell) reads it."""
        assert binding.key is not None
        text = _value_text(binding.original.string, binding.key)
        if text is None:
            raise self._corrupt(
                f"line {line}: {binding.key} must be written NAME=value (no space around '=') for a "
                f"{self.reader.value} reader: fix the line"
            )
        if self.reader is Reader.ENV_FILE and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            raise self._corrupt(
                f"line {line}: {binding.key} is quoted, and env-file readers (docker --env-file, kubectl "
                "--from-env-file) keep the quotes as part of the value: applications read it with its quotes. "
                "Remove the quotes"
            )
        try:
            return dotenv_lines.parse(text, self.reader)
        except dotenv_lines.Unrepresentable as exc:
            raise self._corrupt(f"line {line}: {binding.key}: {exc}. Fix the line") from None

    def _reject_if_ours_is_broken(self, binding: Binding) -> None:
        match = _BROKEN_LINE_NAME_RE.match(binding.original.string)
        if match and match.group(1) in self._names:
            raise self._corrupt(
                f"line {_binding_line(binding)}: {match.group(1)} cannot be parsed (unclosed quote?): fix its quoting"
            )

    def _key_from_text(self, text: str) -> StoredKey:
        values = self._parse(text)
        environment = self._environment
        if "ENVIRONMENT" in values:
            environment = self._parse_environment(*values["ENVIRONMENT"])
        key_id = values.get("KEY_ID")
        base_url = values.get("BASE_URL")
        return StoredKey(
            api_key=values["API_KEY"][1],
            api_secret=Secret(values["API_SECRET"][1]),
            key_id=key_id[1] if key_id else None,
            environment=environment,
            base_url=base_url[1] if base_url else self._base_url,
        )

    def _parse_environment(self, line: int, value: str) -> Environment:
        try:
            return Environment.from_bluum(value)
        except ValueError:
            raise self._corrupt(
                f"line {line}: {self.prefix}ENVIRONMENT must be sandbox or production: fix the value"
            ) from None

    # ----------------------------------------------------------------------------------------------- rendering

    def check_storable(self, key: StoredKey) -> None:
        """Refuse, before any write, a key this store cannot hold so that readers get back exactly what was written."""
        for name, value in self._wanted(key).items():
            if value is None:
                continue
            if name in (self.prefix + "API_KEY", self.prefix + "API_SECRET") and not value:
                raise StoreError(f"{name} of {key.label} is empty; nothing was written", store=self._store)
            try:
                dotenv_lines.render(value, self.reader, None)
            except dotenv_lines.Unrepresentable as exc:
                raise StoreError(
                    f"{name} of {key.label} cannot be written for a {self.reader.value} reader: {exc}, so "
                    "applications would read another value; nothing was written. Use another store type for this "
                    "credential, or issue a new key",
                    store=self._store,
                ) from None

    def render(self, text: str, key: StoredKey) -> str:
        """`text` with our lines set to `key`: updated in place, missing ones appended, all others untouched.

        The result is parsed back before anything is written, so a file where another line's unclosed quote would
        swallow ours is refused instead of being written wrong.
        """
        self.check_storable(key)
        wanted = self._wanted(key)
        bom = _BOM if text.startswith(_BOM) else ""
        body = text[len(bom) :]
        bindings = list(parse_stream(io.StringIO(body)))
        if "".join(b.original.string for b in bindings) != body:
            raise self._corrupt("python-dotenv cannot split it into lines losslessly: simplify its quoting")
        parts: list[str] = []
        written: set[str] = set()
        for binding in bindings:
            if not binding.error and binding.key in wanted:
                value = wanted.pop(binding.key)
                parts.append(self._rewrite_binding(binding.original.string, binding.key, value))
                if value is not None:
                    written.add(binding.key)
            else:
                parts.append(binding.original.string)
        added = {
            name: value
            for name, value in wanted.items()
            if value is not None and (self._names[name] in _REQUIRED or self._names[name] in self._extra_fields)
        }
        new_text = bom + self._append_missing("".join(parts), added)
        self._check_reads_back(new_text, key, written | set(added))
        return new_text

    def _wanted(self, key: StoredKey) -> dict[str, str | None]:
        """Our variables as `key` projects them; None means "no such line" (e.g. a hand-seeded key has no id)."""
        environment = key.environment or self._environment
        fields = {
            "API_KEY": key.api_key,
            "API_SECRET": key.api_secret.reveal(),
            "KEY_ID": key.key_id,
            "ENVIRONMENT": environment.value if environment is not None else None,
            "BASE_URL": key.base_url or self._base_url,
        }
        return {self.prefix + field: value for field, value in fields.items()}

    def _check_reads_back(self, new_text: str, key: StoredKey, written: set[str]) -> None:
        """Every line written must read back, with the reader's own rules, as exactly the value meant."""
        expected = {name: value for name, value in self._wanted(key).items() if name in written}
        values = self._parse(new_text)
        got = {self.prefix + field: value for field, (_, value) in values.items()}
        if got != expected:
            wrong = sorted(name for name in {*got, *expected} if got.get(name) != expected.get(name))
            raise self._corrupt(
                f"after rewriting, {', '.join(wrong)} would not read back as written; another line probably has an "
                "unclosed quote that swallows ours: fix that line. Nothing was changed"
            )

    def _rewrite_binding(self, original: str, name: str, value: str | None) -> str:
        """Our line with a new value, keeping what surrounds it (blank lines before it, `export`, the line ending)
        and its quoting style where the reader allows it."""
        lead_match = _LEADING_WS_RE.match(original)
        lead = lead_match.group() if lead_match else ""
        eol_match = _EOL_RE.search(original)
        eol = eol_match.group() if eol_match else ""
        if value is None:
            blank_lines = _WHOLE_BLANK_LINES_RE.match(lead)
            return blank_lines.group() if blank_lines else ""
        export = _EXPORT_RE.match(original, len(lead))
        old = _value_text(original, name)
        style = dotenv_lines.style_of(old.strip()) if old is not None else None
        return f"{lead}{export.group() if export else ''}{name}={self._rendered(value, style)}{eol}"

    def _append_missing(self, body: str, missing: dict[str, str]) -> str:
        """Append lines for our variables the file lacked, in the file's own line-ending style."""
        lines = [f"{name}={self._rendered(value, None)}" for name, value in missing.items()]
        if not lines:
            return body
        newline = "\r\n" if "\r\n" in body else "\n"
        if body and not body.endswith(("\n", "\r")):
            body += newline
        return body + "".join(line + newline for line in lines)

    def _rendered(self, value: str, style: dotenv_lines.Style | None) -> str:
        try:
            return dotenv_lines.render(value, self.reader, style)
        except dotenv_lines.Unrepresentable as exc:  # check_storable refuses these before anything is written
            reader = self.reader.value
            raise StoreError(f"a value cannot be written for a {reader} reader: {exc}", store=self._store) from None

    def _corrupt(self, problem: str) -> StoreCorrupt:
        return StoreCorrupt(f"{self.path}: {problem}", store=self._store)


def _binding_line(binding: Binding) -> int:
    """The 1-based line where the binding's variable starts (python-dotenv counts from its leading blank lines)."""
    original = binding.original.string
    lead = _LEADING_WS_RE.match(original)
    skipped = lead.group() if lead else ""
    return binding.original.line + len(re.findall(r"\r\n|\n|\r", skipped))


def _value_text(original: str, name: str) -> str | None:
    """The text after `NAME=` on our line (line ending excluded), or None when `=` is not right after the name."""
    start = original.find(name)
    match = _VALUE_TEXT_RE.match(original, start + len(name)) if start >= 0 else None
    if match is None or original[start + len(name)] != "=":
        return None
    return match.group(1)
