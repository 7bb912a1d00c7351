"""The second local user the trust tests play (`nobody`, uid/gid 65534, through `setpriv`), and the folders under
/tmp it can reach: pytest's own temporary folders are 0700 under a 0700 root folder, so nobody could not pass
through them to do what the test has it do.

Shared by the e2e files of issue 16 (test_review_issue16 and _b, test_trust_dotenv, test_trust_core, test_trust_net,
test_trust_state, test_trust_config), which wrote these once each.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

NOBODY = 65534
"""uid and gid of `nobody`/`nogroup`: the second local user."""

SETPRIV = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
"""The command prefix that runs the rest as nobody, with no other groups."""


def as_nobody(*command: str) -> None:
    """Run `command` as the second local user; a failure fails the test (CalledProcessError)."""
    subprocess.run([*SETPRIV, *command], check=True, capture_output=True, text=True)


def needs_second_user(why: str) -> None:
    """Skip, saying `why` root is needed, unless this run may act as nobody (root, and setpriv installed)."""
    if os.geteuid() != 0:
        pytest.skip(why)
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to act as a second local user")


@functools.cache
def _nobody_imports_the_rotator() -> bool:
    done = subprocess.run([*SETPRIV, sys.executable, "-c", "import rotator"], capture_output=True, check=False)
    return done.returncode == 0


def needs_nobody_to_run_the_rotator() -> None:
    """Skip unless nobody can run this checkout's rotator: a clone under a private folder (`mktemp -d` makes 0700)
    cannot be read by another user, and then a test that runs `rotator` as nobody has nothing to test."""
    needs_second_user("needs root to act as a second local user")
    if not _nobody_imports_the_rotator():
        pytest.skip(
            f"nobody cannot import rotator with {sys.executable}: a folder above this checkout or its venv is private "
            "(mktemp -d makes 0700); clone into a folder other users can read to run this test"
        )


def folder_nobody_can_reach(prefix: str, mode: int = 0o755) -> Iterator[Path]:
    """A new folder under /tmp of `mode` (0711: nobody may pass through, not list), removed afterwards: the body of a
    fixture (`yield from folder_nobody_can_reach(...)`)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(mode)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
