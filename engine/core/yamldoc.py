"""YAML files that remember where each value came from.

Rules, templates and configuration are written by people; an error about them must name the
file and line. PyYAML keeps positions only on its node graph, so this module walks the nodes
once at load time and records the line of every key and item.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import LoadError, printable

Path_ = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def yaml_lines(text: str) -> tuple[str, ...]:
    """A document's lines as PyYAML numbers them (it breaks lines at NEL and the Unicode
    line and paragraph separators too)."""
    return tuple(_YAML_BREAK.split(text))


def load_plain(text: str) -> Any:
    """Plain YAML (or JSON) data, with PyYAML's safe loader (its C version when available)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader


@dataclass
class Doc:
    """A parsed YAML document and the 1-based line of each path inside it."""

    data: Any
    file: str
    lines: dict[Path_, int] = field(default_factory=dict)
    text: tuple[str, ...] = ()  # the document's lines, for errors to show

    def source(self, line: int | None) -> str | None:
        return self.text[line - 1] if line is not None and 0 < line <= len(self.text) else None

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def located(self, message: str, line: int) -> LoadError:
        return LoadError(message, file=self.file, line=line, source=self.source(line))

    def error(self, path: Path_, message: str) -> LoadError:
        line = self.line(path)
        return LoadError(message, file=self.file, line=line, source=self.source(line))


ScalarHook = Callable[[yaml.ScalarNode, Any, int], Any]


def load(text: str, file: str, scalar_hook: ScalarHook | None = None) -> Doc:
    """Parse one YAML document; duplicate keys and non-string keys are errors.

    `scalar_hook(node, value, line)` may replace a scalar's value (templates use it to compile
    Jinja expressions in place, keeping their line).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = Doc(None, file, text=yaml_lines(text))
        if node is not None:
            doc.data = _walk(loader, node, (), doc, scalar_hook)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        source = Doc(None, file, text=yaml_lines(text)).source(line)
        raise LoadError(f"invalid YAML: {problem}", file=file, line=line, source=source) from None
    except yaml.YAMLError as exc:  # the reader's: a character YAML does not allow, at a position
        position = getattr(exc, "position", None)
        line = None if position is None else len(yaml_lines(text[:position]))
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        source = Doc(None, file, text=yaml_lines(text)).source(line)
        raise LoadError(f"invalid YAML: {printable(problem)}", file=file, line=line, source=source) from None
    finally:
        loader.dispose()


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Doc, hook: ScalarHook | None) -> Any:
    line = node.start_mark.line + 1
    doc.lines[path] = line
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise doc.located(f"key {key!r} is not a string", key_line)
            if key in result:
                raise doc.located(f"duplicate key {key!r}", key_line)
            result[key] = _walk(loader, value_node, (*path, key), doc, hook)
            doc.lines[(*path, key)] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), doc, hook) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if hook is not None and isinstance(node, yaml.ScalarNode):
        return hook(node, value, line)
    return value
