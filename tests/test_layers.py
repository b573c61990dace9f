"""The tiers stay visible. import-linter (`make lint`) enforces which tier imports which, by
the contracts in pyproject.toml; these tests check what it cannot: that every module sits in
a tier the contracts name, and that the core needs only its four dependencies, so that
embedding the engine installs nothing else."""

from __future__ import annotations

import ast
import sys
import tomllib

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "engine"
CORE_DEPENDENCIES = {"jinja2", "yaml", "jsonpatch", "google"}
CORE_MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "core").rglob("*.py"))


def contracts() -> list[dict[str, object]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = data["tool"]["importlinter"]["contracts"]
    return found


def named_layers(contract: dict[str, object]) -> set[str]:
    names = set()
    for layer in contract["layers"]:  # type: ignore[attr-defined]
        names.update(part.strip() for part in str(layer).split("|"))
    return names


def test_the_package_folder_holds_tiers_only() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside any tier: {loose}; move them into core/, webhook/, tools/ or cli/"


def test_every_tier_is_in_the_tier_contract() -> None:
    tiers = {f"secretpatch.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    (contract,) = [c for c in contracts() if "containers" not in c]
    assert named_layers(contract) == tiers


def test_every_step_of_the_core_is_in_the_core_contract() -> None:
    steps = {p.stem for p in (PACKAGE / "core").iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    steps |= {p.name for p in (PACKAGE / "core").iterdir() if (p / "__init__.py").exists()}
    (contract,) = [c for c in contracts() if c.get("containers") == ["secretpatch.core"]]
    assert named_layers(contract) == steps


def imports(path: str) -> set[str]:
    """The top-level names of the absolute imports in one module of the package."""
    tree = ast.parse((PACKAGE / path).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_need_only_the_core_dependencies(module: str) -> None:
    third_party = imports(module) - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= CORE_DEPENDENCIES, (
        f"engine/{module} needs {sorted(third_party - CORE_DEPENDENCIES)}"
    )
