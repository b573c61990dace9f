"""A rule's `accept`: which mount requirements it takes and the grammar of each request
field, compiled at load (settings may be expressions over values: settings.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2

from .. import yamldoc
from ..options import closest
from ..requests import MOUNT_TYPES
from .model import REQUEST_FIELDS, FieldRule
from .settings import by_values, check_keys

ACCEPT_KEYS = ("mountRequirement", "fields")
FIELD_KEYS = ("required", "pattern", "rule")


def mount(doc: yamldoc.Doc, env: jinja2.Environment, values: dict[str, Any]) -> dict[str, bool | str]:
    accept = doc.data.get("accept") or {}
    if not isinstance(accept, Mapping):
        raise doc.error(("accept",), "accept must be a mapping")
    check_keys(doc, ("accept",), accept, ACCEPT_KEYS)
    mount = accept.get("mountRequirement", {"ANY": True, "FILE": True})
    if not isinstance(mount, Mapping):
        raise doc.error(("accept", "mountRequirement"), "mountRequirement must be a mapping")
    mount = {
        key: by_values(doc, ("accept", "mountRequirement", key), v, env, values) for key, v in mount.items()
    }
    for key, verdict in mount.items():
        if key not in MOUNT_TYPES:
            raise doc.error(
                ("accept", "mountRequirement", key),
                f"unknown mount requirement {key!r}; {closest(key, MOUNT_TYPES)}",
            )
        if verdict is not True and not (isinstance(verdict, str) and verdict):
            raise doc.error(
                ("accept", "mountRequirement", key),
                "use true to accept, a refusal message, or an expression over values giving one of them",
            )
    return dict(mount)


def fields(doc: yamldoc.Doc, env: jinja2.Environment, values: dict[str, Any]) -> dict[str, FieldRule]:
    fields = (doc.data.get("accept") or {}).get("fields") or {}
    path: tuple[str | int, ...] = ("accept", "fields")
    if not isinstance(fields, Mapping):
        raise doc.error(path, "fields must map request fields to their grammar")
    result = {}
    for name, spec in fields.items():
        if name not in REQUEST_FIELDS:
            raise doc.error((*path, name), f"unknown request field {name!r}; {closest(name, REQUEST_FIELDS)}")
        if not isinstance(spec, Mapping):
            raise doc.error((*path, name), "a field's grammar must be a mapping")
        check_keys(doc, (*path, name), spec, FIELD_KEYS)
        required = by_values(doc, (*path, name, "required"), spec.get("required", False), env, values)
        if not isinstance(required, bool):
            raise doc.error(
                (*path, name, "required"),
                "required must be true, false, or an expression over values giving one",
            )
        rule = spec.get("rule")
        if not isinstance(rule, str) or not rule:
            raise doc.error(
                (*path, name, "rule"), "each field needs a 'rule': the grammar in words, said on refusal"
            )
        pattern = spec.get("pattern")
        compiled = None
        if pattern is not None:
            try:
                compiled = re.compile(str(pattern))
            except re.error as exc:
                raise doc.error((*path, name, "pattern"), f"invalid regular expression: {exc}") from None
        result[name] = FieldRule(name, required, compiled, rule.strip())
    return result
