"""`rotator plan`'s dotenv access check as the user a rotation would run as: a folder that user cannot write (a cron
job installed as the wrong user) is a problem with its fix, found without writing; root passes the same check.

Run as the second local user (`nobody`, tests/e2e/second_user.py) over a root-owned 0755 folder: nobody can pass
through and read the file (0644 here, so only the folder is wrong), not write beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.env.store import EnvStore
from tests.e2e.second_user import SETPRIV, folder_nobody_can_reach, needs_nobody_to_run_the_rotator

PROBE = """
import json, sys
from pathlib import Path
from backends.env.store import EnvStore
store = EnvStore("app", path=sys.argv[1])
print(json.dumps([[f.part, f.problem, f.fix] for f in store.check_access()]))
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    yield from folder_nobody_can_reach("plan-", 0o755)


def findings_as(user: tuple[str, ...], file: Path) -> list[list[str]]:
    done = subprocess.run(
        [*user, sys.executable, "-c", PROBE, str(file)], capture_output=True, text=True, check=True, timeout=60
    )
    answer: list[list[str]] = json.loads(done.stdout)
    return answer


def test_a_folder_this_user_cannot_write_is_found_without_writing(folder: Path) -> None:
    needs_nobody_to_run_the_rotator()
    file = folder / "app.env"
    file.write_text("BLUUM_API_KEY='apk_x'\n")
    file.chmod(0o644)
    before = sorted(path.name for path in folder.iterdir())
    found = findings_as(SETPRIV, file)
    problems = " | ".join(problem for _, problem, _ in found)
    assert f"cannot write in {folder}" in problems, found
    assert any(f"chown 65534 {folder}" in fix for _, _, fix in found), found
    assert EnvStore("app", path=str(file)).check_access() == []  # root (this process) may write there
    assert sorted(path.name for path in folder.iterdir()) == before  # nothing created: no state folder, no lock
