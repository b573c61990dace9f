"""Jinja for secretpatch: the sandboxed environment, its filters, and text templates.

Everything renders in Jinja's immutable sandbox with StrictUndefined: a template cannot
mutate what it is given, and a misspelt name is an error, never an empty string. Fragment
templates (YAML with Jinja in values) are compiled in fragments.py.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import LoadError, RenderError

# Names a template may read. `values` is fixed at load time; the others change per secret.
PER_SECRET_NAMES = frozenset({"secret", "index", "texts", "pod"})
CONTEXT_NAMES = PER_SECRET_NAMES | {"values"}


def shquote(value: object) -> str:
    """One shell word. Leaves a word of safe characters as it is, so Flyte's lines are kept."""
    if not isinstance(value, str | int):
        raise TypeError(f"shquote expects a string, got {type(value).__name__}")
    return shlex.quote(str(value))


def path_join(base: object, *parts: object) -> str:
    """Go's filepath.Join (join, then clean), refusing a result outside `base`."""
    if not isinstance(base, str) or not all(isinstance(p, str) for p in parts):
        raise TypeError("path_join expects strings")
    joined = "/".join(p for p in (base, *parts) if p)  # type: ignore[misc]
    cleaned = posixpath.normpath(joined) if joined else ""
    root = posixpath.normpath(base) if base else ""
    if root and cleaned != root and not cleaned.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"path {cleaned!r} is outside {root!r}")
    return cleaned


def make_environment(search_path: list[Path]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["shquote"] = shquote
    env.filters["path_join"] = path_join
    return env


@dataclass(frozen=True)
class Place:
    """Where an expression is: its file, its line, and that line's text (for errors)."""

    file: str
    line: int | None
    text: str | None = None

    def where(self) -> dict[str, Any]:
        """The keyword arguments of a LocatedError raised here."""
        return {"file": self.file, "line": self.line, "source": self.text}


def line_of(source: str, line: int | None) -> str | None:
    """The text of a 1-based line of `source`, or None."""
    lines = source.splitlines()
    return lines[line - 1] if line is not None and 0 < line <= len(lines) else None


def undeclared_names(env: jinja2.Environment, source: str, place: Place) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(env.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        inner = exc.lineno or 1  # the line inside `source`, which starts at place.line
        text = place.text if inner == 1 and place.text is not None else line_of(source, inner)
        raise LoadError(
            f"Jinja syntax error: {exc.message}",
            file=place.file,
            line=(place.line or 1) + inner - 1,
            source=text,
        ) from None


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
        self.source = source
        names = undeclared_names(env, source, Place(filename, 1))
        self.names = names
        unknown = sorted(names - CONTEXT_NAMES - set(env.globals))
        if unknown:
            raise LoadError(
                f"unknown name {unknown[0]!r}; templates see: {', '.join(sorted(CONTEXT_NAMES))}",
                file=filename,
                line=(line := _first_line_naming(env, source, unknown[0])),
                source=line_of(source, line),
            )
        try:
            self.template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - _undeclared parsed it
            raise LoadError(
                exc.message or "syntax error",
                file=filename,
                line=exc.lineno,
                source=line_of(source, exc.lineno),
            ) from None

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except jinja2.TemplateError as exc:
            line = _template_error_line(exc, self.file)
            raise RenderError(exc.message or str(exc), **self._place(line).where()) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            line = _traceback_line(exc, self.file)
            raise RenderError(
                str(exc), file=self.file, line=line, source=line_of(self.source, line)
            ) from None

    def _place(self, line: int | None) -> Place:
        return Place(self.file, line, line_of(self.source, line))


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
