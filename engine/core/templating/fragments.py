"""Fragment templates: YAML documents whose string values may hold Jinja.

A fragment template is parsed as YAML once, at load time. Each string value that holds Jinja
is compiled in place: a value that is exactly one expression (`"{{ values.resources }}"`)
yields whatever the expression yields (a mapping, a list, a string); any other value renders
as text. Values that depend only on `values` are computed at load time, so at request time
only the parts that name `secret`, `index`, `texts` or `pod` are rendered. Because rendered
values are never parsed as YAML again, no value can add a key or a list item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes

from .. import yamldoc
from ..errors import LoadError, RenderError
from ..jsontypes import copy_json, is_json_data
from .compiled import compile_expression, compile_template, compile_tree
from .jinja import PER_SECRET_NAMES, SEEN_BY, Fallback, Place, parsed, template_source, undeclared_names
from .reads import reads

_SINGLE_EXPRESSION = re.compile(r"\A\{\{-?(?P<expr>(?:(?!\}\}|\{\{|\{%|\{#).)*?)-?\}\}\Z", re.DOTALL)
_HAS_JINJA = re.compile(r"\{\{|\{%|\{#")


class Dynamic:
    """A value computed per secret: an expression or a text template, with its place."""

    __slots__ = ("compiled", "evaluate", "names", "place", "secret_reads")

    def __init__(
        self,
        evaluate: Callable[[Mapping[str, Any]], Any],
        place: Place,
        names: frozenset[str],
        secret_reads: frozenset[str] | None,
        compiled: tuple[Callable[[Mapping[str, Any]], Any], bool] | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.place = place
        self.names = names
        # The fields of `secret` the value may read (None: any); see reads.py.
        self.secret_reads = secret_reads
        # The value compiled over `values` (compiled.py), and whether it is always a str.
        self.compiled = compiled


def single_expression(env: jinja2.Environment, source: str) -> Callable[[Mapping[str, Any]], Any] | None:
    """`source` that is exactly one `{{ expression }}`, compiled: given a context, it yields
    whatever the expression yields (a mapping, a list, a boolean), and an undefined result is
    an error, never an empty string. None for any other text."""
    match = _SINGLE_EXPRESSION.match(source)
    if match is None:
        return None
    expression = env.compile_expression(match.group("expr"), undefined_to_none=False)

    def evaluate(context: Mapping[str, Any]) -> Any:
        result = expression(**context)
        if isinstance(result, jinja2.Undefined):
            result._fail_with_undefined_error()
        return result

    return evaluate


def _compile_value(
    env: jinja2.Environment, source: str, place: Place, values: Mapping[str, Any], per: str
) -> Dynamic:
    names = undeclared_names(env, source, place)
    secret_reads = (
        reads(env.parse(source), "secret", values, lambda name: parsed(env, name))
        if "secret" in names
        else frozenset()
    )
    seen = SEEN_BY[per]
    unknown = sorted(names - seen - set(env.globals))
    if unknown:
        raise LoadError(
            f"unknown name {unknown[0]!r} in {source.strip()!r}; "
            f"{'per-pod ' if per == 'pod' else ''}fragment templates see: {', '.join(sorted(seen))}",
            **place.where(),
        )
    tree = env.parse(source)
    body = tree.body
    if (
        _SINGLE_EXPRESSION.match(source)
        and len(body) == 1
        and isinstance(body[0], nodes.Output)
        and len(body[0].nodes) == 1
    ):
        compiled = compile_expression(env, body[0].nodes[0], values)
    else:
        text = compile_template(env, tree, values)
        compiled = None if text is None else (text, True)
    fast = _interpolation(env, source)
    if fast is not None:
        return Dynamic(fast, place, names, secret_reads, compiled)
    evaluate = single_expression(env, source)
    if evaluate is not None:
        return Dynamic(evaluate, place, names, secret_reads, compiled)
    template = env.from_string(source)
    return Dynamic(template.render, place, names, secret_reads, compiled)


def _lookup_path(node: nodes.Node) -> tuple[str, tuple[str, ...]] | None:
    """`a.b.c` as ("a", ("b", "c")); None for anything else (filters, calls, operators)."""
    attributes: list[str] = []
    while isinstance(node, nodes.Getattr):
        attributes.append(node.attr)
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name, tuple(reversed(attributes))
    return None


def _interpolation(env: jinja2.Environment, source: str) -> Callable[[Mapping[str, Any]], Any] | None:
    """A fast evaluator for the common value `"{{ a.b }}"` or `"text{{ a.b }}text"`.

    Jinja's render machinery costs more than the lookups themselves. The evaluator performs
    the same lookups through the sandbox's own `getattr`, so unsafe attributes and undefined
    names fail exactly as they would in a template. Anything else goes to Jinja.
    """
    body = env.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[str | tuple[str, tuple[str, ...]]] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        path = _lookup_path(node)
        if path is None:
            return None
        parts.append(path)
    getattr_ = env.getattr

    def lookup(context: Mapping[str, Any], name: str, attributes: tuple[str, ...]) -> Any:
        if name not in context:
            raise jinja2.UndefinedError(f"{name!r} is undefined")
        value = context[name]
        for attribute in attributes:
            value = getattr_(value, attribute)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
        return value

    if len(parts) == 1 and isinstance(parts[0], tuple):
        name, attributes = parts[0]
        return lambda context: lookup(context, name, attributes)

    def render(context: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else str(lookup(context, *p)) for p in parts)

    return render


class Fragment:
    """A compiled fragment template.

    `tree` mirrors the YAML document with `Dynamic` leaves; `static` is the whole fragment
    when it depends on nothing but `values` (then it is computed once, at load).
    """

    def __init__(self, name: str, file: str, tree: Any, names: frozenset[str]) -> None:
        self.name = name
        self.file = file
        self.tree = tree
        self.names = names
        self.is_static = False
        self.static: Any = None
        # The tree compiled into one function (compiled.compile_tree), tried first.
        self.build: Callable[[Mapping[str, Any]], Any] | None = None

    def render(self, context: Mapping[str, Any]) -> Any:
        if self.is_static:
            return self.static
        build = self.build
        if build is not None:
            try:
                return build(context)
            except Fallback:
                pass  # rendered again below, leaf by leaf, failing its own way if it fails
        return _render_tree(self.tree, context)

    def shared(self) -> frozenset[int]:
        """The ids of the objects every render hands out as they are (the static fragment,
        its constant subtrees): a cache that counts its entries' bytes counts them once, in
        the rule, not again in every entry (and skips walking them)."""
        if self.is_static:
            return frozenset({id(self.static)})
        found: set[int] = set()
        stack = [self.tree]
        while stack:
            node = stack.pop()
            if type(node) is Const:
                found.add(id(node.value))
            elif isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return frozenset(found)

    def skeleton(self, varies: object) -> Any:
        """The tree as its renders are built: its mappings and lists, each constant as it
        is, and `varies` for each value computed per render (compose/shapes.py)."""

        def walk(node: Any) -> Any:
            if type(node) is Const:
                return node.value
            if isinstance(node, Dynamic):
                return varies
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        return walk(self.static if self.is_static else self.tree)

    @property
    def secret_reads(self) -> frozenset[str] | None:
        """The fields of `secret` the fragment may read (None: any); values are folded in."""
        found: set[str] = set()
        for leaf in _dynamic_leaves(self.tree):
            if leaf.secret_reads is None:
                return None
            found |= leaf.secret_reads
        return frozenset(found)


class Const:
    """A subtree with nothing to render: rendering returns it as it is, shared, never copied
    (the patch composer copies what it hands out)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _render_tree(tree: Any, context: Mapping[str, Any]) -> Any:
    if type(tree) is Const:
        return tree.value
    if isinstance(tree, Dynamic):
        try:
            value = tree.evaluate(context)
        except jinja2.TemplateError as exc:
            raise RenderError(exc.message or str(exc), **tree.place.where()) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(str(exc), **tree.place.where()) from None
        if not is_json_data(value):
            raise RenderError(
                f"the expression yields a {type(value).__name__}, which is not JSON data",
                **tree.place.where(),
            )
        return copy_json(value)
    if isinstance(tree, dict):
        return {k: _render_tree(v, context) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_render_tree(v, context) for v in tree]
    return tree


def _fold(tree: Any, values_context: Mapping[str, Any]) -> Any:
    """Compute, at load time, every leaf that reads nothing but `values`."""
    if isinstance(tree, Dynamic):
        if tree.names & PER_SECRET_NAMES:
            return tree
        return _render_tree(tree, values_context)
    if isinstance(tree, dict):
        return {k: _fold(v, values_context) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_fold(v, values_context) for v in tree]
    return tree


def _mark_constants(tree: Any) -> Any:
    if isinstance(tree, dict | list) and not _has_dynamic(tree):
        return Const(tree)
    if isinstance(tree, dict):
        return {k: _mark_constants(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_mark_constants(v) for v in tree]
    return tree


def _dynamic_leaves(tree: Any) -> Iterator[Dynamic]:
    """The leaves of a fragment tree still to be computed per secret."""
    if isinstance(tree, Dynamic):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _dynamic_leaves(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _dynamic_leaves(value)


def _has_dynamic(tree: Any) -> bool:
    return next(_dynamic_leaves(tree), None) is not None


def load_fragment(
    env: jinja2.Environment, name: str, values: Mapping[str, Any], per: str = "secret"
) -> Fragment:
    """Read, parse and compile one fragment template, folding what depends only on values;
    `per` ("secret" or "pod") says which names it may read (jinja.SEEN_BY)."""
    source, filename = template_source(env, name)
    names: set[str] = set()

    lines = yamldoc.yaml_lines(source)

    def hook(node: Any, value: Any, line: int) -> Any:
        if isinstance(value, str) and _HAS_JINJA.search(value):
            # A block scalar's text starts on the line after its `|` or `>`.
            start = line + 1 if getattr(node, "style", None) in ("|", ">") else line
            dynamic = _compile_value(env, value, Place(filename, start, lines), values, per)
            names.update(dynamic.names)
            return dynamic
        return value

    doc = yamldoc.load(source, filename, scalar_hook=hook)
    _refuse_jinja_keys(doc)
    try:
        tree = _fold(doc.data, {"values": values})
    except RenderError as exc:
        raise LoadError(exc.message, file=exc.file, line=exc.line, source=exc.source) from None
    fragment = Fragment(name, filename, tree, frozenset(names))
    if not _has_dynamic(tree):
        fragment.is_static = True
        fragment.static = tree
    else:
        fragment.tree = _mark_constants(tree)
        fragment.build = compile_tree(fragment.tree, Const, Dynamic, lambda leaf: leaf.compiled)
    return fragment


def _refuse_jinja_keys(doc: yamldoc.Doc) -> None:
    for path in doc.lines:
        if path and isinstance(path[-1], str) and _HAS_JINJA.search(path[-1]):
            raise doc.error(path, f"key {path[-1]!r} holds Jinja; only values may")
