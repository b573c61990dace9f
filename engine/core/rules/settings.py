"""Rule settings decided at load from the rule's values: a setting written as one Jinja
expression over `values` (`required`, mount verdicts, `when`, `minimumKubernetes`), the
`valueChecks` a configured value must pass, and the `texts` entries that exist only for some
values. Read by load.py, which reads the rest of a rule file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2

from .. import yamldoc
from ..errors import LoadError
from ..options import closest
from ..templating.fragments import single_expression
from .model import DEFAULT_MINIMUM_KUBERNETES

CHECK_KEYS = ("check", "rule")
TEXT_KEYS = ("template", "when")


def check_keys(
    doc: yamldoc.Doc, path: tuple[str | int, ...], data: Mapping[str, Any], valid: tuple[str, ...]
) -> None:
    for key in data:
        if key not in valid:
            raise doc.error((*path, key), f"unknown key {key!r}; {closest(key, valid)}")


def by_values(
    doc: yamldoc.Doc, path: tuple[str | int, ...], value: Any, env: jinja2.Environment, values: dict[str, Any]
) -> Any:
    """A rule setting written as one Jinja expression over `values` ("{{ ... }}"), evaluated
    once, here: what the rule accepts may depend on an operator's switch
    (`secretpatch.values`), and no request is needed to know it. Anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        evaluate = single_expression(env, value.strip())
        if evaluate is None:
            return value
        return evaluate({"values": values})
    except jinja2.TemplateError as exc:
        raise doc.error(path, f"{value.strip()!r}: {exc.message or exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise doc.error(path, f"{value.strip()!r}: {exc}") from None


def value_problems(
    doc: yamldoc.Doc, env: jinja2.Environment, values: dict[str, Any]
) -> list[tuple[str, str]]:
    """The rule's `valueChecks` that `values` (defaults, then config) break, as (value name,
    what it must be). Each check is one expression over values: a switch such as
    `fetch: batched` that is misspelt must stop the load, not quietly pick the other branch."""
    checks = doc.data.get("valueChecks") or {}
    if not isinstance(checks, Mapping):
        raise doc.error(("valueChecks",), "valueChecks must map value names to a check and a rule")
    broken = []
    for name, spec in checks.items():
        path: tuple[str | int, ...] = ("valueChecks", name)
        if name not in values:
            raise doc.error(path, f"no value named {name!r}; {closest(str(name), sorted(values))}")
        if not isinstance(spec, Mapping):
            raise doc.error(path, "a value check must be a mapping with 'check' and 'rule'")
        check_keys(doc, path, spec, CHECK_KEYS)
        rule = spec.get("rule")
        if not isinstance(rule, str) or not rule.strip():
            raise doc.error((*path, "rule"), "a value check needs a 'rule': what the value must be, in words")
        source = spec.get("check")
        if not isinstance(source, str) or single_expression(env, source.strip()) is None:
            message = 'check must be one expression over values, such as "{{ values.x > 0 }}"'
            raise doc.error((*path, "check"), message)
        try:
            verdict = by_values(doc, (*path, "check"), source, env, values)
        except LoadError:
            verdict = False  # a value of the wrong type breaks its check
        if verdict is not True:
            broken.append((str(name), rule.strip()))
    return broken


def minimum_kubernetes(doc: yamldoc.Doc, env: jinja2.Environment, values: dict[str, Any]) -> str:
    """The oldest Kubernetes minor version (`1.35`) the rule's patched pods are valid for, as
    written or as an expression over values; 1.31 when the rule does not say."""
    path: tuple[str | int, ...] = ("minimumKubernetes",)
    version = by_values(doc, path, doc.data.get("minimumKubernetes", DEFAULT_MINIMUM_KUBERNETES), env, values)
    if not isinstance(version, str) or not re.fullmatch(r"1\.[0-9]{1,3}", version):
        raise doc.error(
            path,
            f"minimumKubernetes must be a version such as '1.31', or an expression giving one; "
            f"got {version!r}",
        )
    return version


def text_entry(
    doc: yamldoc.Doc, env: jinja2.Environment, values: dict[str, Any], name: str, entry: Any
) -> tuple[str, bool]:
    """A `texts` entry: a template file, or {template, when} for a text that exists only
    when an expression over values holds (it is still checked when it does not)."""
    path: tuple[str | int, ...] = ("texts", name)
    if isinstance(entry, str):
        return entry, True
    if not isinstance(entry, Mapping) or not isinstance(entry.get("template"), str):
        raise doc.error(path, "a text must name a template file, or be {template: FILE, when: EXPRESSION}")
    check_keys(doc, path, entry, TEXT_KEYS)
    return entry["template"], when_of(doc, path, entry, env, values)


def when_of(
    doc: yamldoc.Doc,
    path: tuple[str | int, ...],
    entry: Mapping[str, Any],
    env: jinja2.Environment,
    values: dict[str, Any],
) -> bool:
    """An entry's `when` (a fragment's, a text's): true, false, or one expression over values
    giving one; true when the entry has none."""
    when = by_values(doc, (*path, "when"), entry.get("when", True), env, values)
    if not isinstance(when, bool):
        raise doc.error((*path, "when"), "when must be true, false, or an expression over values giving one")
    return when
