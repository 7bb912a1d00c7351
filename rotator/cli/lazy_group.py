"""A click group that imports a command's module only when that command runs (click's documented lazy loading).

Why: `rotator --help` and `rotator status` paid for importing every command module (and what each imports) though
they run one command or none. The group knows each command by the module and attribute that define it, plus the
first paragraph of its help: the command list of `rotator --help` is made from that paragraph exactly as click makes
it from the command's own help, so listing the commands imports none of them. A test compares each paragraph with
the command's real help (tests/integration/test_cli_lazy_commands.py), so the two cannot drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup"]


class LazyCommand:
    """Where a command is defined, and the first paragraph of its help (what `--help` lists). A plain class: a
    NamedTuple or a dataclass would cost `--help` a third of a millisecond to create."""

    __slots__ = ("attribute", "module", "summary")

    def __init__(self, module: str, attribute: str, summary: str) -> None:
        self.module = module
        self.attribute = attribute
        self.summary = summary


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; see the module docstring."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:  # noqa: ANN401 - click's
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        if self._listing:  # `--help` lists it: its help paragraph is enough
            return click.Command(cmd_name, help=self.lazy[cmd_name].summary)
        return self.load(cmd_name)

    def load(self, cmd_name: str) -> click.Command:
        """Import the command `cmd_name` and keep it (a later lookup imports nothing)."""
        where = self.lazy[cmd_name]
        command = getattr(importlib.import_module(where.module), where.attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise TypeError(f"{where.module}.{where.attribute} is not the click command {cmd_name!r}")
        self.add_command(command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click resolves it. A name no command has loads every command first: click suggests the near names
        (`Did you mean ...?`) from the commands the group holds, which must then be all of them."""
        if args and not ctx.resilient_parsing and self.get_command(ctx, args[0]) is None:
            for name in self.lazy:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._listing_only():
            super().format_commands(ctx, formatter)

    @contextmanager
    def _listing_only(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False
