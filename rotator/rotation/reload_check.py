"""Whether a reload command can be started at all, checked before a rotation creates anything.

Why: a reload runs after the new key is created and deployed. A program that does not exist (a typo, a tool not
installed on this host, a path relative to the wrong folder) used to be found only then: the rotation stopped
half-way (exit 4) at every tick, with a dry run that had said all was well. Finding it at the start costs a `stat`
per command and leaves nothing to undo.

What is checked is what `reload_runner` will do: the program is looked up on the PATH the command will be given (or
relative to the configuration file's folder when it names a path), and it must be a file this process may execute,
which nobody but root and the running user could change (the rule rotator.toml itself follows: a script of another
user's, or one in their folder, would be their command run as the rotator's user, root under the README's cron).
Whether the program then succeeds is not knowable in advance; URL actions are not called before their time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from rotator.config.reloads import TOKEN_SHAPED, ReloadAction
from rotator.config.trust import trust_problems
from rotator.rotation.reload_runner import action_env


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
        return _untrusted(shown, path)
    search = action_env(action, {}, environ)["PATH"]
    found = shutil.which(program, path=search)
    if found is None:
        return f"the program {shown!r} is not found on the PATH a reload command gets ({search})"
    return _untrusted(shown, Path(found))


def _untrusted(shown: str, path: Path) -> str | None:
    """Why another user could change the program at `path` (rotator/config/trust.py's rule, as for rotator.toml),
    or None: the rotator runs it as its own user, root under the README's cron, after every rotation."""
    problems, fixes = trust_problems(path)
    if not problems:
        return None
    return (
        f"the program {shown!r} ({path}) could be changed by another user than root and the one running the rotator, "
        f"who would then run their own commands as uid {os.geteuid()}: {'; '.join(problems)} "
        f"(`{'; '.join(dict.fromkeys(fixes))}` fixes it)"
    )
