"""The fields every program or address the deployer names shares: reload actions, health checks and consumers.

One parser per field, so a reload command, a health command and a consumer's command are refused for the same
reasons with the same words (an argument list, never a shell string; an https address unless it stays on this
machine), and a rule tightened for one is tightened for all.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

from rotator.config.tables import Table
from rotator.core.durations import format_duration
from rotator.core.urls import LOOPBACK_HINT, url_problem

__all__ = ["argv", "pass_env", "timeout", "url"]

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def argv(table: Table, value: object, *, subject: str, example: str) -> tuple[str, ...] | None:
    """`command`: a non-empty list of strings, the program first. A string is refused rather than split: splitting
    it would need a shell's quoting rules, and the string is never echoed back (it may hold a token)."""
    if isinstance(value, str):
        table.problem(
            "command",
            f"is a string: a {subject} is an argument list, never run through a shell",
            'write it as a list, command = ["program", "argument", ...]; for shell syntax, say so: '
            '["/bin/sh", "-c", "..."] (the string is not repeated here: it may hold a token)',
        )
        return None
    if not isinstance(value, list) or not value or not all(isinstance(arg, str) for arg in value):
        table.problem(
            "command", "expected a non-empty array of strings (the program, then its arguments)", f"write {example}"
        )
        return None
    if not value[0].strip():
        table.problem("command", "the program (its first item) is empty", f"write {example}")
        return None
    return tuple(value)


def url(table: Table, value: object, *, example: str) -> str | None:
    """The one URL rule of rotator/core/urls.py: such a call can carry a token in its path, so it goes over https
    unless it stays on this machine."""
    text = value.strip() if isinstance(value, str) else value
    problem = url_problem(text)
    if problem is not None:
        table.problem("url", problem, f"write {example}, or https://HOST/PATH ({LOOPBACK_HINT})")
        return None
    assert isinstance(text, str)  # url_problem refuses anything else
    return urlsplit(text).geturl()


def timeout(table: Table, default: timedelta, most: timedelta) -> timedelta | None:
    """`timeout`, longer than 0s and at most `most` (each kind of call has its own bound)."""
    value = table.duration("timeout", default)
    if value is not None and not timedelta(0) < value <= most:
        limit = format_duration(most)
        table.problem(
            "timeout", f"must be longer than 0s and at most {limit}", f'write timeout = "{format_duration(default)}"'
        )
        return None
    return value


def pass_env(table: Table, value: object, has_command: bool) -> tuple[str, ...] | None:
    """`pass_env`: names of variables a command may see; values are never written in the file."""
    if "pass_env" in table.data and not has_command:
        table.problem("pass_env", "applies to a command action only", "remove it")
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and _ENV_NAME.fullmatch(name) for name in value):
        table.problem(
            "pass_env",
            "expected an array of environment variable names",
            'write pass_env = ["KUBECONFIG", "AWS_PROFILE"] (names only: values come from the environment)',
        )
        return None
    return tuple(value)
