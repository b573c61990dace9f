"""`secretpatch lint`: every problem in the configured rules and templates, not just the first.

Loading stops at the first mistake, as start-up must; lint keeps going. It compiles every
rule and template, renders each rule for a set of sample secrets, validates each rendered
item against the Kubernetes schema of the list it merges into, and validates whole sample pods
after mutation. Each problem names the file and line of the template that caused it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..core import yamldoc
from ..core.config import load_config
from ..core.errors import LoadError, LocatedError, Rejected, RenderError
from ..core.requests import SecretRequest, encode_request
from ..core.rules.model import SAMPLE_POD, FragmentSpec, Rule
from ..core.rules.select import load_rules
from ..core.runtime import Engine

_UNEXPECTED = re.compile(r"'([^']+)' (?:was|were) unexpected")
SAMPLE_SECRETS = (
    SecretRequest("flyte.secrets/s0", "api-key", "1"),
    SecretRequest(
        "flyte.secrets/s1", "projects/my-project/secrets/Db_Password", "latest", mount_requirement="FILE"
    ),
    SecretRequest("flyte.secrets/s2", "Token_2", "prod-alias", key="token"),
)
# Rendered too, not put in the sample pods (a rule may refuse them): what a rule renders for
# secrets read from the environment (envVars: fileKeyRef).
ENV_SAMPLES = (
    SecretRequest("flyte.secrets/s3", "api-token", "2", mount_requirement="ENV_VAR", env_var="API_TOKEN"),
    SecretRequest("flyte.secrets/s4", "db-password", "1", mount_requirement="ENV_VAR"),
    SecretRequest("flyte.secrets/s5", "config", "3", mount_requirement="FILE", env_var="CONFIG_PATH"),
)


# A problem lint reports: what is wrong, and where (the file, the line and its text).
Problem = LocatedError


def _from_error(exc: LoadError | RenderError) -> Problem:
    return exc


def _line_text(file: str, line: int | None) -> str | None:
    """The text of a line of a template, for the report."""
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return lines[line - 1] if line is not None and 0 < line <= len(lines) else None


def _sample_pods() -> list[tuple[str, dict[str, Any]]]:
    annotations = {
        s.annotation: encode_request(f'group: "{s.group}"\ngroup_version: "{s.group_version}"\n')
        for s in SAMPLE_SECRETS
    }
    metadata = {
        "name": "sample",
        "namespace": "default",
        "labels": {"inject-flyte-secrets": "true"},
        "annotations": annotations,
    }
    return [
        (
            "a pod with one container",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": {"containers": [{"name": "main", "image": "task:1"}]},
            },
        ),
        (
            "a pod with init containers, env and mounts of its own",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": {
                    "initContainers": [
                        {"name": "setup", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": "task:1",
                            "env": [{"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        ),
    ]


def _skeleton(spec: FragmentSpec, list_name: str, item: Any) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A minimal pod holding `item` where the fragment merges it, and the item's path there."""
    main: dict[str, Any] = {"name": "main", "image": "x"}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lint"},
        "spec": {"containers": [main]},
    }
    if spec.field is None:
        if list_name == "containers":
            pod["spec"]["containers"] = [item]
        else:
            pod["spec"][list_name] = [item]
        return pod, ("spec", list_name, 0)
    container = dict(main)
    container[spec.field] = [item]
    pod["spec"][list_name] = [container]
    return pod, ("spec", list_name, 0, spec.field, 0)


def _template_line(spec: FragmentSpec, index: int, multiple: bool, path: tuple[Any, ...]) -> int | None:
    try:
        doc = yamldoc.load(Path(spec.fragment.file).read_text(encoding="utf-8"), spec.fragment.file)
    except (OSError, LoadError):
        return None
    return doc.line(((index,) if multiple else ()) + path)


def _check_items(rule: Rule, sample: SecretRequest, versions: tuple[str, ...]) -> list[Problem]:
    import kubernetes_validate

    try:
        rendered = rule.render(sample, 0, SAMPLE_POD).items
        whole = rule.render_pod([sample], 0, SAMPLE_POD).items if rule.per_pod else rendered
    except RenderError as exc:
        return [_from_error(exc)]
    problems = []
    for spec, each, once in zip(rule.fragments, rendered, whole, strict=True):
        items = once if spec.per == "pod" else each
        if spec.mode.metadata:
            continue  # metadata keys: the whole-pod check below validates them
        for index, item in enumerate(items):
            for list_name in spec.into:
                pod, prefix = _skeleton(spec, list_name, item)
                for version in versions:
                    try:
                        kubernetes_validate.validate(pod, version, strict=True)
                    except kubernetes_validate.ValidationError as exc:
                        path = tuple(exc.path)[len(prefix) :]
                        unexpected = (
                            _UNEXPECTED.findall(exc.message)
                            if exc.validator == "additionalProperties"
                            else []
                        )
                        line = _template_line(spec, index, len(items) > 1, path + tuple(unexpected[:1]))
                        inside = ".".join(str(p) for p in path)
                        message = f"{inside + ': ' if inside else ''}{exc.message} (Kubernetes {version})"
                        problems.append(
                            Problem(
                                message,
                                file=spec.fragment.file,
                                line=line,
                                source=_line_text(spec.fragment.file, line),
                            )
                        )
                        break
    return problems


def lint(
    source: str | Path | None, versions: tuple[str, ...] | None = None
) -> tuple[list[Problem], list[str]]:
    """The problems found, and a line or two saying what was checked."""
    import kubernetes_validate

    try:
        config = load_config(source)
    except LoadError as exc:
        return [_from_error(exc)], []
    collected: list[LoadError] = []
    try:
        rules, warnings = load_rules(config, collected)
    except LoadError as exc:
        errors = collected or [exc]
        return [_from_error(e) for e in errors], []
    if not versions:  # the oldest the rules promise (minimumKubernetes), and the newest known
        oldest = max((rule.minimum_kubernetes for rule in rules), key=lambda v: tuple(map(int, v.split("."))))
        versions = (oldest, kubernetes_validate.latest_version())
    problems: list[Problem] = []
    for rule in rules:
        for sample in SAMPLE_SECRETS + ENV_SAMPLES:
            problems += _check_items(rule, sample, versions)
    engine = Engine(config, rules, warnings)
    refused: list[str] = []
    item_problems = bool(problems)
    for description, pod in _sample_pods():
        try:
            patched = engine.mutate(pod).pod
        except Rejected as exc:
            refused.append(f"{description}: {exc.reason}")
            continue
        except RenderError as exc:
            problems.append(_from_error(exc))
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(patched, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                if not item_problems:  # otherwise this repeats what the fragments showed
                    path = ".".join(str(p) for p in exc.path)
                    message = f"{description}, after mutation: {path}: {exc.message} (Kubernetes {version})"
                    problems.append(Problem(message))
                break
    seen: dict[tuple[str | None, int | None, str], Problem] = {}
    for problem in problems:  # each sample secret finds the same template problems again
        seen.setdefault((problem.file, problem.line, problem.message), problem)
    unique = list(seen.values())
    templates = sorted(
        {s.fragment.file for r in rules for s in r.fragments}
        | {t.file for r in rules for t in r.texts.values()}
    )
    checked = [
        f"checked rules {', '.join(r.file for r in rules)} and {len(templates)} templates",
        f"with {len(SAMPLE_SECRETS)} sample secrets and {len(_sample_pods())} sample pods against Kubernetes {', '.join(versions)}",
    ]
    checked += [f"note: a sample was refused ({line})" for line in refused]
    return unique, checked
