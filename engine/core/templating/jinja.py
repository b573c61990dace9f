"""Jinja for secretpatch: the sandboxed environment, its filters, and text templates.

Everything renders in Jinja's immutable sandbox with StrictUndefined: a template cannot
mutate what it is given, and a misspelt name is an error, never an empty string. Fragment
templates (YAML with Jinja in values) are compiled in fragments.py.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import BuiltinMethodType
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import LoadError, RenderError
from ..quantity import canonical_resources
from ..requests import SecretRequest
from .reads import reads

# Names a template may read. `values` is fixed at load time; the others change per secret
# (`secrets`, every secret of the pod, is seen by per-pod fragments only; see rules/load.py).
PER_SECRET_NAMES = frozenset({"secret", "index", "texts", "pod", "secrets"})
CONTEXT_NAMES = PER_SECRET_NAMES | {"values"}
# What each kind of template sees: texts and per-secret fragments one secret, per-pod
# fragments every secret of the pod at once.
SEEN_BY = {
    "secret": CONTEXT_NAMES - {"secrets"},
    "pod": frozenset({"secrets", "index", "pod", "values"}),
}


def shquote(value: object) -> str:
    """One shell word. Leaves a word of safe characters as it is, so Flyte's lines are kept."""
    if type(value) is str:
        return shlex.quote(value)
    if not isinstance(value, str | int):
        raise TypeError(f"shquote expects a string, got {type(value).__name__}")
    return shlex.quote(str(value))


def path_join(base: object, *parts: object) -> str:
    """Go's filepath.Join (join, then clean), refusing a result outside `base`."""
    if not isinstance(base, str):
        raise TypeError("path_join expects strings")
    root, inside, plain = _cleaned_root(base)
    # The common case, a clean absolute base and names without "/" (a secret's group and
    # version): cleaning would change nothing but the base, already clean. (One loop, no
    # generator: it runs for every secret's render.)
    as_they_are = plain and bool(parts)
    for part in parts:
        if not isinstance(part, str):
            raise TypeError("path_join expects strings")
        if as_they_are and (not part or "/" in part or part in {".", ".."}):
            as_they_are = False
    if as_they_are:
        return inside + "/".join(parts)  # type: ignore[arg-type]
    joined = "/".join([p for p in (base, *parts) if p])  # type: ignore[misc]
    cleaned = posixpath.normpath(joined) if joined else ""
    if root and cleaned != root and not cleaned.startswith(inside):
        raise ValueError(f"path {cleaned!r} is outside {root!r}")
    return cleaned


@functools.lru_cache(maxsize=64)
def _cleaned_root(base: str) -> tuple[str, str, bool]:
    """`base` cleaned, what a path inside it starts with, and whether names without "/"
    join it as they are: an absolute path other than "/" (joining "/" makes "//", which
    POSIX cleaning keeps, as it keeps a leading "//"). A rule's mount path: a few, asked
    for on every render."""
    root = posixpath.normpath(base) if base else ""
    plain = root.startswith("/") and not root.startswith("//") and root != "/"
    return root, root.rstrip("/") + "/", plain


# Whether a dict instance has an attribute of this name (its methods): Jinja's `a.b` looks
# for an attribute first and for a key only when there is none.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# A request's fields: plain strings, each safe to read (no underscore, nothing internal).
REQUEST_ATTRIBUTES = frozenset(field.name for field in fields(SecretRequest))
# str's methods that the sandbox runs through its own safe formatter: every other str method
# is safe to call, as str is immutable. (Jinja 3.1.5 and later wrap them at the lookup, so
# they never reach `call` as str methods; earlier versions checked them in `call`.)
_STR_SPECIAL = frozenset({"format", "format_map"})
STR_CALLS = frozenset(name for name in dir(str) if not name.startswith("_")) - _STR_SPECIAL


class Fallback(Exception):
    """A compiled template (compiled.py) steps aside: the template renders in Jinja."""


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with the lookups templates make on every render answered
    without its per-lookup checks where those checks cannot refuse: a key of a plain dict
    that has no attribute of the name, an item of a list or tuple, a field of a request, a
    str method other than format (looked up, or called). What each returns is what the sandbox returns
    (it looks up the same way); everything else, and every failure, goes through the
    sandbox itself, so what a template may reach is unchanged (tests/test_security.py).
    The checks cost about a third of a gcloud line's render."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's:
        every render copies them into its context, and iterating a ChainMap twice per render
        cost a sixth of it. Nothing changes the environment's globals once it is made."""
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict:
            if attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except (TypeError, LookupError):
                    pass
        elif (kind is SecretRequest and attribute in REQUEST_ATTRIBUTES) or (
            kind is str and attribute in STR_CALLS
        ):
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        kind, index = type(obj), type(argument)
        if ((kind is list or kind is tuple) and index is int) or (kind is dict and index is str):
            try:
                return obj[argument]
            except LookupError:
                pass
        return super().getitem(obj, argument)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Only a call without keywords: inside a loop or a block Jinja passes its own
        # (_loop_vars, _block_vars), which the context's call takes off before calling.
        if (
            not kwargs
            and type(obj) is BuiltinMethodType
            and type(obj.__self__) is str
            and obj.__name__ not in _STR_SPECIAL
        ):
            return obj(*args)
        return super().call(context, obj, *args, **kwargs)


def make_environment(search_path: list[Path]) -> ImmutableSandboxedEnvironment:
    env = Sandbox(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["shquote"] = shquote
    env.filters["path_join"] = path_join
    env.filters["quantities"] = canonical_resources
    return env


@dataclass(frozen=True)
class Place:
    """Where an expression starts: its file, its line, and the file's lines (to show the one
    at fault in an error)."""

    file: str
    line: int | None
    lines: tuple[str, ...] = ()

    def where(self, inner: int = 1) -> dict[str, Any]:
        """The keyword arguments of a LocatedError at the `inner`th line of the expression."""
        if self.line is None:
            return {"file": self.file, "line": None, "source": None}
        line = self.line + inner - 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return {"file": self.file, "line": line, "source": text}


MAX_INCLUDE_DEPTH = 8
_JINJA_BREAK = re.compile(r"\r\n|\r|\n")


def jinja_lines(source: str) -> tuple[str, ...]:
    """A template's lines as Jinja numbers them (not str.splitlines, which also breaks at
    form feeds and Unicode separators)."""
    return tuple(_JINJA_BREAK.split(source))


def undeclared_names(env: jinja2.Environment, source: str, place: Place) -> frozenset[str]:
    """The context names `source` reads, those of the templates it includes too: a template
    that reads `pod` or `secret` through an include must count as reading them (the memo, the
    render cache and the validation of request fields depend on it)."""
    try:
        tree = env.parse(source)
        names = set(meta.find_undeclared_variables(tree))
    except jinja2.TemplateSyntaxError as exc:
        # exc.lineno counts inside `source`, which starts at place.line
        raise LoadError(f"Jinja syntax error: {exc.message}", **place.where(exc.lineno or 1)) from None
    for filename, included in included_trees(env, tree, place):
        try:
            names |= meta.find_undeclared_variables(included)
        except jinja2.TemplateSyntaxError as exc:
            raise LoadError(f"Jinja syntax error: {exc.message}", file=filename, line=exc.lineno) from None
    return frozenset(names)


def included_trees(
    env: jinja2.Environment, tree: nodes.Template, place: Place, depth: int = 0
) -> list[tuple[str, nodes.Template]]:
    """The templates `tree` includes (file name and parsed tree), and those they include. An
    include must name its template as a constant string, so that the loader can tell what
    it reads."""
    found: list[tuple[str, nodes.Template]] = []
    for node in tree.find_all(nodes.Include):
        name = node.template.value if isinstance(node.template, nodes.Const) else None
        if not isinstance(name, str):
            raise LoadError("include a template by its name, a constant string", **place.where(node.lineno))
        if depth >= MAX_INCLUDE_DEPTH:
            raise LoadError(
                f"templates include each other more than {MAX_INCLUDE_DEPTH} deep", **place.where()
            )
        filename, included = _parsed(env, name)
        found += [(filename, included), *included_trees(env, included, place, depth + 1)]
    return found


def parsed(env: jinja2.Environment, name: str) -> nodes.Template:
    """The template called `name`, parsed."""
    return _parsed(env, name)[1]


def _parsed(env: jinja2.Environment, name: str) -> tuple[str, nodes.Template]:
    source, filename = template_source(env, name)
    try:
        return filename, env.parse(source, name, filename)
    except jinja2.TemplateSyntaxError as exc:
        raise LoadError(f"Jinja syntax error: {exc.message}", file=filename, line=exc.lineno) from None


def template_source(env: jinja2.Environment, name: str) -> tuple[str, str]:
    if env.loader is None:  # pragma: no cover - make_environment always sets one
        raise LoadError(f"no template loader for {name}")
    try:
        source, filename, _ = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        raise LoadError(f"template {name!r} not found in {_search_path(env)}") from None
    return source, filename or name


def _search_path(env: jinja2.Environment) -> str:
    loader = env.loader
    if isinstance(loader, jinja2.FileSystemLoader):
        return ", ".join(str(p) for p in loader.searchpath)
    return "the template folders"  # pragma: no cover


class TextTemplate:
    """A text template rendered per secret (the gcloud shell line)."""

    def __init__(self, env: jinja2.Environment, name: str) -> None:
        source, filename = template_source(env, name)
        self.name = name
        self.file = filename
        self.lines = jinja_lines(source)
        names = undeclared_names(env, source, Place(filename, 1, self.lines))
        self.names = names
        self.env = env
        self.tree = env.parse(source)
        # The template compiled over the rule's values (compiled.py), set by the rule's
        # loader and tried first; None renders in Jinja alone.
        self.fast: Callable[[Mapping[str, Any]], Any] | None = None
        unknown = sorted(names - SEEN_BY["secret"] - set(env.globals))
        if unknown:
            raise LoadError(
                f"unknown name {unknown[0]!r}; text templates see: {', '.join(sorted(SEEN_BY['secret']))}",
                **self._place(_first_line_naming(env, source, unknown[0])).where(),
            )
        try:
            self.template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - _undeclared parsed it
            raise LoadError(exc.message or "syntax error", **self._place(exc.lineno).where()) from None

    def secret_reads(self, values: Mapping[str, Any]) -> frozenset[str] | None:
        """The fields of `secret` this template may read with these values (None: any)."""
        return reads(self.tree, "secret", values, lambda name: parsed(self.env, name))

    def render(self, context: Mapping[str, Any]) -> str:
        fast = self.fast
        if fast is not None:
            try:
                return str(fast(context))
            except Fallback:
                pass  # Jinja renders it, and fails its own way if it fails
        try:
            return self.template.render(context)
        except jinja2.TemplateError as exc:
            line = _template_error_line(exc, self.file)
            raise RenderError(exc.message or str(exc), **self._place(line).where()) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            line = _traceback_line(exc, self.file)
            raise RenderError(str(exc), **self._place(line).where()) from None

    def _place(self, line: int | None) -> Place:
        return Place(self.file, line, self.lines)


def _first_line_naming(env: jinja2.Environment, source: str, name: str) -> int | None:
    for node in env.parse(source).find_all(nodes.Name):
        if node.name == name:
            return node.lineno
    return None  # pragma: no cover


def _template_error_line(exc: jinja2.TemplateError, file: str) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    return _traceback_line(exc, file)


def _traceback_line(exc: BaseException, file: str) -> int | None:
    """The template line where `exc` was raised: Jinja rewrites tracebacks so that template
    frames carry the template's file name and line."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
