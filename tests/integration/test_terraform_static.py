"""The Terraform module read without running it: what checkov cannot check (python-hcl2), and checkov itself.

python-hcl2 does not evaluate anything: expressions come back as text ("${var.rotation_days}"), and `var.*` defaults
are looked up in variables.tf here. checkov runs from its own venv, `.venv-checkov` (it pins boto3 1.35, which
must not reach the project's venv); `make test` installs it once, and this test installs it when it is missing.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.terraform_support import CHECKOUT, MODULE

CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = CHECKOUT / ".venv-checkov"

RESOURCE_WILDCARD_ALLOWED = {
    # X-Ray's write actions take no resource ARN at all.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # What Lambda needs to attach a function to a VPC; these take no narrower resource for the function's own ENIs.
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
"""The only actions the role may hold on "*"; none of them reads or changes a secret, a key, a table or a log."""


def _load(path: Path) -> dict[str, Any]:
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
    with path.open() as handle:
        return dict(hcl2.load(handle, serialization_options=options))


@pytest.fixture(scope="module")
def tf() -> dict[str, dict[str, Any]]:
    """Each .tf file of the module and of examples/basic, parsed, by path relative to terraform/."""
    return {str(path.relative_to(MODULE)): _load(path) for path in sorted(MODULE.rglob("*.tf"))}


def _blocks(parsed: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, body) of each `variable` / `output` block."""
    for entry in parsed.get(kind, []):
        yield from entry.items()


def _resources(tf: dict[str, dict[str, Any]], kind: str, section: str = "resource") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, parsed in tf.items():
        if name.startswith("examples/"):
            continue
        for entry in parsed.get(section, []):
            found.update(entry.get(kind, {}))
    return found


def _variables(tf: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(_blocks(tf["variables.tf"], "variable"))


def _locals(tf: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name, parsed in tf.items():
        if not name.startswith("examples/"):
            for entry in parsed.get("locals", []):
                merged.update(entry)
    return merged


def _resolve(value: Any, tf: dict[str, dict[str, Any]]) -> Any:
    """A literal, or the default of the one variable / the value of the one local the expression names."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\$\{(var|local)\.([A-Za-z0-9_]+)\}", value)
    if match is None:
        return value
    kind, name = match.groups()
    if kind == "var":
        variable = _variables(tf)[name]
        assert "default" in variable, f"var.{name} has no default"
        return variable["default"]
    return _resolve(_locals(tf)[name], tf)


def test_every_variable_is_typed_described_and_every_output_described(tf: dict[str, dict[str, Any]]):
    problems = []
    for file, parsed in tf.items():
        for name, body in _blocks(parsed, "variable"):
            if not body.get("type"):
                problems.append(f"{file}: variable {name} has no type")
            if not str(body.get("description", "")).strip():
                problems.append(f"{file}: variable {name} has no description")
        for name, body in _blocks(parsed, "output"):
            if not str(body.get("description", "")).strip():
                problems.append(f"{file}: output {name} has no description")
    assert not problems, "\n".join(problems)
    assert len(_variables(tf)) >= 20


def test_readme_lists_every_input_and_output(tf: dict[str, dict[str, Any]]):
    readme = (MODULE / "README.md").read_text()
    inputs = readme.split("## Inputs", 1)[1].split("\n## ", 1)[0]
    outputs = readme.split("## Outputs", 1)[1].split("\n## ", 1)[0]
    listed_inputs = set(re.findall(r"^\| `([a-z_]+)` \|", inputs, flags=re.MULTILINE))
    listed_outputs = set(re.findall(r"^\| `([a-z_]+)` \|", outputs, flags=re.MULTILINE))
    assert listed_inputs == set(_variables(tf)), "terraform/README.md's Inputs table is out of date"
    assert listed_outputs == {name for name, _ in _blocks(tf["outputs.tf"], "output")}, "Outputs table out of date"


def test_handler_is_the_packaged_function(tf: dict[str, dict[str, Any]]):
    function = _resources(tf, "aws_lambda_function")["rotator"]
    handler = _resolve(function["handler"], tf)
    assert handler == "rotator.aws_lambda.handler"
    assert function["runtime"] == "python3.12"
    assert function["architectures"] == ["x86_64"], "the package's compiled wheels are manylinux2014_x86_64"
    assert function["filename"] == "${var.lambda_zip_path}"
    assert function["source_code_hash"] == "${filebase64sha256(var.lambda_zip_path)}"
    module_path, _, attribute = handler.rpartition(".")
    source = _module_source(module_path)
    if source is None:
        pytest.skip(f"{module_path} is not written yet (the Lambda handler lands separately)")
    tree = ast.parse(source.read_text())
    # a package's face re-exports the function: follow `from M import handler` to the module that defines it
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == attribute for a in node.names):
            assert not any(a.asname for a in node.names if a.name == attribute), "the face renames the handler"
            found = _module_source(node.module)
            assert found is not None, f"{source.relative_to(CHECKOUT)} re-exports {attribute!r} from a missing module"
            source, tree = found, ast.parse(found.read_text())
            break
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert attribute in functions, f"{source.relative_to(CHECKOUT)} defines no top-level function {attribute!r}"


def _module_source(dotted: str) -> Path | None:
    """The file Python runs for `dotted` in this checkout: a module, or a package's __init__.py."""
    base = CHECKOUT / dotted.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def test_rotation_defaults_to_90_days(tf: dict[str, dict[str, Any]]):
    rotation = _resources(tf, "aws_secretsmanager_secret_rotation")["managed"]
    rules = rotation["rotation_rules"]
    assert len(rules) == 1
    assert _resolve(rules[0]["automatically_after_days"], tf) == 90
    assert _resolve(rules[0]["schedule_expression"], tf) is None
    assert _resolve(rotation["rotate_immediately"], tf) is False


def test_log_retention_is_at_least_30_days(tf: dict[str, dict[str, Any]]):
    group = _resources(tf, "aws_cloudwatch_log_group")["rotator"]
    assert _resolve(group["retention_in_days"], tf) == 365
    validation = _variables(tf)["log_retention_days"]["validation"][0]["condition"]
    allowed = [int(number) for number in re.findall(r"\d+", validation.split("[", 1)[1].split("]", 1)[0])]
    assert allowed, validation
    assert min(allowed) >= 30, f"the validation admits {allowed}"
    assert 0 not in allowed


def _statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document.get("statement", [])
    for dynamic in document.get("dynamic", []):
        yield from dynamic.get("statement", {}).get("content", [])


def test_no_wildcard_action_and_no_wildcard_resource_beyond_the_allowed(tf: dict[str, dict[str, Any]]):
    documents = _resources(tf, "aws_iam_policy_document", section="data")
    assert {"assume", "rotator"} <= set(documents)
    checked = 0
    for name, document in documents.items():
        for statement in _statements(document):
            checked += 1
            actions = statement.get("actions", [])
            resources = statement.get("resources", [])
            assert isinstance(actions, list), f"{name}/{statement.get('sid')}: actions must be a literal list"
            assert actions, f"{name}/{statement.get('sid')}: no actions"
            assert not [a for a in actions if "*" in a], f"{name}/{statement.get('sid')}: wildcard action {actions}"
            assert "not_actions" not in statement
            assert "not_resources" not in statement
            if isinstance(resources, list) and "*" in resources:
                assert set(actions) <= RESOURCE_WILDCARD_ALLOWED, f"{name}/{statement.get('sid')}: {actions} on *"
    assert checked >= 7
    # Every policy the module attaches is one of these documents: no hand-written JSON beside them.
    for policy in _resources(tf, "aws_iam_role_policy").values():
        assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.[a-z_]+\.json\}", policy["policy"])
    assert not _resources(tf, "aws_iam_role_policy_attachment"), "managed policies grant more than the function needs"


def test_the_module_seeds_each_secret_once_and_never_fights_the_rotator(tf: dict[str, dict[str, Any]]):
    versions = _resources(tf, "aws_secretsmanager_secret_version")
    assert set(versions) == {"placeholder", "manager_placeholder"}
    for name, version in versions.items():
        ignored = version["lifecycle"][0]["ignore_changes"]
        assert {"secret_string", "version_stages"} <= set(ignored), f"{name} ignores only {ignored}"
    permission = _resources(tf, "aws_lambda_permission")["secretsmanager"]
    assert permission["principal"] == "secretsmanager.amazonaws.com"
    assert permission["source_arn"] == "${aws_secretsmanager_secret.managed[each.key].arn}"


# ------------------------------------------------------------------------------------------------------- checkov


def _checkov() -> Path:
    """.venv-checkov/bin/checkov at the pinned version, installed first when missing (about 30 s, once)."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True, timeout=120)
        install = subprocess.run(
            [
                str(CHECKOV_VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"checkov=={CHECKOV_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert install.returncode == 0, f"installing checkov into {CHECKOV_VENV} failed:\n{install.stderr[-4000:]}"
        (CHECKOV_VENV / ".installed").touch()
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert version.stdout.strip() == CHECKOV_VERSION, (
        f"{binary} is {version.stdout.strip() or version.stderr[-500:]}, not {CHECKOV_VERSION}: "
        f"rm -rf {CHECKOV_VENV.name} && make checkov"
    )
    return binary


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_checkov_finds_nothing_and_every_skip_says_why(tmp_path: Path):
    checkov = _checkov()
    copy = tmp_path / "terraform"
    shutil.copytree(MODULE, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    result = subprocess.run(
        [str(checkov), "-d", str(copy), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [check for r in reports for check in r["results"].get("failed_checks", [])]
    skipped = [check for r in reports for check in r["results"].get("skipped_checks", [])]
    summary = [r["summary"] for r in reports]
    assert not failed, "checkov failed:\n" + "\n".join(
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in failed
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for check in skipped:
        reason = str(check.get("check_result", {}).get("suppress_comment", "")).strip()
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    print(f"checkov {CHECKOV_VERSION}: {summary}; skipped {sorted({c['check_id'] for c in skipped})}")
