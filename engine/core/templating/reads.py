"""What a template reads of an object, decided at load: which fields of `secret` can reach
its output once `values` (fixed at load) are known.

A rule validates only the request fields its templates read: a field that no template reads
cannot reach a shell, a path or a pod, so a value Flyte injects there (`key: "a/b"`) is not
refused. The analysis must never miss a read, so it is conservative: it skips only a branch
that `values` alone rule out (`{% if values.keyFiles and secret.key %}` with keyFiles off),
and it gives up, answering "the whole object", on anything it cannot follow: the object used
other than through a constant attribute, a name rebound, another template imported or
extended. A template included by name is read as if it stood there (it renders with the same
context). A block is read wherever it stands, since `self.<block>()` renders it from anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

# Statements that bring in another template, whose reads this walk does not see (an include
# by name, it follows).
_ELSEWHERE = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
Loader = Callable[[str], nodes.Template]


class _Unknown:
    """An expression whose value depends on more than `values`."""


UNKNOWN = _Unknown()
# A `values` key the rule does not have: an error when rendered, unless `| default(...)` says.
MISSING = _Unknown()


class _Walk:
    def __init__(self, name: str, values: Mapping[str, Any], load: Loader | None) -> None:
        self.name = name
        self.values = values
        self.load = load
        self.including: list[str] = []
        self.attributes: set[str] = set()
        self.whole = False

    def node(self, node: nodes.Node) -> None:
        if self.whole:
            return
        if isinstance(node, nodes.Include) and self.load is not None and node.with_context:
            self.include(node)
        elif isinstance(node, _ELSEWHERE):
            self.whole = True
        elif isinstance(node, nodes.Name):
            if node.name == self.name:
                self.whole = True  # the object itself: passed on, printed, iterated
        elif isinstance(node, nodes.Getattr | nodes.Getitem) and _is_name(node.node, self.name):
            attribute = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
            if isinstance(attribute, str):
                self.attributes.add(attribute)
            else:
                self.whole = True
        elif isinstance(node, nodes.If):
            self.branches(node.test, node.body, list(node.elif_), node.else_)
        elif isinstance(node, nodes.CondExpr):
            self.branches(node.test, [node.expr1], [], [node.expr2] if node.expr2 is not None else [])
        elif isinstance(node, nodes.And | nodes.Or):
            self.node(node.left)
            left = self.value(node.left)
            decided = not isinstance(left, _Unknown) and (bool(left) is isinstance(node, nodes.Or))
            if not decided:  # the right side runs unless the left one settles the answer
                self.node(node.right)
        else:
            for child in node.iter_child_nodes():
                self.node(child)

    def include(self, node: nodes.Include) -> None:
        """The included template walked where it stands: it renders with the same context."""
        name = node.template.value if isinstance(node.template, nodes.Const) else None
        if not isinstance(name, str) or name in self.including or self.load is None:
            self.whole = True  # a name computed at render time, or a cycle
            return
        tree = self.load(name)
        if _rebinds(tree, self.name):
            self.whole = True
            return
        self.including.append(name)
        self.node(tree)
        for block in tree.find_all(nodes.Block):
            for child in block.body:
                self.node(child)
        self.including.pop()

    def branches(
        self, test: nodes.Node, body: list[nodes.Node], elifs: list[nodes.If], orelse: list[nodes.Node]
    ) -> None:
        """An `if` (or `a if t else b`): a branch `values` rule out is not walked."""
        self.node(test)
        verdict = self.value(test)
        unknown = isinstance(verdict, _Unknown)
        if unknown or verdict:
            for child in body:
                self.node(child)
        if unknown or not verdict:
            if elifs:
                self.branches(elifs[0].test, elifs[0].body, elifs[1:], orelse)
            else:
                for child in orelse:
                    self.node(child)

    def value(self, node: nodes.Node) -> Any:
        """The value of an expression made of constants, `values.x.y` (with `| default(c)` for
        a value a rule may lack), ==, !=, not, and, or; UNKNOWN for anything else."""
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.Filter) and node.name in ("default", "d") and node.node is not None:
            given = self.value(node.node)
            if given is MISSING and len(node.args) == 1 and not node.kwargs:
                return self.value(node.args[0])
            return UNKNOWN if given is MISSING else given
        if isinstance(node, nodes.Not):
            inner = self.value(node.node)
            return UNKNOWN if isinstance(inner, _Unknown) else not inner
        if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in ("eq", "ne"):
            left, right = self.value(node.expr), self.value(node.ops[0].expr)
            if isinstance(left, _Unknown) or isinstance(right, _Unknown):
                return UNKNOWN
            return (left == right) is (node.ops[0].op == "eq")
        if isinstance(node, nodes.And | nodes.Or):
            left = self.value(node.left)
            if isinstance(left, _Unknown):
                return UNKNOWN
            if bool(left) is isinstance(node, nodes.Or):
                return left
            right = self.value(node.right)
            return UNKNOWN if right is MISSING else right
        path: list[str] = []
        while isinstance(node, nodes.Getattr):
            path.append(node.attr)
            node = node.node
        if not path or not _is_name(node, "values"):
            return UNKNOWN
        found: Any = self.values
        for key in reversed(path):
            # Jinja's getattr finds a method first: `values.keys` is dict.keys, not the item.
            if not isinstance(found, Mapping) or hasattr(found, key):
                return UNKNOWN
            if key not in found:
                return MISSING
            found = found[key]
        return found


def reads(
    tree: nodes.Template, name: str, values: Mapping[str, Any], load: Loader | None = None
) -> frozenset[str] | None:
    """The attributes of `name` that rendering `tree` may read, knowing `values`; None when
    it may read the whole object (or the analysis cannot tell). `load` parses a template by
    name, so that an include is followed; without it, an include reads the whole object."""
    if _rebinds(tree, name):
        return None
    walk = _Walk(name, values, load)
    walk.node(tree)
    # A block is defined whatever branch it sits in, and `self.<block>()` renders it anywhere.
    for block in tree.find_all(nodes.Block):
        for child in block.body:
            walk.node(child)
    return None if walk.whole else frozenset(walk.attributes)


def _rebinds(tree: nodes.Template, name: str) -> bool:
    return any(
        node.name in (name, "values") and node.ctx in ("store", "param") for node in tree.find_all(nodes.Name)
    )


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name and node.ctx == "load"


def _constant(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None
