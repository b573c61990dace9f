"""Operator-owned test cases: a folder per case, the expected outputs beside the input.

A case folder holds `input.yaml` (or `input.json`: a pod or an AdmissionReview), optionally
`config.yaml` (merged over the base config), and the expected outputs it checks:
`patch.json` (the exact operations, in order), `pod.yaml` (the patched pod), `commands.txt`
(one shell line per secret) or `denied.txt` (the exact refusal). Nothing is ever written
unless asked with --update; a case with no expected output fails.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core import yamldoc
from ..core.admission import carried_pod
from ..core.errors import InputError, Rejected, RenderError
from ..core.mutation import Mutation
from ..core.runtime import Engine

INPUTS = ("input.yaml", "input.yml", "input.json")
EXPECTED = ("patch.json", "pod.yaml", "commands.txt", "denied.txt")
_yaml = yamldoc.load_plain


@dataclass
class CaseResult:
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Outputs:
    """What the engine made of a case's input, as the expected files hold it."""

    files: dict[str, str]
    mutation: Mutation | None = None


def find_cases(root: Path) -> list[Path]:
    folders = {p.parent for name in INPUTS for p in root.rglob(name)}
    return sorted(folders)


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else _yaml(text)


def _absolute_folders(data: Any, base: Path) -> Any:
    """Make secretpatch.rules/templates absolute, so configs merged from two folders keep
    their meaning."""
    if not isinstance(data, dict):
        return data
    for holder in (data, data.get("webhook") if isinstance(data.get("webhook"), dict) else None):
        own = holder.get("secretpatch") if holder else None
        if isinstance(own, dict):
            for key in ("rules", "templates"):
                if isinstance(own.get(key), str):
                    own[key] = str((base / own[key]).resolve())
    return data


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return override


class CaseRunner:
    def __init__(self, config: Path | None) -> None:
        self.base: Any = {}
        if config is not None:
            self.base = _absolute_folders(_load(config) or {}, config.resolve().parent)
        self._engines: dict[str, Engine] = {}

    def engine_for(self, case: Path) -> Engine:
        data = self.base
        override = case / "config.yaml"
        if override.is_file():
            data = merge(self.base, _absolute_folders(_load(override) or {}, case.resolve()))
        key = json.dumps(data, sort_keys=True, default=str)
        if key not in self._engines:
            self._engines[key] = Engine.from_config(data or None)
        return self._engines[key]

    def outputs(self, case: Path) -> Outputs:
        source = next(case / name for name in INPUTS if (case / name).is_file())
        document = carried_pod(_load(source))
        if not isinstance(document, Mapping):
            raise InputError(f"{source.name} is neither a pod nor an AdmissionReview with one")
        try:
            mutation = self.engine_for(case).mutate(document)
        except (Rejected, RenderError) as exc:
            message = exc.message if isinstance(exc, Rejected) else str(exc)
            return Outputs({"denied.txt": message + "\n"})
        commands = "".join(text + "\n" for i in mutation.injected for text in i.texts.values())
        return Outputs(
            {
                "patch.json": json.dumps(mutation.patch, indent=2) + "\n",
                "pod.yaml": yaml.safe_dump(mutation.pod, sort_keys=False),
                "commands.txt": commands,
            },
            mutation,
        )

    def run(self, case: Path, name: str, *, update: bool = False) -> CaseResult:
        started = time.perf_counter()
        result = CaseResult(name, True)
        try:
            outputs = self.outputs(case)
        except Exception as exc:  # a broken case or config fails this case, not the run
            result.passed = False
            result.problems.append(f"cannot run: {exc}")
            return result
        if update:
            for filename in EXPECTED:
                path = case / filename
                if filename in outputs.files:
                    path.write_text(outputs.files[filename], encoding="utf-8")
                elif path.exists():
                    path.unlink()
            result.notes.append("updated: " + ", ".join(sorted(outputs.files)))
        else:
            result.problems = list(compare(case, outputs.files))
            result.passed = not result.problems
            missing = [f for f in outputs.files if not (case / f).exists()]
            if missing and result.passed:
                result.notes.append("not checked (no expected file): " + ", ".join(missing))
        result.seconds = time.perf_counter() - started
        return result


def compare(case: Path, actual: dict[str, str]) -> Iterator[str]:
    present = [name for name in EXPECTED if (case / name).exists()]
    if not present:
        yield "no expected output: add patch.json, pod.yaml, commands.txt or denied.txt (or run with --update)"
        return
    if "denied.txt" in present and "denied.txt" not in actual:
        yield "expected a denial (denied.txt), but the pod was mutated"
        return
    if "denied.txt" in actual and "denied.txt" not in present:
        yield f"the pod was denied: {actual['denied.txt'].strip()}"
        return
    for name in present:
        expected_text = (case / name).read_text(encoding="utf-8")
        if name == "patch.json":
            yield from _explain_structures("patch", json.loads(expected_text), json.loads(actual[name]))
        elif name == "pod.yaml":
            yield from _explain_structures("pod", _yaml(expected_text), _yaml(actual[name]))
        elif expected_text != actual[name]:
            yield f"{name} differs:"
            diff = difflib.unified_diff(
                expected_text.splitlines(),
                actual[name].splitlines(),
                f"expected/{name}",
                f"actual/{name}",
                lineterm="",
            )
            yield from ("  " + line for line in diff)


def _explain_structures(root: str, expected: Any, actual: Any) -> Iterator[str]:
    if expected == actual:
        return
    if root == "patch" and isinstance(expected, list) and isinstance(actual, list):
        key = lambda op: json.dumps(op, sort_keys=True)  # noqa: E731
        if len(expected) == len(actual) and sorted(map(key, expected)) == sorted(map(key, actual)):
            moved = [i for i, (a, b) in enumerate(zip(expected, actual, strict=True)) if a != b]
            yield f"patch has the same operations in another order (positions {', '.join(map(str, moved))} differ)"
            return
    from deepdiff import DeepDiff

    diff = DeepDiff(expected, actual, view="tree", verbose_level=2)
    for kind, levels in sorted(diff.items()):
        for level in sorted(levels, key=lambda lv: str(lv.path())):
            path = _path(root, level.path(output_format="list"), expected)
            if kind in ("values_changed", "type_changes"):
                yield f"{path} changed from {_short(level.t1)} to {_short(level.t2)}"
            elif kind.endswith("_added"):
                yield f"{path} was added: {_short(level.t2)}"
            elif kind.endswith("_removed"):
                yield f"{path} was removed (it was {_short(level.t1)})"
            else:
                yield f"{path}: {kind.replace('_', ' ')}"


def _path(root: str, parts: list[Any], expected: Any) -> str:
    """`patch[1] (add /spec/initContainers).value[0].command[2]`, `pod.spec.volumes[0]`."""
    text = root
    for position, part in enumerate(parts):
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
        names_an_op = root == "patch" and position == 0 and len(parts) > 1 and isinstance(expected, list)
        if (
            names_an_op
            and isinstance(part, int)
            and part < len(expected)
            and isinstance(expected[part], dict)
        ):
            text += f" ({expected[part].get('op')} {expected[part].get('path')})"
    return text


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def junit(results: list[CaseResult], path: Path) -> None:
    from xml.etree import ElementTree as ET

    failures = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite",
        name="secretpatch",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite, "testcase", classname="secretpatch.cases", name=result.name, time=f"{result.seconds:.3f}"
        )
        if not result.passed:
            failure = ET.SubElement(
                case, "failure", message=result.problems[0] if result.problems else "failed"
            )
            failure.text = "\n".join(result.problems)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
