"""`rotator status` loads rotator.toml, and a file whose stores have no `reload` or `consumers` and which has no
`[leak_reports]` or `[notifications.NAME]` table makes it import none of the modules that parse those (issue 18:
status <= 2x `--help`): each is imported by the parse that meets its key. Nor does it import the rotation's machine
(rotator/rules/machine.py): when a key is due is rotator/rules/schedule.py. When the keys are there, the modules are
imported and the file is validated exactly as before: the same problems, the same exit code.

Beside tests/integration/test_cli_lazy_commands.py::test_status_imports_its_own_command_module_only, whose fresh
process (`python -m rotator`, runpy) these checks share.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rotator.config import consumers, reloads, stores
from tests.integration.test_cli_lazy_commands import imported_by

NOT_FOR_STATUS = {"rotator.rules.machine", "shlex"}
"""The rotation's steps and verdicts: status needs only when a key is due (rotator/rules/schedule.py); and how a shell
reads a line (backends/dotenv_lines.py), for a file python-dotenv reads."""

ONLY_WITH_THEIR_KEY = {
    "rotator.config.consumers",
    "rotator.config.reloads",
    "rotator.config.leak_reports",
    "rotator.config.notifications",
}
"""What parses a store's `consumers`, a store's `reload`, the `[leak_reports]` table and `[notifications.NAME]`."""


def _config(folder: Path, store_extra: str = "", tail: str = "") -> Path:
    (folder / "c.env").write_text("BLUUM_API_KEY='pk_test_0001'\nBLUUM_API_SECRET='sk_test_0001'\n")
    config = folder / "rotator.toml"
    config.write_text(
        f'[stores.s]\ntype = "env"\npath = "c.env"\n{store_extra}\n'
        f'[credentials.c]\nenvironment = "sandbox"\nissuer = "manual"\nstore = "s"\n{tail}'
    )
    return config


def test_status_without_those_keys_imports_none_of_their_modules(tmp_path: Path) -> None:
    loaded = imported_by("--config", str(_config(tmp_path)), "status")
    assert "rotator.rotation.status" in loaded  # the command ran, so the file was loaded and validated
    assert "rotator.config.stores" in loaded
    assert sorted(ONLY_WITH_THEIR_KEY & loaded) == []
    assert "rotator.rules.schedule" in loaded
    assert sorted(NOT_FOR_STATUS & loaded) == []


def test_with_those_keys_status_imports_them(tmp_path: Path) -> None:
    """The control: the same check sees each module once the file has its key (and the file is still valid)."""
    store_extra = (
        'reload = [{ command = ["true"] }]\n'
        'consumers = [{ name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" }]\n'
    )
    tail = '\n[leak_reports]\nsecret_env = "LEAK_KEY"\n\n[notifications.ops]\nurl = "http://127.0.0.1:9/hook"\n'
    tail += 'secret_env = "HOOK_KEY"\n'
    loaded = imported_by("--config", str(_config(tmp_path, store_extra, tail)), "status")
    assert "rotator.rotation.status" in loaded
    assert loaded >= ONLY_WITH_THEIR_KEY


def test_wrong_values_under_those_keys_are_reported_as_before(tmp_path: Path) -> None:
    """Validation is the same when the keys are there: every problem of the three, together, exit 2."""
    store_extra = 'reload = "systemctl reload trading"\nconsumers = 3\n'
    tail = "\n[leak_reports]\nnosuch = 1\n"
    config = _config(tmp_path, store_extra, tail)
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "status"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "  - stores.s.reload: expected an array of inline tables. Fix: write reload = "
        '[{ command = ["systemctl", "reload", "trading"] }] (or [] for none).',
        "  - stores.s.consumers: expected an array of inline tables. Fix: write consumers = "
        '[{ name = "trader-1", url = "http://127.0.0.1:9001/-/bluum-key" }].',
        "  - leak_reports: unknown key 'nosuch'. Fix: rename or remove it. Known keys: secret_env, path, tolerance, "
        "max_body.",
        "  - leak_reports.secret_env: missing (the variable holding the HMAC key). Fix: add secret_env = "
        '"ROTATOR_LEAK_SECRET".',
    ]
    assert result.stdout == ""


def test_the_store_table_names_the_keys_their_modules_parse() -> None:
    """stores.py names `reload` and `consumers` itself (to know when to import their modules): the same keys."""
    assert (stores.RELOAD_KEY, stores.CONSUMERS_KEY) == (reloads.RELOAD_KEY, consumers.CONSUMERS_KEY)
