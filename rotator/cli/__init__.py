"""The `rotator` command line.

This face keeps `rotator.cli:main` (the console script) valid.
"""

from rotator.cli.commands import cli, daemon, main

__all__ = ["cli", "daemon", "main"]
