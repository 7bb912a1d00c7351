"""What the command line loads before it does anything (issue 18, Performance: `rotator --help` <= 2x a bare
interpreter, `rotator status` <= 2x `--help`; benchmarks/bench_cli_start.py prints the figures). Each check runs
a fresh interpreter and lists the modules it ended with.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPORT = "\nimport sys\nprint(repr(sorted(sys.modules)), file=sys.stderr)"  # json itself is one to look for


def modules_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, check=False)
    return set(ast.literal_eval(result.stderr.strip().splitlines()[-1]))


def run_cli(*args: str) -> str:
    """Code that runs `rotator ARGS` in this interpreter and goes on after its exit."""
    argv = ["rotator", *args]
    return (
        f"import sys\nfrom rotator.cli import main\nsys.argv = {argv!r}\ntry:\n    main()\nexcept SystemExit:\n    pass"
    )


def test_help_loads_click_and_the_group_only() -> None:
    """Not the configuration, the model, logging's JSON, the pair-file reader, the formatters or any command's module
    (the group loads a command's module when it runs): --help needs none."""
    loaded = modules_after(run_cli("--help"))
    ours = sorted(name for name in loaded if name.split(".")[0] in ("rotator", "backends"))
    assert ours == [
        "rotator",
        "rotator.cli",
        "rotator.cli.commands",
        "rotator.cli.lazy_group",
        "rotator.cli.settings",
        "rotator.core",
        "rotator.core.errors",
    ]
    assert not {"json", "logging", "dataclasses", "hmac", "tomllib", "importlib.metadata"} & loaded


def test_status_over_built_in_stores_scans_no_package_metadata(tmp_path: Path) -> None:
    """Store plug-ins are found through package metadata (importlib.metadata, zipfile, email: a tenth of the
    command). A plug-in can never take a built-in name, so a file whose stores are all built in needs no scan."""
    (tmp_path / "c.env").write_text("BLUUM_API_KEY='pk_test_0001'\nBLUUM_API_SECRET='sk_test_0001'\n")
    config = tmp_path / "rotator.toml"
    config.write_text(
        '[stores.s]\ntype = "env"\npath = "c.env"\n\n'
        '[credentials.c]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s"\n'
    )
    loaded = modules_after(run_cli("--config", str(config), "status"))
    assert "rotator.rotation.status" in loaded  # the command ran
    assert "importlib.metadata" not in loaded


def test_a_type_that_is_not_built_in_is_looked_up_among_the_plug_ins(tmp_path: Path) -> None:
    config = tmp_path / "rotator.toml"
    config.write_text(
        '[stores.s]\ntype = "ledgerdb"\n\n[credentials.c]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "status"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "names no installed store type" in result.stderr
    assert "use one of the installed types: aws, doppler, env, vault" in result.stderr
