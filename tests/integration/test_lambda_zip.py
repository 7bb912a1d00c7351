"""`make lambda-zip` (scripts/build_lambda_zip.py): the deployment package is reproducible, holds the handler and
its dependencies, and leaves boto3/botocore to the Lambda runtime and click to the CLI.

Both builds read one snapshot of rotator/ and backends/ taken into tmp_path, so an edit made in the checkout while
the test runs cannot make them differ; the packages go to tmp_path, never to build/ in the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.integration.terraform_support import CHECKOUT, ZIP_NAME, build_lambda_zip

pytestmark = pytest.mark.slow

HANDLER_FILE = "rotator/aws_lambda/entry.py"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath")
LEFT_OUT = ("rotator/cli/", "rotator/daemon/", "rotator/simulator/", "rotator/__main__.py")
"""What only the command line and the daemon run, left out by folder: the commands and the demo (click), the
daemon's loop, Prometheus metrics, /healthz and stop signals (schedule, prometheus_client), the simulator, and
`python -m rotator`."""
DEPENDENCIES = ("httpx", "httpcore", "h11", "anyio", "idna", "certifi", "tenacity", "dotenv", "hvac", "requests")


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    snapshot = tmp_path_factory.mktemp("source")
    for package in ("rotator", "backends"):
        shutil.copytree(CHECKOUT / package, snapshot / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("zips")
    first, second = out / "first" / ZIP_NAME, out / "second" / ZIP_NAME
    result = build_lambda_zip(first, snapshot)
    print(result.stdout.strip())
    build_lambda_zip(second, snapshot)
    return first, second


@pytest.fixture(scope="module")
def names(builds: tuple[Path, Path]) -> list[str]:
    with zipfile.ZipFile(builds[0]) as archive:
        return archive.namelist()


def test_two_builds_give_the_same_bytes(builds: tuple[Path, Path]):
    first, second = builds
    assert first.read_bytes() == second.read_bytes()


def test_entries_are_sorted_with_fixed_times_and_modes(builds: tuple[Path, Path]):
    with zipfile.ZipFile(builds[0]) as archive:
        infos = archive.infolist()
        assert archive.testzip() is None
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert not [info.filename for info in infos if info.is_dir()]


def test_holds_our_packages_without_tests_caches_or_the_simulator(names: list[str]):
    tops = {name.split("/")[0] for name in names}
    assert {"rotator", "backends"} <= tops
    assert "rotator/__init__.py" in names
    assert "backends/aws/store.py" in names
    assert "rotator/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "bin/", "scripts/"))]
    assert not [n for n in names if n.endswith(("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json"))]


def test_leaves_the_command_line_the_daemon_and_the_simulator_out_by_folder(names: list[str]):
    assert not [n for n in names if n.startswith(LEFT_OUT)]
    assert "rotator/ops/app.py" in names, "the assembly every way in shares is the Lambda's too"
    assert "rotator/ops/alerts.py" in names
    for folder in ("cli", "daemon"):  # the folders exist: what is left out is left out by its folder
        assert (CHECKOUT / "rotator" / folder / "__init__.py").is_file()


def test_holds_the_dependencies_but_not_what_the_runtime_has(names: list[str]):
    tops = {name.split("/")[0] for name in names}
    missing = [dependency for dependency in DEPENDENCIES if dependency not in tops]
    assert not missing, f"dependencies missing from the package: {missing}"
    present = sorted(tops & {*RUNTIME_PROVIDED, "click"})
    assert not present, f"{present} must not be packaged (boto3/botocore: the runtime has them; click: CLI only)"
    assert not [t for t in tops if t.startswith(("boto3-", "botocore-", "click-"))]
    # Compiled wheels, if any, are the Lambda runtime's: CPython 3.12 on x86_64.
    native = [n for n in names if n.endswith(".so")]
    assert all("cpython-312-x86_64-linux-gnu" in n for n in native), native


def test_holds_the_handler(names: list[str]):
    if not (CHECKOUT / HANDLER_FILE).exists():
        pytest.skip(f"{HANDLER_FILE} is not written yet: the Lambda handler lands separately (issue 10)")
    assert HANDLER_FILE in names


def _runtime_like(builds: tuple[Path, Path], tmp_path: Path) -> dict[str, str]:
    """The package extracted, plus what the python3.12 runtime adds (boto3 and its dependencies), as the environment
    of a `python -S` (no site-packages, so nothing else the test venv holds, click above all, can be imported)."""
    extracted = tmp_path / "task"
    with zipfile.ZipFile(builds[0]) as archive:
        archive.extractall(extracted)
    runtime = tmp_path / "runtime"  # what the python3.12 runtime adds: boto3 and its own dependencies
    runtime.mkdir()
    for module in (*RUNTIME_PROVIDED, "dateutil", "six"):
        spec = find_spec(module)
        assert spec is not None, f"{module} is not installed in the test venv"
        origin = (
            Path(spec.submodule_search_locations[0]) if spec.submodule_search_locations else Path(spec.origin or "")
        )
        (runtime / origin.name).symlink_to(origin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_", "ROTATOR_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(extracted), str(runtime)])
    return env


def _run_isolated(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_every_module_in_the_package_imports_from_the_package_alone(builds: tuple[Path, Path], tmp_path: Path):
    """Whatever the handler imports later, lazily, is in the package: every module of rotator and backends it holds
    imports without click, schedule, prometheus_client or the simulator."""
    with zipfile.ZipFile(builds[0]) as archive:
        modules = sorted(
            name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            for name in archive.namelist()
            if name.startswith(("rotator/", "backends/")) and name.endswith(".py")
        )
    assert "backends.aws.store" in modules
    code = (
        "import importlib, importlib.util, sys\n"
        "assert importlib.util.find_spec('click') is None, 'the venv leaks in'\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
    )
    result = _run_isolated(code, _runtime_like(builds, tmp_path))
    assert result.returncode == 0, f"a module does not import from the package alone:\n{result.stderr[-3000:]}"


def test_handler_imports_from_the_package_alone(builds: tuple[Path, Path], tmp_path: Path):
    """Only the package plus boto3, as in the runtime. (Python here is 3.11; the runtime is 3.12.)"""
    if not (CHECKOUT / HANDLER_FILE).exists():
        pytest.skip(f"{HANDLER_FILE} is not written yet: the Lambda handler lands separately (issue 10)")
    code = (
        "import importlib.util, json, sys\n"
        "assert importlib.util.find_spec('click') is None, 'the venv leaks in'\n"
        "from rotator.aws_lambda import handler\n"
        "assert callable(handler)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = _run_isolated(code, _runtime_like(builds, tmp_path))
    assert result.returncode == 0, f"the handler does not import from the package:\n{result.stderr[-3000:]}"
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    heavy = loaded & {"click", "hvac", "schedule", "prometheus_client"}
    assert not heavy, f"importing the handler loads {sorted(heavy)}"
