"""The engine's modules never import the layers above them (server, CLI, tools), so that
embedding the engine needs only its four dependencies."""

from __future__ import annotations

import ast

import pytest

from .conftest import ROOT

CORE = [
    "admission",
    "budget",
    "bundled",
    "config",
    "engine",
    "errors",
    "fragments",
    "memo",
    "patch",
    "render",
    "ruleload",
    "rules",
    "ruleset",
    "secrets",
    "types",
    "yamldoc",
]
ABOVE = {
    "libc",
    "bodies",
    "worker",
    "connections",
    "certwatch",
    "casetest",
    "certs",
    "cli",
    "commands",
    "lint",
    "manifests",
    "serve",
    "server",
    "telemetry",
    "workflow",
}
CORE_DEPENDENCIES = {"jinja2", "yaml", "jsonpatch", "google"}


def imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "engine" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                found.add(node.module.split(".")[0])
            elif node.level:
                found.update(alias.name for alias in node.names)
            else:
                found.add(f"external:{(node.module or '').split('.')[0]}")
        elif isinstance(node, ast.Import):
            found.update(f"external:{alias.name.split('.')[0]}" for alias in node.names)
    return found


def test_every_module_is_classified() -> None:
    modules = {p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__"}
    assert modules == set(CORE) | ABOVE


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_higher_layer_and_only_core_dependencies(module: str) -> None:
    found = imports(module)
    assert not found & ABOVE, f"engine/{module}.py imports {sorted(found & ABOVE)}"
    import sys

    external = {name.split(":", 1)[1] for name in found if name.startswith("external:")}
    third_party = external - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= CORE_DEPENDENCIES, (
        f"engine/{module}.py needs {sorted(third_party - CORE_DEPENDENCIES)}"
    )
