"""Build the Lambda deployment package, reproducibly: `make lambda-zip` -> build/bluum-rotator-lambda.zip.

What goes in:
- the `rotator` and `backends` packages from this checkout (`.py` files and `py.typed`), without `__pycache__` and
  without the folders no Lambda runs (EXCLUDED_SOURCE_DIRS): `rotator/cli` (the command line and its demo, which
  import click), `rotator/daemon` (the daemon's loop, Prometheus metrics, /healthz, stop signals: they import
  schedule and prometheus_client) and `rotator/simulator` (the local Bluum stand-in); nor `rotator/__main__.py`
  (`python -m rotator`, the command line again). The handler imports none of them: the import-rule test holds that
  `rotator.aws_lambda` never imports the command line or the daemon's folder;
- the runtime dependencies from `scripts/lambda-requirements.txt`: exact versions with sha256 hashes, resolved
  for CPython 3.12 on manylinux2014 x86_64 (the function's runtime and architecture) and installed with
  `pip install --target --no-deps --require-hashes`, so a new release on PyPI never changes the package.

What stays out, and why:
- boto3, botocore (and s3transfer, jmespath): the python3.12 runtime ships them; a build that finds them fails;
- click: the CLI's library; the handler never imports it. Leaving it out also keeps the cold start light, because
  `import httpx` loads httpx's own command line (and with it click) whenever click is importable;
- prometheus-client and schedule: the command line's `/metrics`, textfile and daemon loop; the Lambda logs
  CloudWatch EMF and is driven by EventBridge, so it imports neither;
- cronsim and tzdata: rotation windows (rotator/rules/windows.py) gate `run-due` and the daemon; the Lambda is
  scheduled by Secrets Manager's rotation rule and its configuration has no windows, so it imports neither;
- `bin/` (console scripts whose first line names the interpreter that ran pip), `*.pyc`, and the per-install files
  of each `.dist-info` (RECORD, INSTALLER, REQUESTED, direct_url.json): they differ from machine to machine.

Reproducible: entries sorted by name, every timestamp 1980-01-01 00:00:00, every file mode 0644, no directory
entries, deflate level 9. The same checkout, lock file, Python and zlib give the same bytes (a test builds twice).

`--relock` rewrites the lock file from pyproject.toml's `[project].dependencies` (minus the ones above) with pip's
resolver; review the diff like any dependency bump.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "build" / "bluum-rotator-lambda.zip"
LOCK_FILE = ROOT / "scripts" / "lambda-requirements.txt"

PACKAGES = ("rotator", "backends")
EXCLUDED_SOURCE_DIRS = {"rotator/cli", "rotator/daemon", "rotator/simulator"}
"""Folders of `rotator` that only the command line and the daemon run (see the module docstring)."""
EXCLUDED_SOURCE_FILES = {"rotator/__main__.py"}
SOURCE_SUFFIXES = (".py",)
SOURCE_NAMES = ("py.typed",)

PROVIDED_BY_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath"}
NOT_NEEDED = {"click", "prometheus-client", "schedule", "cronsim", "tzdata"}
"""Declared in pyproject.toml but left out of the package (see the module docstring)."""

PLATFORM_ARGS = (
    "--platform",
    "manylinux2014_x86_64",
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
)
"""The python3.12 Lambda runtime on x86_64 (the module pins `architectures = ["x86_64"]` to match)."""

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
PER_INSTALL_METADATA = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class BuildError(Exception):
    """The package cannot be built; the message says why and what to do."""


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirement_name(requirement: str) -> str:
    """The project name a PEP 508 requirement starts with ("hvac>=2.4,<3" -> "hvac")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise BuildError(f"cannot read the project name of requirement {requirement!r}")
    return match.group(1)


def source_files(root: Path) -> dict[str, bytes]:
    """The packages' files by archive name."""
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        base = root / package
        if not (base / "__init__.py").is_file():
            raise BuildError(f"{base} is not a package (no __init__.py); run this from a checkout")
        for path in base.rglob("*"):
            name = path.relative_to(root).as_posix()
            parts = path.relative_to(root).parts
            if "__pycache__" in parts or name in EXCLUDED_SOURCE_FILES:
                continue
            if any(name == d or name.startswith(d + "/") for d in EXCLUDED_SOURCE_DIRS):
                continue
            if path.is_file() and (path.name.endswith(SOURCE_SUFFIXES) or path.name in SOURCE_NAMES):
                files[name] = path.read_bytes()
    return files


def install_dependencies(lock_file: Path, target: Path) -> None:
    """pip install the locked wheels for the Lambda platform into target (no resolver, hashes checked)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--require-hashes",
        "--no-compile",
        "--no-warn-script-location",
        "--target",
        str(target),
        *PLATFORM_ARGS,
        "-r",
        str(lock_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise BuildError(f"pip install failed (rc {result.returncode}):\n{result.stdout}{result.stderr}")


def dependency_files(target: Path) -> dict[str, bytes]:
    """The installed dependencies by archive name, without what differs per machine; refuses runtime packages."""
    files: dict[str, bytes] = {}
    found_runtime = set()
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target)
        top = relative.parts[0]
        if top == "bin" or "__pycache__" in relative.parts or not path.is_file() or path.suffix == ".pyc":
            continue
        if top.endswith(".dist-info") and path.name in PER_INSTALL_METADATA and len(relative.parts) == 2:
            continue
        distribution = normalise(top.split("-")[0]) if top.endswith(".dist-info") else normalise(top.split(".")[0])
        if distribution in PROVIDED_BY_RUNTIME | NOT_NEEDED:
            found_runtime.add(distribution)
        files[relative.as_posix()] = path.read_bytes()
    if found_runtime:
        raise BuildError(
            f"{sorted(found_runtime)} would be packaged; the runtime provides boto3/botocore and the handler does not "
            f"need click: remove them from {LOCK_FILE.name} (or rerun with --relock)"
        )
    return files


def write_zip(files: dict[str, bytes], output: Path) -> None:
    """Write files into output with fixed order, timestamps and modes; replaced atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.create_system = 3  # Unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(partial, output)


def build(output: Path, lock_file: Path = LOCK_FILE, root: Path = ROOT) -> dict[str, object]:
    """Build the package; returns what was built (path, size, sha256, file count, seconds)."""
    started = time.monotonic()
    if not lock_file.is_file():
        raise BuildError(f"{lock_file} is missing; create it with `{Path(__file__).name} --relock`")
    files = source_files(root)
    with tempfile.TemporaryDirectory(prefix="bluum-lambda-") as scratch:
        target = Path(scratch) / "site"
        install_dependencies(lock_file, target)
        dependencies = dependency_files(target)
    clashes = sorted({name.split("/")[0] for name in dependencies} & set(PACKAGES))
    if clashes:
        raise BuildError(f"a dependency installs a top-level {clashes}, which would shadow ours")
    files.update(dependencies)
    write_zip(files, output)
    data = output.read_bytes()
    return {
        "path": str(output),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "files": len(files),
        "seconds": round(time.monotonic() - started, 2),
    }


def relock(lock_file: Path = LOCK_FILE, root: Path = ROOT) -> list[str]:
    """Resolve pyproject.toml's runtime dependencies for the Lambda platform and write them, pinned and hashed."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = [
        requirement
        for requirement in project["dependencies"]
        if normalise(requirement_name(requirement)) not in PROVIDED_BY_RUNTIME | NOT_NEEDED
    ]
    with tempfile.TemporaryDirectory(prefix="bluum-lock-") as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "--target",
            str(Path(scratch) / "unused"),
            *PLATFORM_ARGS,
            *wanted,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            raise BuildError(f"pip could not resolve {wanted}:\n{result.stdout}{result.stderr}")
        resolved = json.loads(report.read_text())["install"]
    lines = [
        f"# Generated by `python {Path(__file__).relative_to(root)} --relock`: do not edit by hand.",
        "# The Lambda's runtime dependencies: pyproject.toml's [project].dependencies without click (the handler",
        "# never imports it) and boto3/botocore (the python3.12 runtime has them), resolved for CPython 3.12 on",
        "# manylinux2014_x86_64, pinned with the sha256 of each wheel.",
    ]
    names = []
    for item in sorted(resolved, key=lambda entry: normalise(entry["metadata"]["name"])):
        name, version = normalise(item["metadata"]["name"]), item["metadata"]["version"]
        if name in PROVIDED_BY_RUNTIME | NOT_NEEDED:
            raise BuildError(f"{name} came in as a dependency of {wanted}; decide whether the Lambda needs it")
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines += [f"{name}=={version} \\", f"    --hash=sha256:{digest}"]
        names.append(f"{name}=={version}")
    lock_file.write_text("\n".join(lines) + "\n")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--lock-file", type=Path, default=LOCK_FILE, help=f"default: {LOCK_FILE}")
    parser.add_argument(
        "--source-root",
        type=Path,
        default=ROOT,
        help="folder holding the rotator and backends packages (default: this checkout)",
    )
    parser.add_argument("--relock", action="store_true", help="re-resolve the lock file from pyproject.toml first")
    args = parser.parse_args(argv)
    try:
        if args.relock:
            for pinned in relock(args.lock_file):
                print(f"locked {pinned}")
        built = build(args.output.resolve(), args.lock_file, args.source_root.resolve())
    except BuildError as error:
        print(f"build_lambda_zip: {error}", file=sys.stderr)
        return 1
    size = int(str(built["bytes"]))
    print(
        f"{built['path']}: {size} bytes ({size / 1_048_576:.2f} MiB), {built['files']} files, "
        f"sha256 {built['sha256']}, built in {built['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
