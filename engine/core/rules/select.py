"""Which rules a configuration enables, compiled with their values.

The rules folder may hold rules for managers the config does not list; the config may list
managers Flyte knows and secretpatch has no rule for (a warning) or managers nobody knows (an
error naming the closest). Each rule's values are its defaults, then its Flyte config
section, then `secretpatch.values.<rule>`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import yamldoc
from ..bundled import bundled_dir
from ..config import FLYTE_MANAGER_TYPES, GLOBAL_MANAGER, Config, manager_spellings, warn_ignored
from ..errors import LoadError
from ..options import closest
from ..templating.jinja import make_environment
from .load import compile_rule, read_rule, rule_header
from .model import Rule
from .settings import value_problems

log = logging.getLogger("secretpatch")


def load_rules(config: Config, problems: list[LoadError] | None = None) -> tuple[list[Rule], list[str]]:
    """The enabled rules, compiled. With `problems`, every broken rule and template is
    collected there before the first is raised."""
    bundled_rules = bundled_dir("rules")
    files = {path.name: path for path in sorted(bundled_rules.glob("*.yaml"))}
    if config.rules_dir is not None:
        files.update({path.name: path for path in sorted(config.rules_dir.glob("*.yaml"))})
    search = [bundled_dir("templates")]
    if config.templates_dir is not None:
        search.insert(0, config.templates_dir)
    env = make_environment(search)

    docs = [read_rule(path) for _, path in sorted(files.items())]
    headers: dict[str, tuple[yamldoc.Doc, str]] = {}
    for doc in docs:
        name, manager = rule_header(doc)
        if name in headers:
            raise doc.error(("name",), f"rule {name!r} is also defined in {headers[name][0].file}")
        headers[name] = (doc, manager)
    managers = {manager for _, manager in headers.values()}
    # Flyte 2.0 reads manager names whatever their case (`gcp`).
    by_case = manager_spellings(managers)
    warnings: list[str] = []
    enabled = []
    given = ", ".join(config.managers)
    for position, written in enumerate(config.managers):
        manager = by_case.get(written.lower(), written)
        matching = [doc for doc, m in headers.values() if m == manager]
        if matching:
            enabled.extend(matching)
        elif manager == GLOBAL_MANAGER:
            warnings.append(
                f"{config.file}: the config names {written}, Flyte's global secret injector; "
                "secretpatch has none, so its requests go to the other managers "
                f"({', '.join(sorted(managers))})"
            )
        elif manager in FLYTE_MANAGER_TYPES:
            warnings.append(
                f"{config.file}: the config enables {written}, which secretpatch has no rule "
                f"for; its requests go to the other managers ({', '.join(sorted(managers))})"
            )
        else:
            raise config.error(
                _position(config, position),
                f"unknown secret manager type {written!r}; "
                f"{closest(written, sorted(managers | set(FLYTE_MANAGER_TYPES)), 'valid types')}",
            )
    if config.section and not config.managers_given:
        warnings.append(
            f"{config.file}: the webhook section names no secret manager (secretManagerTypes or "
            "secretManagerType); secretpatch enables GCP, where Flyte would enable only its default "
            "(K8s in 1.16, Embedded in 2.0): set secretManagerTypes: [GCP] to say so"
        )
    if not enabled:
        raise config.error(
            config.managers_path,
            f"no rule is enabled: the config enables {given}, and secretpatch serves "
            f"{', '.join(sorted(managers))}; add one of those to secretManagerTypes (Flyte 2.0) "
            "or set secretManagerType to it (Flyte 1.16)",
        )
    for name in config.values:
        if name not in headers:
            raise config.error(
                (*config.own_path, "values", name),
                f"no rule named {name!r}; {closest(name, sorted(headers), 'rules')}",
            )

    rules = []
    for doc in enabled:
        try:
            values = rule_values(config, doc)
            _check_values(config, doc, env, values)
            rules.append(compile_rule(doc, env, values, problems, config.profile))
        except LoadError as exc:
            if problems is None:
                raise
            if exc not in problems:
                problems.append(exc)
    if problems:
        raise problems[0]
    consumed = {rule.config_section for rule in rules if rule.config_section}
    for message in warnings:
        log.warning(message)
    return rules, warnings + warn_ignored(config, consumed)


def _check_values(config: Config, doc: yamldoc.Doc, env: Any, values: dict[str, Any]) -> None:
    """Refuse values that break the rule's `valueChecks`, at the config key that set them."""
    for name, rule in value_problems(doc, env, values):
        rule_name = doc.data["name"]
        message = f"{values[name]!r} is not a valid value for {name}: it {rule}"
        if name in config.values.get(rule_name, {}):
            raise config.error((*config.own_path, "values", rule_name, name), message)
        raise doc.error(("values", name), message)


def _position(config: Config, position: int) -> tuple[str | int, ...]:
    """Where the `position`th manager is: an item of secretManagerTypes, or the singular key."""
    return (*config.managers_path, position) if config.managers_listed else config.managers_path


def _flyte_merge(default: Any, given: Any) -> Any:
    """A config value as Flyte's loader applies it over a default: a structure (such as
    `resources`) keeps the fields the file leaves out, and each field given (a map such as
    `requests`) replaces the default's whole; field names match whatever their case.
    `resources: {requests: {cpu: "1"}}` keeps the default limits; `resources: {}` keeps both."""
    if not isinstance(default, Mapping) or not isinstance(given, Mapping):
        return given
    merged = dict(default)
    by_case = {key.lower(): key for key in default if isinstance(key, str)}
    for key, value in given.items():
        merged[by_case.get(key.lower(), key) if isinstance(key, str) else key] = value
    return merged


def rule_values(config: Config, doc: yamldoc.Doc) -> dict[str, Any]:
    """The rule's defaults, overridden by its Flyte config section, then by secretpatch.values."""
    defaults = doc.data.get("values") or {}
    if not isinstance(defaults, Mapping):
        raise doc.error(("values",), "values must be a mapping")
    values = dict(defaults)
    section_name = doc.data.get("configSection")
    allowed = doc.data.get("configKeys") or []
    section = config.section.get(section_name) if isinstance(section_name, str) else None
    if section is not None and isinstance(section_name, str):
        path = config.path(section_name)
        if not isinstance(section, Mapping):
            raise config.error(path, "must be a mapping")
        by_case = {key.lower(): key for key in allowed}  # as Flyte reads them: `sidecarimage`
        seen: dict[str, str] = {}
        for key, value in section.items():
            name = by_case.get(key.lower()) if isinstance(key, str) else None
            if name is None:
                raise config.error((*path, key), f"unknown key {key!r}; {closest(str(key), allowed)}")
            if name in seen:
                message = (
                    f"{key!r} and {seen[name]!r} are the same key to Flyte, which ignores case; keep one"
                )
                raise config.error((*path, key), message)
            seen[name] = key
            values[name] = _flyte_merge(values.get(name), value)
    overrides = config.values.get(doc.data["name"], {})
    for key, value in overrides.items():
        if key not in defaults:
            raise config.error(
                (*config.own_path, "values", doc.data["name"], key),
                f"unknown value {key!r}; {closest(key, sorted(defaults))}",
            )
        values[key] = value
    return values
