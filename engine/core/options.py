"""secretpatch's own keys of the config (`secretpatch:`, at the top level or inside Flyte's
`webhook` section): whose Flyte to reproduce, what a refused pod gets, the operator's rules and
templates, values, and limits. Flyte's keys are config.py's; these are read exactly (case
matters), and a mistake names the file, the line and the closest key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamldoc
from .errors import quote_json
from .limits import LIMIT_KEYS, PARSER_DEPTH, Limits

OWN_SECTION = "secretpatch"
OWN_KEYS = ("flyte", "onRefusal", "rules", "templates", "values", "limits")
# The first of each closed set is its default.
# `secretpatch.flyte`: whose behaviour the rules reproduce where Flyte's releases differ. A rule
# says what each profile does (a fragment's `merge` may map profiles to merge modes).
FLYTE_PROFILES: dict[str, str] = {"v2": "Flyte 2.0", "v1": "Flyte 1.16"}
DEFAULT_PROFILE = "v2"
# `secretpatch.onRefusal`: what a pod with a secret request that cannot be injected gets.
ON_REFUSAL: dict[str, str] = {
    "deny": "the pod is denied with the reason (Flyte 2.0)",
    "admit": "the pod is admitted unchanged, with a warning per refused secret (Flyte 1.16)",
}


@dataclass(frozen=True)
class Options:
    """secretpatch's keys as read, with their defaults."""

    rules_dir: Path | None = None
    templates_dir: Path | None = None
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    profile: str = DEFAULT_PROFILE
    on_refusal: str = "deny"


def read_options(doc: yamldoc.Doc, own: Any, path: tuple[str | int, ...], base: Path) -> Options:
    """The `secretpatch` mapping at `path` of `doc` (None: absent); folders are relative to `base`."""
    rules_dir, templates_dir, values = _own_keys(doc, own, path, base)
    return Options(
        rules_dir=rules_dir,
        templates_dir=templates_dir,
        values=values,
        limits=_limits(doc, own, path),
        profile=_choice(doc, own, path, "flyte", FLYTE_PROFILES),
        on_refusal=_choice(doc, own, path, "onRefusal", ON_REFUSAL),
    )


def dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def closest(word: str, choices: list[str] | tuple[str, ...], what: str = "valid keys") -> str:
    """`did you mean 'x'?` when something is close, else the list of valid choices."""
    by_case = {choice.lower(): choice for choice in choices}
    if word.lower() in by_case:
        return f"did you mean {by_case[word.lower()]!r}?"
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if match:
        return f"did you mean {match[0]!r}?"
    return f"{what}: " + ", ".join(sorted(choices))


def _choice(
    doc: yamldoc.Doc, own: Any, path: tuple[str | int, ...], key: str, choices: Mapping[str, str]
) -> str:
    """One of secretpatch's keys that picks from a closed set (`flyte`, `onRefusal`)."""
    value = own.get(key) if isinstance(own, Mapping) else None
    if value is None:
        return next(iter(choices))  # the first is the default
    if not isinstance(value, str) or value not in choices:
        where = (*path, key)
        listed = "; ".join(f"{name}: {meaning}" for name, meaning in choices.items())
        raise doc.error(where, f"{dotted(where)} is {quote_json(value)}; expected one of {listed}")
    return str(value)


def _limits(doc: yamldoc.Doc, own: Any, path: tuple[str | int, ...]) -> Limits:
    given = own.get("limits") if isinstance(own, Mapping) else None
    if given is None:
        return Limits()
    where = (*path, "limits")
    if not isinstance(given, Mapping):
        raise doc.error(where, f"{dotted(where)} must be a mapping with keys: {', '.join(LIMIT_KEYS)}")
    for key, value in given.items():
        if key not in LIMIT_KEYS:
            raise doc.error((*where, key), f"unknown limit {key!r}; {closest(key, LIMIT_KEYS, 'limits')}")
        least = 0 if key.endswith("Bytes") and key != "maxRequestBytes" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            kind = "a whole number, 0 or more" if least == 0 else "a positive whole number"
            raise doc.error((*where, key), f"{dotted((*where, key))} must be {kind}")
        if key == "maxJsonDepth" and value > PARSER_DEPTH:
            raise doc.error(
                (*where, key),
                f"{dotted((*where, key))} can be at most {PARSER_DEPTH}, the JSON parser's own limit",
            )
    return Limits(**given)


def _own_keys(
    doc: yamldoc.Doc, own: Any, path: tuple[str | int, ...], base: Path
) -> tuple[Path | None, Path | None, Mapping[str, Mapping[str, Any]]]:
    if own is None:
        return None, None, {}
    if not isinstance(own, Mapping):
        raise doc.error(path, f"{dotted(path)} must be a mapping with keys: {', '.join(OWN_KEYS)}")
    for key in own:
        if key not in OWN_KEYS:
            raise doc.error((*path, key), f"unknown key {dotted((*path, key))!r}; {closest(key, OWN_KEYS)}")
    folders: list[Path | None] = []
    for key in ("rules", "templates"):
        value = own.get(key)
        if value is None:
            folders.append(None)
            continue
        if not isinstance(value, str) or not value:
            raise doc.error((*path, key), f"{dotted((*path, key))} must be a folder path")
        folder = (base / value).resolve()
        if not folder.is_dir():
            raise doc.error((*path, key), f"{dotted((*path, key))}: no folder at {folder}")
        folders.append(folder)
    values = own.get("values") or {}
    if not isinstance(values, Mapping) or not all(isinstance(v, Mapping) for v in values.values()):
        raise doc.error(
            (*path, "values"),
            f"{dotted((*path, 'values'))} must map rule names to mappings of values, "
            "such as {gcp: {mountPath: /etc/flyte/secrets}}",
        )
    return folders[0], folders[1], values
