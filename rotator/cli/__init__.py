"""The `rotator` command line.

This face keeps `rotator.cli:main` (the console script) valid, and `rotator.cli.daemon` (the daemon command),
which is imported only when asked for: every command imports this package first, and `rotator --help` loads no
command's module (`rotator.cli.lazy_group`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.cli.commands import cli, main

if TYPE_CHECKING:
    from rotator.cli.tick_commands import daemon

__all__ = ["cli", "daemon", "main"]


def __getattr__(name: str) -> object:
    if name == "daemon":
        from rotator.cli.tick_commands import daemon

        return daemon
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
