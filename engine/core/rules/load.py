"""Reading rule files: the shape of rules/<manager>.yaml, checked once at load with file and
line for every mistake, then compiled into a `Rule` with its patterns and templates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from .. import yamldoc
from ..compose.modes import MODES, EntryError, MergeMode, item_skeletons
from ..errors import LoadError, RenderError
from ..jsontypes import VARIES, compact_json, skeleton_json
from ..options import DEFAULT_PROFILE, FLYTE_PROFILES, closest
from ..templating.compiled import compile_template
from ..templating.fragments import load_fragment
from ..templating.jinja import TextTemplate
from .accept import fields, mount
from .model import (
    REQUEST_FIELDS,
    SAMPLE_POD,
    SAMPLE_REQUEST,
    FragmentSpec,
    Rule,
    static_items,
)
from .settings import check_keys, minimum_kubernetes, text_entry, when_of

RULE_KEYS = (
    "name",
    "manager",
    "configSection",
    "configKeys",
    "values",
    "valueChecks",
    "minimumKubernetes",
    "accept",
    "texts",
    "fragments",
)
FRAGMENT_KEYS = ("template", "merge", "into", "field", "when", "per", "unique")
PER = ("secret", "pod")
_LIST_NAME = re.compile(r"[a-z][A-Za-z]*")


def read_rule(path: Path) -> yamldoc.Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"cannot read the rule: {exc.strerror}", file=str(path)) from None
    return yamldoc.load(text, str(path))


def rule_header(doc: yamldoc.Doc) -> tuple[str, str]:
    """The rule's name and manager, read before anything else so config can be matched."""
    data = doc.data
    if not isinstance(data, Mapping):
        raise doc.error((), "a rule file must be a mapping; see rules/gcp.yaml")
    check_keys(doc, (), data, RULE_KEYS)
    for key in ("name", "manager", "fragments"):
        if key not in data:
            raise doc.error((), f"the rule has no {key!r}")
    name, manager = data["name"], data["manager"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise doc.error(("name",), "name must be lower-case letters, digits and '-'")
    if not isinstance(manager, str) or not manager:
        raise doc.error(("manager",), "manager must be a secret manager type such as GCP")
    return name, manager


def compile_rule(
    doc: yamldoc.Doc,
    env: jinja2.Environment,
    values: dict[str, Any],
    problems: list[LoadError] | None = None,
    profile: str = DEFAULT_PROFILE,
) -> Rule:
    """Build a rule from its checked file; `values` are the defaults merged with config, and
    `profile` (`secretpatch.flyte`) picks the merge mode of a fragment that names one per profile.

    With `problems`, every text and fragment is tried and each mistake is appended there
    (`secretpatch lint` reports them all); the first one is still raised at the end."""
    found: list[LoadError] = []

    def attempt(build: Any) -> Any:
        if problems is None:
            return build()
        try:
            return build()
        except LoadError as exc:
            found.append(exc)
            return None

    data = doc.data
    name, manager = rule_header(doc)
    section = data.get("configSection")
    if section is not None and not isinstance(section, str):
        raise doc.error(("configSection",), "configSection must be a config key such as gcpSecretManager")
    config_keys = data.get("configKeys") or []
    if not isinstance(config_keys, list) or not all(k in values for k in config_keys):
        raise doc.error(("configKeys",), "configKeys must list keys of values")
    rule = Rule(
        name=name,
        manager=manager,
        file=doc.file,
        config_section=section,
        config_keys=tuple(config_keys),
        values=values,
        mount=mount(doc, env, values),
        fields=fields(doc, env, values),
    )
    texts = data.get("texts") or {}
    if not isinstance(texts, Mapping):
        raise doc.error(("texts",), "texts must map names to text templates")
    for text_name, entry in texts.items():
        template, when = text_entry(doc, env, values, text_name, entry)
        text = attempt(
            lambda n=text_name, t=template: _located(doc, ("texts", n), lambda: TextTemplate(env, t))
        )
        if text is not None and when:
            text.fast = compile_template(env, text.tree, values)
            rule.texts[text_name] = text
    fragments = data["fragments"]
    if not isinstance(fragments, list) or not fragments:
        raise doc.error(("fragments",), "fragments must be a non-empty list")
    for i, entry in enumerate(fragments):
        spec = attempt(
            lambda i=i, entry=entry: _fragment(doc, ("fragments", i), entry, env, values, profile=profile)
        )
        if spec is not None:
            rule.fragments.append(spec)
    if found and problems is not None:
        problems.extend(found)
        raise found[0]
    rule.minimum_kubernetes = minimum_kubernetes(doc, env, values)
    for spec in rule.fragments:
        spec.items = static_items(spec)
        spec.shape = None if spec.items is None else spec.mode.shapes(spec.items)
        if spec.items is None and spec.per == "secret":
            skeleton = spec.fragment.skeleton(VARIES)
            spec.item_shapes = spec.mode.item_shapes(skeleton)
            spec.item_json = _item_json(skeleton)
    rule.shared = frozenset().union(
        *(spec.fragment.shared() for spec in rule.fragments),
        (id(spec.items) for spec in rule.fragments if spec.items is not None),
    )
    rule.reads_pod = any("pod" in t.names for t in rule.texts.values()) or any(
        "pod" in f.fragment.names for f in rule.fragments
    )
    rule.reads = _request_fields_read(rule)
    try:
        rule.render(SAMPLE_REQUEST, 0, SAMPLE_POD)
        if rule.per_pod:
            rule.render_pod([SAMPLE_REQUEST], 0, SAMPLE_POD)
    except RenderError as exc:
        raise LoadError(
            f"{exc.message} (rendering a sample secret)", file=exc.file or doc.file, line=exc.line
        ) from None
    return rule


def _item_json(skeleton: Any) -> tuple[Callable[[Any], str], ...] | None:
    """How to make the JSON text of each item a fragment built on `skeleton` renders
    (`item_skeletons`); None when the skeleton does not decide how many there are."""
    each = item_skeletons(skeleton)
    if each is None:
        return None
    texts = []
    for element in each:
        made = compact_json if element is VARIES else skeleton_json(element)
        if made is None:
            return None
        texts.append(made)
    return tuple(texts)


def _request_fields_read(rule: Rule) -> frozenset[str]:
    """The request fields any of the rule's templates may read, with the rule's values. Any
    other attribute of the request (a method such as `describe`) may read them all."""
    found: set[str] = set()
    for reads in [t.secret_reads(rule.values) for t in rule.texts.values()] + [
        f.fragment.secret_reads for f in rule.fragments
    ]:
        if reads is None or not reads <= _PLAIN_ATTRIBUTES:
            return frozenset(REQUEST_FIELDS)
        found |= reads
    return frozenset(found & set(REQUEST_FIELDS))


# The request's attributes that are one value each: reading one reads nothing else.
_PLAIN_ATTRIBUTES = frozenset({*REQUEST_FIELDS, "mount_requirement", "annotation"})


def _located(doc: yamldoc.Doc, path: tuple[str | int, ...], build: Any) -> Any:
    """Run `build`, naming the rule's line when the error has no place of its own."""
    try:
        return build()
    except LoadError as exc:
        if exc.file is None:
            raise doc.error(path, exc.message) from None
        raise


def _merge_mode(doc: yamldoc.Doc, path: tuple[str | int, ...], merge: Any, profile: str) -> MergeMode:
    """A fragment's merge mode: one mode for every profile, or a mapping from each profile of
    `secretpatch.flyte` to its mode where Flyte's releases merge differently. Every mode named
    is checked, whichever profile the config picks."""
    if not isinstance(merge, Mapping):
        return _mode_named(doc, path, merge)
    for name, each in merge.items():
        if name not in FLYTE_PROFILES:
            raise doc.error(
                (*path, name),
                f"unknown profile {name!r}; {closest(str(name), list(FLYTE_PROFILES), 'profiles')}",
            )
        _mode_named(doc, (*path, name), each)
    missing = [name for name in FLYTE_PROFILES if name not in merge]
    if missing:
        raise doc.error(
            path,
            f"merge names no mode for the profile {', '.join(missing)} of secretpatch.flyte; "
            f"give one for each of {', '.join(FLYTE_PROFILES)}",
        )
    return _mode_named(doc, (*path, profile), merge[profile])


def _mode_named(doc: yamldoc.Doc, path: tuple[str | int, ...], merge: Any) -> MergeMode:
    mode = MODES.get(merge) if isinstance(merge, str) else None
    if mode is None:
        raise doc.error(
            path,
            f"unknown merge mode {merge!r}; expected one of: {', '.join(sorted(MODES))}, or a "
            f"mapping from each profile of secretpatch.flyte ({', '.join(FLYTE_PROFILES)}) to one",
        )
    return mode


def _fragment(
    doc: yamldoc.Doc,
    path: tuple[str | int, ...],
    entry: Any,
    env: jinja2.Environment,
    values: dict[str, Any],
    *,
    profile: str,
) -> FragmentSpec | None:
    """The fragment compiled, or None when its `when` (an expression over values, evaluated
    here) is false: a fragment an operator's switch turns off does not exist, so it neither
    renders nor counts as a writer of its lists (`mark_skippable`). It is still checked."""
    if not isinstance(entry, Mapping):
        raise doc.error(path, "a fragment must be a mapping with template, merge and into")
    check_keys(doc, path, entry, FRAGMENT_KEYS)
    for key in ("template", "merge", "into"):
        if key not in entry:
            raise doc.error(path, f"the fragment has no {key!r}")
    mode = _merge_mode(doc, (*path, "merge"), entry["merge"], profile)
    into = entry["into"]
    into = [into] if isinstance(into, str) else into
    if (
        not isinstance(into, list)
        or not into
        or not all(isinstance(i, str) and _LIST_NAME.fullmatch(i) for i in into)
    ):
        raise doc.error(
            (*path, "into"), "into must name pod-spec lists, such as [initContainers, containers]"
        )
    list_field = entry.get("field")
    if list_field is not None and not (isinstance(list_field, str) and _LIST_NAME.fullmatch(list_field)):
        raise doc.error((*path, "field"), "field must name a container list, such as env or volumeMounts")
    try:
        mode.check_entry(into, list_field)
    except EntryError as exc:
        raise doc.error(path if exc.key is None else (*path, exc.key), str(exc)) from None
    template = entry["template"]
    if not isinstance(template, str):
        raise doc.error((*path, "template"), "template must name a template file")
    per = entry.get("per", "secret")
    if per not in PER:
        raise doc.error(
            (*path, "per"),
            f"per must be 'secret' (rendered for each secret) or 'pod' (once, with every secret); "
            f"got {per!r}",
        )
    fragment = _located(doc, (*path, "template"), lambda: load_fragment(env, template, values, per))
    unique = entry.get("unique", False)
    if not isinstance(unique, bool):
        raise doc.error((*path, "unique"), "unique must be true or false")
    if not when_of(doc, path, entry, env, values):
        return None
    return FragmentSpec(fragment, mode, tuple(into), list_field, doc.line(path), per, unique)
