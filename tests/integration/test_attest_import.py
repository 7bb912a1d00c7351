"""rotator/attest.py is vendored by applications: importing it must load only the standard library, never a
third-party module (an application must not need the rotator's dependencies) nor another rotator module."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_helper_loads_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import rotator.attest; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "rotator.attest" in loaded
    foreign = [
        name
        for name in loaded
        if name not in ("rotator", "rotator.attest")
        and name.split(".")[0].lstrip("_") not in sys.stdlib_module_names
        and name.split(".")[0] not in sys.stdlib_module_names
    ]
    assert not foreign, f"rotator.attest loads more than the standard library: {foreign}"
