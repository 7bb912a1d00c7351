"""`rotator plan NAME | --all`: the preflight that changes nothing (rotator/rotation/plan.py), one line per finding.

Each line names the credential, the part (a store and where it is, Bluum, a reload action, a consumer), what is
wrong and the fix, so that the person paged at 3 a.m. reads the fix without opening the README. `--json` prints the
same findings as data.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from rotator.cli.completion import credential_argument
from rotator.cli.settings import CONTEXT, EXIT_CODES_HELP, Settings, fail, pass_settings
from rotator.core.durations import format_measured
from rotator.core.errors import ConfigError, RotatorError

if TYPE_CHECKING:
    from rotator.core.findings import Finding, Severity
    from rotator.rotation.plan import PlanReport

__all__ = ["COMMANDS", "plan_lines"]

_ORDER = {"problem": 0, "unreachable": 1, "not checked": 2, "info": 3}
_LABEL = {"problem": "PROBLEM", "unreachable": "UNREACHABLE", "not checked": "NOT CHECKED", "info": "ok"}


@click.command(epilog=EXIT_CODES_HELP, context_settings=CONTEXT)
@credential_argument(required=False)
@click.option("--all", "all_", is_flag=True, help="Every credential in rotator.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@pass_settings
def plan(settings: Settings, name: str | None, all_: bool, as_json: bool) -> None:
    """Check everything a rotation will need, changing nothing.

    Every target store is readable and writable by this runner (Vault: the token's capabilities; AWS: the IAM
    actions, by IAM's policy simulator; dotenv: the folders), the paying key may list keys at Bluum and Bluum accepts
    each current key, reload programs exist and reload URLs answer a connection, consumers answer their attestation,
    the paying key's rate budget can rotate the fleet inside its windows; key ages, what is due, pauses. One line per
    finding with its fix. Exit 0 when nothing stops a rotation, 2 for a problem, 5 when Bluum or a store did not
    answer.

    \b
    Examples:
      rotator plan trading
      rotator plan --all
      rotator plan --all --json
    """
    from rotator.rotation.plan import plan as run_plan
    from rotator.rotation.runtime import Runtime

    if bool(name) == all_:
        fail(ConfigError("name one credential, or --all. Nothing was changed"))
    try:
        with Runtime(settings.load()) as runtime:
            names = list(runtime.config.credentials) if all_ else [str(name)]
            report = run_plan(runtime, names)
    except RotatorError as exc:
        fail(exc)
    if as_json:
        from rotator.cli.render import json_text

        click.echo(json_text(_as_data(report)))
    else:
        click.echo("\n".join(plan_lines(report)))
    sys.exit(int(report.exit_code))


def plan_lines(report: PlanReport) -> list[str]:
    """One line per finding, grouped by credential (problems first), then the summary."""
    findings = sorted(report.findings, key=lambda f: (f.credential, _ORDER[f.severity.value]))
    width = max((len(f.credential) for f in findings), default=0)
    lines = [_line(finding, width) for finding in findings]
    counts = ", ".join(
        f"{report.count(severity)} {word}"
        for severity, word in _summary_words()
        if report.count(severity) or word == "problem(s)"
    )
    lines.append(
        f"plan: {len(report.credentials)} credential(s) checked in {format_measured(report.seconds)}: {counts}; "
        f"nothing was changed (exit {int(report.exit_code)})"
    )
    return lines


def _line(finding: Finding, width: int) -> str:
    label = _LABEL[finding.severity.value]
    fix = f" -> fix: {finding.fix}" if finding.fix else ""
    return f"{finding.credential or '*':<{width}}  {label:<11}  {finding.part}: {finding.problem}{fix}"


def _summary_words() -> list[tuple[Severity, str]]:
    from rotator.core.findings import Severity

    return [
        (Severity.PROBLEM, "problem(s)"),
        (Severity.UNREACHABLE, "unreachable"),
        (Severity.UNCHECKED, "not checked"),
    ]


def _as_data(report: PlanReport) -> dict[str, object]:
    return {
        "credentials": report.credentials,
        "seconds": round(report.seconds, 3),
        "exit_code": int(report.exit_code),
        "findings": [
            {
                "credential": f.credential,
                "severity": f.severity.value,
                "part": f.part,
                "problem": f.problem,
                "fix": f.fix,
            }
            for f in report.findings
        ],
    }


COMMANDS = (plan,)
