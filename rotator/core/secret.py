"""A string that refuses to be printed.

Bluum shows an API secret exactly once; after that it lives in our memory and in stores. Every path that
could print it (repr in a traceback, an f-string in a log line, a pickled exception) goes through this type,
so leaking it takes a deliberate `reveal()` rather than a careless format.
"""

from __future__ import annotations

import hmac
from typing import NoReturn, final

MASK = "********"


@final
class Secret:
    """Holds a secret value; str() and repr() show only a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """Return the real value: call this only where the value leaves for Bluum or a store."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
