"""How one `NAME=value` line is written and read by the program that reads the file: pure functions, no I/O.

Why more than one way: a dotenv file is read by python-dotenv in one application, by `docker run --env-file` or
`kubectl create secret --from-env-file` in another (they keep quotes as part of the value: `KEY='abc'` gives them
`'abc'`), and by a shell's `source` in a third. Writing python-dotenv's quoting into a Docker env-file hands the
application a key with quotes around it, and Bluum answers 401. So the env store is told its consumers' reader,
writes each value as that reader reads it, keeps the quoting style a line already has where the reader allows it,
reads the value back with that reader's rules, and refuses a value the reader cannot carry.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final


class Reader(StrEnum):
    """Who reads the file."""

    DOTENV = "dotenv"  # python-dotenv and the libraries that follow its rules
    ENV_FILE = "env-file"  # docker run --env-file, compose env_file, kubectl create secret --from-env-file
    SHELL = "shell"  # `. file` or `source file` in sh or bash


class Style(StrEnum):
    """How a value is quoted on its line."""

    BARE = "bare"
    SINGLE = "single"
    DOUBLE = "double"


class Unrepresentable(ValueError):
    """The reader cannot carry this value exactly; the message says why (never the value)."""


_DOTENV_BARE: Final = re.compile(r"[^\s'\"#\\$`]+")
_SHELL_BARE: Final = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def style_of(value_text: str) -> Style:
    """The style of the text after `NAME=` on an existing line."""
    if value_text.startswith("'"):
        return Style.SINGLE
    if value_text.startswith('"'):
        return Style.DOUBLE
    return Style.BARE


def render(value: str, reader: Reader, style: Style | None) -> str:
    """The text to write after `NAME=` so that `reader` reads `value`; `style` is the line's own (None: a new line).

    The line's style is kept where the reader allows it and the value fits it; otherwise the safest style the
    reader has is used.
    """
    if not value:
        raise Unrepresentable("the value is empty")
    multiline = "\n" in value or "\r" in value
    if reader is Reader.ENV_FILE:
        if multiline:
            raise Unrepresentable("the value spans lines, which env-file readers do not carry")
        if value != value.strip():
            raise Unrepresentable("the value starts or ends with whitespace, which env-file readers do not keep")
        return value  # env-file readers take the rest of the line as is: quotes would become part of the value
    if reader is Reader.SHELL:
        if style in (Style.BARE, None) and _SHELL_BARE.fullmatch(value):  # never matches a line break
            return value
        if style is Style.DOUBLE and not any(ch in value for ch in '"\\$`'):
            return f'"{value}"'
        return "'" + value.replace("'", "'\\''") + "'"
    if "${" in value:
        raise Unrepresentable("the value contains '${', which python-dotenv expands even inside quotes")
    if style is Style.BARE and _DOTENV_BARE.fullmatch(value):
        return value
    if style is Style.DOUBLE:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse(value_text: str, reader: Reader) -> str:
    """What `reader` reads from the text after `NAME=` (the line ending excluded), for readers other than
    python-dotenv (its own parser reads that case). Unrepresentable when the reader would read something that
    depends on the environment (a shell expansion) or is not one value."""
    if reader is Reader.ENV_FILE:
        return value_text
    if reader is Reader.SHELL:
        if any(ch in value_text for ch in "$`") and not _single_quoted_only(value_text):
            raise Unrepresentable("the value uses $ or ` outside single quotes: the shell would expand it")
        import shlex  # here: only a file a shell reads needs it (`rotator status` over python-dotenv files does not)

        try:
            words = shlex.split(value_text, comments=True, posix=True)
        except ValueError as exc:
            raise Unrepresentable(f"the shell cannot read it ({exc})") from None
        if len(words) != 1:
            raise Unrepresentable("the shell would not read it as one word: quote it")
        return words[0]
    raise ValueError("python-dotenv lines are read by python-dotenv's own parser")


def _single_quoted_only(value_text: str) -> bool:
    """True when every $ and ` in the text sits inside single quotes (where a shell leaves them alone)."""
    inside = False
    for ch in value_text:
        if ch == "'":
            inside = not inside
        elif ch in "$`" and not inside:
            return False
    return True
