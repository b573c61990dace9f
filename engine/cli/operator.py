"""The operator's commands: test (golden cases), diff (what a mutation does), init (a
working copy of the bundled rules, templates and a starter case)."""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from ..core.bundled import bundled_dir
from .io import ExitCode, UsageError, read_pod, require


def cmd_test(args: argparse.Namespace) -> int:
    require("secretpatch test", "tools", "deepdiff")
    from ..tools.cases import CaseRunner, find_cases, junit

    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    cases = find_cases(root)
    if not cases:
        raise UsageError(f"no cases under {root}: a case is a folder with an input.yaml")
    if args.update and os.environ.get("CI") and not args.update_in_ci:
        raise UsageError(
            "refusing --update in CI (CI is set): golden files are reviewed, not regenerated; add --update-in-ci to insist"
        )
    runner = CaseRunner(Path(args.config) if args.config else None)
    results = []
    for case in cases:
        name = case.relative_to(root).as_posix() if case != root else case.name
        result = runner.run(case, name, update=args.update)
        results.append(result)
        print(f"{'PASS' if result.passed else 'FAIL'}  {name}")
        for line in result.problems:
            print(f"      {line}")
        for line in result.notes:
            print(f"      ({line})")
        sys.stdout.flush()
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    if args.junit:
        junit(results, Path(args.junit))
    return ExitCode.REJECTED if failed else ExitCode.OK


COLORS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}
RESET = "\033[0m"


def summary(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Volumes, init containers, mounts and env vars that the mutation added."""
    lines = []
    old_spec, new_spec = before.get("spec") or {}, after.get("spec") or {}

    def names(items: Any) -> list[str]:
        return [i.get("name", "?") for i in items or [] if isinstance(i, dict)]

    for field_name, label in (("volumes", "volume"), ("initContainers", "init container")):
        added = [n for n in names(new_spec.get(field_name)) if n not in names(old_spec.get(field_name))]
        lines += [f"+ {label} {n}" for n in added]
    old_containers = {
        c.get("name"): c for key in ("initContainers", "containers") for c in old_spec.get(key) or []
    }
    for key in ("initContainers", "containers"):
        for container in new_spec.get(key) or []:
            if container.get("name") not in old_containers:
                continue  # new: listed above
            old = old_containers[container.get("name")]
            mounts = [
                n for n in names(container.get("volumeMounts")) if n not in names(old.get("volumeMounts"))
            ]
            env = [n for n in names(container.get("env")) if n not in names(old.get("env"))]
            if mounts or env:
                parts = [
                    f"mounts {', '.join(mounts)}" if mounts else "",
                    f"env {', '.join(env)}" if env else "",
                ]
                lines.append(f"~ {container.get('name')}: " + "; ".join(p for p in parts if p))
    return lines


def cmd_diff(args: argparse.Namespace) -> int:
    from ..core.runtime import Engine

    pod = read_pod(args.pod)
    mutation = Engine.from_config(args.config).mutate(pod)
    color = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    )
    before = yaml.safe_dump(pod, sort_keys=False).splitlines()
    after = yaml.safe_dump(mutation.pod, sort_keys=False).splitlines()
    for line in difflib.unified_diff(before, after, f"a/{args.pod}", f"b/{args.pod} (mutated)", lineterm=""):
        prefix = line[:1]
        colored = color and prefix in COLORS and not line.startswith(("+++", "---"))
        print(f"{COLORS[prefix]}{line}{RESET}" if colored else line)
    lines = summary(pod, mutation.pod)
    print()
    print(
        f"{len(mutation.injected)} secret(s) injected, {len(mutation.patch)} operation(s)"
        if lines
        else "no change"
    )
    for line in lines:
        print(line)
    return ExitCode.OK


STARTER_CONFIG = """\
# Flyte's webhook section plus secretpatch's own keys. The folders below are the copies of the
# bundled rules and templates that `secretpatch init` made; edit them, then run
#   secretpatch test cases --config config.yaml
webhook:
  secretManagerTypes: [GCP]
  gcpSecretManager:
    sidecarImage: gcr.io/google.com/cloudsdktool/cloud-sdk:alpine
secretpatch:
  rules: rules
  templates: templates
"""


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    if target.exists() and any(target.iterdir()) and not args.force:
        raise UsageError(f"{target} is not empty; use --force to write into it anyway")
    target.mkdir(parents=True, exist_ok=True)
    for kind in ("rules", "templates"):
        shutil.copytree(
            bundled_dir(kind),
            target / kind,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "__init__.py"),
        )
    (target / "config.yaml").write_text(STARTER_CONFIG, encoding="utf-8")
    case = target / "cases" / "example"
    case.mkdir(parents=True, exist_ok=True)
    from ..core.requests import encode_request

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "example-task",
            "namespace": "flytesnacks-development",
            "labels": {"inject-flyte-secrets": "true"},
            "annotations": {"flyte.secrets/s0": encode_request('group: "TestSecret"\ngroup_version: "2"\n')},
        },
        "spec": {"containers": [{"name": "task", "image": "cr.flyte.org/flyteorg/flytekit:py3.11-latest"}]},
    }
    header = "# A task pod asking for TestSecret version 2 (flyte.secrets/s0). The other files here are\n# the expected outputs; `secretpatch test cases --config config.yaml --update` rewrites them.\n"
    (case / "input.yaml").write_text(header + yaml.safe_dump(pod, sort_keys=False), encoding="utf-8")
    from ..tools.cases import CaseRunner

    CaseRunner(target / "config.yaml").run(case, "example", update=True)
    print(f"wrote {target}: rules/, templates/, config.yaml and cases/example/")
    print(f"next: cd {target} && secretpatch test cases --config config.yaml")
    return ExitCode.OK


def cmd_lint(args: argparse.Namespace) -> int:
    require("secretpatch lint", "tools", "kubernetes_validate")
    from ..tools.lint import lint

    problems, checked = lint(args.config)
    for problem in problems:
        print(problem.excerpt())
    for line in checked:
        print(f"lint: {line}")
    print(f"lint: {len(problems)} problem(s)" if problems else "lint: no problems")
    return ExitCode.REJECTED if problems else ExitCode.OK


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    lint = commands.add_parser(
        "lint", parents=[common], help="check the configured rules and templates, reporting every problem"
    )
    lint.set_defaults(func=cmd_lint)

    test = commands.add_parser("test", parents=[common], help="run a folder of golden cases")
    test.add_argument("dir", metavar="DIR", help="a case folder, or a folder of them")
    test.add_argument("--update", action="store_true", help="write the current outputs as the expected ones")
    test.add_argument("--update-in-ci", action="store_true", help="allow --update when CI is set")
    test.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI systems")
    test.set_defaults(func=cmd_test)

    diff = commands.add_parser("diff", parents=[common], help="show what the mutation does to a pod")
    diff.add_argument("pod", metavar="POD", help="a pod or an AdmissionReview ('-' for stdin)")
    diff.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    diff.set_defaults(func=cmd_diff)

    init = commands.add_parser(
        "init", parents=[common], help="copy the bundled rules, templates and a starter case"
    )
    init.add_argument("dir", metavar="DIR")
    init.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    init.set_defaults(func=cmd_init)
