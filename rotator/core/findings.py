"""What `rotator plan` found about one part of one credential: the problem and its fix, one line each at 3 a.m.

Why in core: the stores (backends/) check their own permissions and report in these terms, and backends import only
rotator/core. A finding never carries a secret: parts are named by store, path or key id, never by value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from rotator.core.errors import ExitCode

__all__ = ["Finding", "Severity"]


class Severity(StrEnum):
    """How a finding weighs on the plan's exit code."""

    PROBLEM = "problem"
    """A rotation would fail, or must not run, until this is fixed: exit 2 (bad configuration, nothing changed)."""
    UNREACHABLE = "unreachable"
    """Bluum or a store did not answer: exit 5 (safe to try again as is)."""
    UNCHECKED = "not checked"
    """What could not be proven without a write (or without a permission the runner lacks): said, never guessed."""
    INFO = "info"
    """What is true and needs nothing: key ages, what is due, a pause."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the plan: which credential, which part (a store, Bluum, a reload action), what, and the fix."""

    part: str
    problem: str
    fix: str = ""
    severity: Severity = Severity.PROBLEM
    credential: str = ""

    @property
    def exit_code(self) -> ExitCode:
        if self.severity is Severity.PROBLEM:
            return ExitCode.BAD_INPUT
        if self.severity is Severity.UNREACHABLE:
            return ExitCode.UNAVAILABLE
        return ExitCode.OK

    def of(self, credential: str) -> Finding:
        """This finding, said of `credential` (a store reports without knowing whose it is)."""
        return replace(self, credential=credential)
