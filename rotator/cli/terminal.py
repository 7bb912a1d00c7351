"""The one person at the terminal, shared by the rotations a command runs at once: one question at a time, and
step lines that name their credential when several run.

Unattended runs (cron, the daemon, a pipe) never wait on a person: without a terminal the answer is no.
"""

from __future__ import annotations

import sys
import threading

import click

__all__ = ["PROMPT", "confirm_revoked", "interactive"]


class _Terminal:
    """The lock that keeps two rotations from asking at once, and whether several credentials are running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.many = False
        """Several credentials run at once: step lines name theirs."""


PROMPT = _Terminal()


def interactive() -> bool:
    """A person can both read the question and answer it."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm_revoked(prompt: str) -> bool:
    """Ask a person at a terminal; unattended runs never wait on one."""
    if not interactive():
        return False
    with PROMPT.lock:
        return click.confirm(f"{prompt}. Done?", default=False)
