"""Whether a reload command can be started at all, checked before a rotation creates anything.

Why: a reload runs after the new key is created and deployed. A program that does not exist (a typo, a tool not
installed on this host, a path relative to the wrong folder) used to be found only then: the rotation stopped
half-way (exit 4) at every tick, with a dry run that had said all was well. Finding it at the start costs a `stat`
per command and leaves nothing to undo.

What is checked is what `reload_runner` will do: the program is looked up on the PATH the command will be given (or
relative to the configuration file's folder when it names a path), and it must be a file this process may execute.
Whether the program then succeeds is not knowable in advance; URL actions are not called before their time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from rotator.reload_config import TOKEN_SHAPED, ReloadAction
from rotator.reload_runner import action_env


def command_problem(action: ReloadAction, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why `action`'s program cannot be started, or None (also None for a URL action). Names the program (a
    token-shaped one is shown as `…`) and where it was looked for; never an argument."""
    if action.kind != "command":
        return None
    program = action.command[0]
    shown = TOKEN_SHAPED.sub("…", program)
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else action.cwd / program
        if not path.exists():
            return f"the program {shown!r} does not exist (looked for {path})"
        if not path.is_file():
            return f"the program {shown!r} is not a file ({path})"
        if not os.access(path, os.X_OK):
            return f"the program {shown!r} is not executable ({path}): chmod +x it, or run it through its interpreter"
        return None
    search = action_env(action, {}, environ)["PATH"]
    if shutil.which(program, path=search) is None:
        return f"the program {shown!r} is not found on the PATH a reload command gets ({search})"
    return None
