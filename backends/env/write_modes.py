"""How the env store writes its dotenv file: `replace` (a new file renamed over the old one) or `in_place` (the same
file rewritten, for a hard-linked file or a single-file bind mount).

Why apart from `backends.env.target`, which does the writing: the store checks the setting when it is built, and
`rotator status` builds every store but writes none, so it need not import the target and its rules.
"""

from __future__ import annotations

from typing import Final

__all__ = ["IN_PLACE", "REPLACE", "WRITE_MODES"]

REPLACE: Final = "replace"
IN_PLACE: Final = "in_place"
WRITE_MODES: Final = (REPLACE, IN_PLACE)
