"""The import rule of issue 18: each package imports only the layers before it, and no module imports itself back.

core -> rules -> backends -> (config, bluum) -> consumers -> (issuers, notify) -> rotation -> ops -> daemon
-> (cli, aws_lambda)

`rotator/attest.py` (vendored by applications) imports nothing of the rotator; `backends/` imports only
`rotator.core`; `rotator/simulator/` imports only `rotator.core`; `rotator.aws_lambda`
never imports `rotator.daemon` (the Lambda's zip leaves that folder out, as it does the command line). Every import
counts: top level, inside functions, under `if TYPE_CHECKING:`, and `importlib.import_module("...")` /
`__import__("...")` with a literal name, because a deferred or type-only import is still a dependency a reader has to
follow.

KNOWN_VIOLATIONS held what the move could not fix mechanically; it is empty now. The test fails on a new violation
and on an allowance that no longer occurs, so the list can only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rotator", "backends")

LAYERS: dict[str, int] = {
    "rotator.attest": 0,
    "rotator.core": 0,
    "rotator.rules": 1,
    "rotator.simulator": 1,
    "backends": 2,
    "rotator.config": 3,
    "rotator.bluum": 3,
    "rotator.consumers": 4,
    "rotator.issuers": 5,
    "rotator.notify": 5,
    "rotator.rotation": 6,
    "rotator.ops": 7,
    "rotator.daemon": 8,
    "rotator.cli": 9,
    "rotator.aws_lambda": 9,
    "rotator.__main__": 10,
}
"""Rank of each package: a module may import its own package or a package of a lower rank, never a peer."""

ONLY: dict[str, frozenset[str]] = {
    "rotator.attest": frozenset(),
    "backends": frozenset({"rotator.core"}),
    "rotator.simulator": frozenset({"rotator.core"}),
}
"""Packages held to a narrower rule than their rank: besides themselves, they import only these."""

NEVER: dict[str, frozenset[str]] = {
    "rotator.aws_lambda": frozenset({"rotator.daemon"}),
}
"""Packages their rank would allow that an importer must never import: the Lambda's zip does not hold them."""

FREE = frozenset({"rotator"})
"""`rotator/__init__.py` holds only the version and imports nothing: anyone may import it."""

KNOWN_VIOLATIONS: frozenset[str] = frozenset()
"""Empty since the issuers are handed a client and a manager-key reader instead of the runtime, and the sweep takes the
runtime instead of the service (issue 18): every violation fails the test."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_in(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """Every rotator/backends module `source` imports, wherever the import sits."""
    modules = set(known)
    here = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()

    def add(name: str) -> None:
        if name.split(".")[0] in PACKAGES:
            found.add(name)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                add(sub if sub in modules else target)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                add(node.args[0].value)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {
        name: imports_in(path.read_text(), name, path.name == "__init__.py", modules) for name, path in modules.items()
    }


def package_of(module: str) -> str | None:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def layer_violations(graph: Mapping[str, Iterable[str]]) -> set[str]:
    """`importer -> imported` for every import that goes to a later layer, a peer, or past a narrower rule."""
    found = set()
    for importer, targets in graph.items():
        own = package_of(importer)
        if own is None:
            if importer not in FREE:
                found.add(f"{importer}: in no layer (add its package to LAYERS)")
            continue
        for target in targets:
            if target in FREE:
                continue
            theirs = package_of(target)
            if theirs is None:
                found.add(f"{importer} -> {target}: in no layer (add its package to LAYERS)")
            elif theirs == own:
                continue
            elif (
                (own in ONLY and theirs not in ONLY[own])
                or theirs in NEVER.get(own, ())
                or LAYERS[theirs] >= LAYERS[own]
            ):
                found.add(f"{importer} -> {target}")
    return found


def circles(graph: Mapping[str, Iterable[str]]) -> set[str]:
    """Every group of modules that import each other, directly or around (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[str] = set()
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.add("circle: " + ", ".join(sorted(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def violations(graph: Mapping[str, Iterable[str]]) -> set[str]:
    return layer_violations(graph) | circles(graph)


def test_the_tree_keeps_the_layers_apart_but_for_the_known_violations() -> None:
    found = violations(import_graph())
    new = sorted(found - KNOWN_VIOLATIONS)
    assert not new, "imports against the layers (import from an earlier layer, or move the module):\n" + "\n".join(new)


def test_every_known_violation_still_occurs() -> None:
    stale = sorted(KNOWN_VIOLATIONS - violations(import_graph()))
    assert not stale, "fixed, so drop them from KNOWN_VIOLATIONS:\n" + "\n".join(stale)


def test_every_package_module_is_in_a_layer() -> None:
    homeless = sorted(m for m in source_modules() if package_of(m) is None and m not in FREE)
    assert not homeless


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("rotator.core.model", "rotator.ops.alerts"),  # a later layer
        ("rotator.rules.machine", "rotator.config.loader"),
        ("rotator.config.loader", "rotator.bluum.client"),  # a peer
        ("backends.vault.store", "rotator.rules.record"),  # backends: core only
        ("backends.env.store", "rotator.config.loader"),
        ("rotator.simulator.server", "rotator.rules.machine"),  # the simulator: core only
        ("rotator.cli.commands", "rotator.aws_lambda.entry"),  # the two ways in are peers
        ("rotator.aws_lambda.entry", "rotator.daemon.metrics"),  # not in the Lambda's zip
        ("rotator.ops.tick", "rotator.daemon.metrics"),  # the tick runs in every way in: records through a protocol
        ("rotator.daemon.metrics", "rotator.nowhere"),  # a module in no layer
    ],
)
def test_the_rule_fails_a_synthetic_violation(importer: str, imported: str) -> None:
    why = ": in no layer (add its package to LAYERS)" if imported == "rotator.nowhere" else ""
    assert layer_violations({importer: {imported}}) == {f"{importer} -> {imported}{why}"}
    assert violations({importer: {imported}}) - KNOWN_VIOLATIONS, "the tree test would fail on it"


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("rotator.ops.alerts", "rotator.core.model"),
        ("rotator.cli.commands", "rotator.daemon.loop"),
        ("rotator.aws_lambda.entry", "rotator.ops.app"),
        ("rotator.rotation.service", "rotator.rotation.driver"),
        ("backends.vault.store", "rotator.core.errors"),
        ("backends.vault.store", "backends.key_fields"),
        ("rotator.config.loader", "backends.base"),
        ("rotator.cli.demo", "rotator.simulator.server"),
        ("rotator.rules.guards", "rotator"),
    ],
)
def test_the_rule_lets_an_earlier_layer_through(importer: str, imported: str) -> None:
    assert layer_violations({importer: {imported}}) == set()


def test_a_circle_is_found_even_inside_one_package() -> None:
    graph = {"rotator.rotation.a": {"rotator.rotation.b"}, "rotator.rotation.b": {"rotator.rotation.a"}}
    assert circles(graph) == {"circle: rotator.rotation.a, rotator.rotation.b"}
    assert circles({"rotator.rotation.a": {"rotator.rotation.b"}, "rotator.rotation.b": set()}) == set()


def test_deferred_and_type_only_imports_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rotator.ops import alerts\n"
        "def later():\n    import rotator.cli.commands\n"
        "    importlib.import_module('rotator.notify.sns')\n"
        "from . import machine\n"
    )
    known = {"rotator.ops.alerts", "rotator.rules.machine"}
    found = imports_in(source, "rotator.rules.record", False, known)
    assert found == {"rotator.ops.alerts", "rotator.cli.commands", "rotator.notify.sns", "rotator.rules.machine"}
    assert layer_violations({"rotator.rules.record": found}) == {
        "rotator.rules.record -> rotator.ops.alerts",
        "rotator.rules.record -> rotator.cli.commands",
        "rotator.rules.record -> rotator.notify.sns",
    }
