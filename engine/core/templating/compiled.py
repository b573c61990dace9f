"""Templates partially evaluated over `values` and compiled into plain Python functions.

A rule renders its texts and fragments for every secret never seen before, and Jinja's
machinery (a context per render, the sandbox's checks on every lookup, call and filter) costs
several times what the template itself computes. Since `values` are fixed once a rule is
loaded, most of a template is known then: the branches `values` rule out, and every
expression over `values` alone. This module evaluates those parts at load, with Jinja itself
(so they are what Jinja computes), and turns what is left into one Python function.

It takes a small part of Jinja on purpose: output, `if`, `set` of a name, `with`, constants,
names, attribute and item lookups, filters and tests that take no context, `~`, `and`,
`or`, `not`, comparisons, `a if b else c`, list, tuple and dict literals, and calls of str
methods. A template with anything else is not compiled and renders in Jinja, as before.

What a template may reach does not change. Every lookup goes through the sandbox's own
`getattr` and `getitem`; a call is made only when it is a method of a str other than
`format` (what the sandbox allows without a check); filters and tests are the environment's.
Whenever the compiled function meets something it does not expect (an undefined value, a
call of anything else, an exception of any kind), it gives up with `Fallback`, and the
caller renders the template in Jinja, which then answers or fails exactly as it always did.
So the compiled function either returns what Jinja returns or steps aside; the differential
tests (tests/test_compiled.py) hold it to that on every golden case and on generated
requests and expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import BuiltinMethodType
from typing import Any, cast

import jinja2
import jinja2.filters
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.nodes import EvalContext
from jinja2.runtime import new_context
from jinja2.utils import _PassArg

from ..jsontypes import copy_json, is_json_data
from ..requests import SecretRequest
from .jinja import REQUEST_ATTRIBUTES, STR_CALLS, Fallback

# The names a render's context may hold (jinja.CONTEXT_NAMES without `values`, which is
# folded in at load).
_CONTEXT = ("secret", "index", "texts", "pod", "secrets")
_COMPARE = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}
_UNKNOWN = object()  # not known at load
# Filters whose answer changes from render to render: never computed at load.
_IMPURE = frozenset({"random"})
# Jinja's filters that take the context and use it only for its environment.
_CONTEXT_FILTERS = frozenset({"select", "reject", "selectattr", "rejectattr"})


class Unsupported(Exception):
    """A template this module does not compile (it renders in Jinja)."""


Compiled = Callable[[Mapping[str, Any]], Any]


class _Namespace:
    """What a generated function's source refers to by name: every value it uses (a
    template's constants, filters, values from `values`) is a name here, never text in the
    source."""

    def __init__(self, **fixed: Any) -> None:
        self.values: dict[str, Any] = dict(fixed)
        self._names: dict[int, str] = {}  # by id: each value is kept alive in `values`

    def name(self, value: Any) -> str:
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"_k{len(self._names)}"
            self.values[name] = value
        return name

    def define(self, source: str, function: str) -> Compiled:
        """The function `function` that `source` defines, with these names."""
        namespace = dict(self.values)
        exec(compile(source, "<secretpatch compiled template>", "exec"), namespace)  # noqa: S102
        defined: Compiled = namespace[function]
        return defined


def compile_template(
    env: jinja2.Environment, tree: nodes.Template, values: Mapping[str, Any]
) -> Compiled | None:
    """`tree` as a function of a render's context returning the text Jinja renders, or None
    when the template uses what this module does not compile."""
    try:
        generator = _Generator(env, values)
        generator.statements(tree.body)
        return generator.function(text=True)
    except Exception:  # Unsupported, nested too deep, or anything else: Jinja renders it
        return None


def compile_expression(
    env: jinja2.Environment, expression: nodes.Expr, values: Mapping[str, Any]
) -> tuple[Compiled, bool] | None:
    """One expression as a function of a render's context returning its value (a fragment's
    `"{{ ... }}"` value), and whether that value is always a str; None when this module does
    not compile it."""
    try:
        generator = _Generator(env, values)
        generator.result, kind = generator.typed(expression)
        return generator.function(text=False), kind == "str"
    except Exception:  # as compile_template
        return None


def compile_tree(
    tree: Any, shared: type, dynamic: type, leaf: Callable[[Any], tuple[Compiled, bool] | None]
) -> Compiled | None:
    """A fragment's tree (see fragments.py: dicts, lists, `shared` subtrees handed out as
    they are, `dynamic` leaves computed per render, and other values as they are) as one
    function building it. `leaf` gives a dynamic leaf's compiled function and whether it
    always yields a str; a leaf that may yield anything else is checked to be JSON data and
    copied, as fragments.py does. None when a leaf is not compiled."""
    names = _Namespace(_json=_json_copy)
    constant = names.name

    def build(node: Any) -> str:
        if type(node) is shared:
            return constant(node.value)  # type: ignore[attr-defined]
        if isinstance(node, dict):
            return "{" + "".join(f"{constant(k)}: {build(v)}, " for k, v in node.items()) + "}"
        if isinstance(node, list):
            return "[" + "".join(f"{build(v)}, " for v in node) + "]"
        if not isinstance(node, dynamic):
            return constant(node)
        compiled = leaf(node)
        if compiled is None:
            raise Unsupported("a leaf")
        function, text = compiled
        call = f"{constant(function)}(_ctx)"
        return call if text else f"_json({call})"

    try:
        return names.define(f"def _build(_ctx):\n    return {build(tree)}\n", "_build")
    except (Unsupported, RecursionError, SyntaxError):  # the last two: nested too deep
        return None


class _Generator:
    """Writes the Python source of one function; constants go into its namespace, never
    into the source. Each expression is compiled to its code and what is known of its type
    ("str", "list", or "" for anything), so that a str is not converted again."""

    def __init__(self, env: jinja2.Environment, values: Mapping[str, Any]) -> None:
        self.env = env
        self.values = values
        self.lines: list[str] = []
        self.depth = 0
        self.names = _Namespace(
            _Fallback=Fallback,
            _SecretRequest=SecretRequest,
            _attr=_lookup(env.getattr),
            _item=_lookup(env.getitem),
            _call=_call_str_method,
            _defined=_defined,
            _set=_is_set,
            _raise=_raise_fallback,
        )
        # Filters that return a str whatever they are given (or raise): their result needs
        # no check for undefined and no conversion.
        self.str_filters = {
            id(env.filters[name])
            for name in ("shquote", "path_join", "lower", "upper", "replace", "trim", "string", "join")
            if name in env.filters
        }
        self.used: set[str] = set()  # context names read
        # Jinja's names in scope, innermost frame last (the template, then each `with`):
        # each maps to its Python variable, its value when `values` decide it on every path
        # (else _UNKNOWN), and its type.
        self.scopes: list[dict[str, tuple[str, Any, str]]] = [{}]
        # Names a frame read from an outer frame: one it then sets is refused (Jinja's
        # scoping of such a name is not followed here).
        self.read_outside: list[set[str]] = [set()]
        self.maybe_unset: set[str] = set()  # variables set on some paths only
        self.variables = 0
        self.branch = 0  # how many runtime branches the current statement is inside
        self.result = ""

    # ---- the function ------------------------------------------------------------------

    def function(self, *, text: bool) -> Compiled:
        head = [f"_{name} = _ctx['{name}']" for name in _CONTEXT if name in self.used]
        if "secret" in self.used:
            head.append("if type(_secret) is not _SecretRequest: raise _Fallback")
        if self.maybe_unset:
            head.append(" = ".join(sorted(self.maybe_unset)) + " = _Fallback")
        if text:
            body = [*head, "_o = []", *self.lines, "return ''.join(_o)"]
        else:
            body = [*head, *self.lines, f"return {self.result}"]
        source = "\n".join(
            [
                "def _render(_ctx):",
                "    try:",
                *(f"        {line}" for line in body),
                "    except Exception:",
                "        raise _Fallback from None",
            ]
        )
        return self.names.define(source, "_render")

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def constant(self, value: Any) -> str:
        return self.names.name(value)

    # ---- statements --------------------------------------------------------------------

    def statements(self, body: list[nodes.Node]) -> None:
        for node in body:
            self.statement(node)

    def statement(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Output):
            parts = [
                self.constant(child.data) if isinstance(child, nodes.TemplateData) else self.text(child)
                for child in node.nodes
            ]
            if parts:
                self.emit(f"_o.extend(({', '.join(parts)},))")
        elif isinstance(node, nodes.If):
            self.conditional(node.test, node.body, list(node.elif_), node.else_)
        elif isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            self.assign(node.target.name, node.node, self.scopes[-1])
        elif isinstance(node, nodes.With):
            self.with_block(node)
        else:
            raise Unsupported(type(node).__name__)

    def conditional(
        self, test: nodes.Node, body: list[nodes.Node], elifs: list[nodes.If], orelse: list[nodes.Node]
    ) -> None:
        verdict = self.decided(test)
        if verdict is not _UNKNOWN:  # `values` decide it: only the branch taken is compiled
            if verdict:
                self.statements(body)
            elif elifs:
                self.conditional(elifs[0].test, elifs[0].body, elifs[1:], orelse)
            else:
                self.statements(orelse)
            return
        self.emit(f"if {self.expression(test)}:")
        self.branch += 1
        self.block(lambda: self.statements(body))
        if elifs or orelse:
            self.emit("else:")
            if elifs:
                self.block(lambda: self.conditional(elifs[0].test, elifs[0].body, elifs[1:], orelse))
            else:
                self.block(lambda: self.statements(orelse))
        self.branch -= 1

    def block(self, write: Callable[[], None]) -> None:
        self.depth += 1
        start = len(self.lines)
        write()
        if len(self.lines) == start:
            self.emit("pass")
        self.depth -= 1

    def assign(self, name: str, value: nodes.Node, scope: dict[str, tuple[str, Any, str]]) -> None:
        if name in _CONTEXT or name == "values" or name in self.read_outside[-1]:
            raise Unsupported(f"{name} rebound")
        known = self.known(value)
        if known is _UNKNOWN:
            code, kind = self.typed(value)
        else:
            code, kind = self.constant(known), _kind(known)
        entry = scope.get(name)
        if entry is None:
            variable = f"v{self.variables}"
            self.variables += 1
            if self.branch:
                self.maybe_unset.add(variable)
        else:
            variable = entry[0]
            kind = kind if kind == entry[2] else ""
        self.emit(f"{variable} = {code}")
        # Folded where used only when set to a known value on every path so far.
        scope[name] = (variable, known if self.branch == 0 else _UNKNOWN, kind)

    def with_block(self, node: nodes.With) -> None:
        inner: dict[str, tuple[str, Any, str]] = {}
        for target, value in zip(node.targets, node.values, strict=True):
            if not isinstance(target, nodes.Name):
                raise Unsupported("with target")
            self.assign(target.name, value, inner)  # computed in the outer frame
        self.scopes.append(inner)
        self.read_outside.append(set())
        self.statements(node.body)
        self.read_outside.pop()
        self.scopes.pop()

    # ---- what load time knows ----------------------------------------------------------

    def lookup(self, name: str) -> tuple[str, Any, str] | None:
        for depth in range(len(self.scopes) - 1, -1, -1):
            if name in self.scopes[depth]:
                if depth < len(self.scopes) - 1:
                    self.read_outside[-1].add(name)
                return self.scopes[depth][name]
        return None

    def known(self, node: nodes.Node) -> Any:
        """The expression's value if `values` and constants alone decide it (computed by
        Jinja, as a render would), else _UNKNOWN."""
        if isinstance(node, nodes.Const):
            return node.value
        names = {n.name for n in node.find_all(nodes.Name)}
        if isinstance(node, nodes.Name):
            names.add(node.name)
        context: dict[str, Any] = {"values": self.values}
        for name in names:
            entry = self.lookup(name)
            if entry is not None:
                if entry[1] is _UNKNOWN:
                    return _UNKNOWN
                context[name] = entry[1]
            elif name != "values":
                return _UNKNOWN
        if any(f.name in _IMPURE for f in node.find_all(nodes.Filter)) or (
            isinstance(node, nodes.Filter) and node.name in _IMPURE
        ):
            return _UNKNOWN  # another answer at every render
        try:
            template = self.env.from_string(
                nodes.Template([nodes.Assign(nodes.Name("result", "store"), node)], lineno=1)
            )
            value = TemplateExpression(template, undefined_to_none=False)(**context)
        except Exception:
            raise Unsupported("a constant part fails") from None
        if isinstance(value, jinja2.Undefined):
            raise Unsupported("a constant part is undefined")
        # Only JSON data (strings, numbers, lists, mappings) is shared between renders: an
        # iterator (`reverse`, `unique`) is made afresh by every render, since the first use
        # would consume a shared one.
        return value if is_json_data(value) else _UNKNOWN

    def decided(self, node: nodes.Node) -> Any:
        """The truth of a condition where `values` settle it, though it names more
        (`values.keyFiles and secret.key` with keyFiles off); _UNKNOWN otherwise."""
        known = self.known(node)
        if known is not _UNKNOWN:
            return bool(known)
        if isinstance(node, nodes.And | nodes.Or):
            left = self.decided(node.left)
            if left is not _UNKNOWN and left is isinstance(node, nodes.Or):
                return left
            if left is not _UNKNOWN:
                return self.decided(node.right)
        if isinstance(node, nodes.Not):
            inner = self.decided(node.node)
            return inner if inner is _UNKNOWN else not inner
        return _UNKNOWN

    # ---- expressions -------------------------------------------------------------------

    def text(self, node: nodes.Node) -> str:
        known = self.known(node)
        if known is not _UNKNOWN:
            try:
                return self.constant(str(known))
            except Exception:  # an int too long to print, say: Jinja fails it at render
                raise Unsupported("a constant part cannot be printed") from None
        code, kind = self.typed(node)
        return code if kind == "str" else f"str({code})"

    def expression(self, node: nodes.Node) -> str:
        return self.typed(node)[0]

    def string(self, node: nodes.Node) -> str:
        code, kind = self.typed(node)
        return code if kind == "str" else f"str({code})"

    def typed(self, node: nodes.Node) -> tuple[str, str]:
        known = self.known(node)
        if known is not _UNKNOWN:
            return self.constant(known), _kind(known)
        if isinstance(node, nodes.Name) and node.ctx == "load":
            return self.name(node.name)
        if isinstance(node, nodes.Getattr) and node.ctx == "load":
            if (
                isinstance(node.node, nodes.Name)
                and node.node.name == "secret"
                and self.lookup("secret") is None
                and node.attr in REQUEST_ATTRIBUTES
            ):
                self.used.add("secret")  # a field of a request: a plain string
                return f"_secret.{node.attr}", "str"
            return f"_attr({self.expression(node.node)}, {self.constant(node.attr)})", ""
        if isinstance(node, nodes.Getitem) and node.ctx == "load" and not isinstance(node.arg, nodes.Slice):
            obj, kind = self.typed(node.node)
            index, index_kind = self.typed(node.arg)
            if kind == "list" and index_kind == "int":  # what the sandbox does for these
                return f"{obj}[{index}]", ""
            return f"_item({obj}, {index})", ""
        if isinstance(node, nodes.Filter | nodes.Test):
            return self.filter_or_test(node)
        if isinstance(node, nodes.Concat):
            return "".join(["''.join((", *(f"{self.string(n)}, " for n in node.nodes), "))"]), "str"
        if isinstance(node, nodes.And | nodes.Or):
            left = self.decided(node.left)
            if left is not _UNKNOWN:  # `values` settle which side is the answer
                if left is isinstance(node, nodes.Or):
                    return self.typed(node.left)
                return self.typed(node.right)
            operator = "and" if isinstance(node, nodes.And) else "or"
            (a, a_kind), (b, b_kind) = self.typed(node.left), self.typed(node.right)
            return f"({a} {operator} {b})", a_kind if a_kind == b_kind else ""
        if isinstance(node, nodes.Not):
            return f"(not {self.expression(node.node)})", ""
        if isinstance(node, nodes.Compare):
            parts = [self.expression(node.expr)]
            for operand in node.ops:
                if operand.op not in _COMPARE:
                    raise Unsupported(operand.op)
                parts += [_COMPARE[operand.op], self.expression(operand.expr)]
            return f"({' '.join(parts)})", ""
        if isinstance(node, nodes.CondExpr):
            test = self.decided(node.test)
            if test is not _UNKNOWN:
                if test:
                    return self.typed(node.expr1)
                if node.expr2 is None:
                    raise Unsupported("an undefined branch")
                return self.typed(node.expr2)
            (a, a_kind), (b, b_kind) = (
                self.typed(node.expr1),
                ("_raise()", "") if node.expr2 is None else self.typed(node.expr2),
            )
            return f"({a} if {self.expression(node.test)} else {b})", a_kind if a_kind == b_kind else ""
        if isinstance(node, nodes.List):
            return "[" + "".join(f"{self.expression(n)}, " for n in node.items) + "]", "list"
        if isinstance(node, nodes.Tuple) and node.ctx == "load":
            return "(" + "".join(f"{self.expression(n)}, " for n in node.items) + ")", "list"
        if isinstance(node, nodes.Dict):
            pairs = (f"{self.expression(p.key)}: {self.expression(p.value)}, " for p in node.items)
            return "{" + "".join(pairs) + "}", ""
        if isinstance(node, nodes.Call):
            return self.call(node)
        raise Unsupported(type(node).__name__)

    def call(self, node: nodes.Call) -> tuple[str, str]:
        if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise Unsupported("a call with keywords")
        arguments = "".join(f", {self.expression(a)}" for a in node.args)
        if isinstance(node.node, nodes.Getattr) and node.node.attr in STR_CALLS:
            receiver, kind = self.typed(node.node.node)
            if kind == "str":  # a str method, as the sandbox calls it without a check
                result = "list" if node.node.attr in ("split", "rsplit", "splitlines") else ""
                return f"{receiver}.{node.node.attr}({arguments[2:]})", result
        return f"_call({self.expression(node.node)}{arguments})", ""

    def name(self, name: str) -> tuple[str, str]:
        entry = self.lookup(name)
        if entry is not None:
            variable, _, kind = entry
            return (f"_set({variable})" if variable in self.maybe_unset else variable), kind
        if name in _CONTEXT:
            self.used.add(name)
            return f"_{name}", ""
        raise Unsupported(f"the name {name}")

    def filter_or_test(self, node: nodes.Filter | nodes.Test) -> tuple[str, str]:
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
            raise Unsupported("filter arguments")
        table = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
        function = table.get(node.name)
        if function is None:
            raise Unsupported(f"no filter or test {node.name}")
        passed = _PassArg.from_obj(cast(Callable[..., Any], function))
        first = ""
        if passed is _PassArg.context:
            # Jinja's own filters that take the context only to reach the environment's
            # tests and filters: given a context of no names. Any other may read names.
            if node.name not in _CONTEXT_FILTERS or function is not jinja2.filters.FILTERS.get(node.name):
                raise Unsupported("a filter that takes the context")
            first = f"{self.constant(new_context(self.env, None, {}, shared=True))}, "
        elif passed is _PassArg.eval_context:
            first = f"{self.constant(EvalContext(self.env))}, "
        elif passed is _PassArg.environment:
            first = f"{self.constant(self.env)}, "
        arguments = "".join(f", {self.expression(a)}" for a in node.args)
        arguments += "".join(f", {k.key}={self.expression(k.value)}" for k in node.kwargs)
        call = f"{self.constant(function)}({first}{self.expression(node.node)}{arguments})"
        if isinstance(node, nodes.Filter) and id(function) in self.str_filters:
            return call, "str"
        if function is len:
            return call, "int"
        return f"_defined({call})", ""


def _kind(value: Any) -> str:
    kind = type(value)
    return "str" if kind is str else "list" if kind in (list, tuple) else "int" if kind is int else ""


def _lookup(lookup: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The sandbox's attribute or item lookup, stepping aside where it finds nothing."""
    undefined = jinja2.Undefined

    def find(obj: Any, name: Any) -> Any:
        value = lookup(obj, name)
        if isinstance(value, undefined):
            raise Fallback
        return value

    return find


def _call_str_method(function: Any, *args: Any) -> Any:
    """A call the sandbox makes without a check: a str method other than format."""
    if (
        type(function) is BuiltinMethodType
        and type(function.__self__) is str
        and function.__name__ in STR_CALLS
    ):
        return function(*args)
    raise Fallback


def _json_copy(value: Any) -> Any:
    """What fragments.py makes of a leaf's value: a copy of JSON data; anything else steps
    aside, and the fragment renders in Jinja, which refuses it."""
    if not is_json_data(value):
        raise Fallback
    return copy_json(value)


def _defined(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise Fallback
    return value


def _is_set(value: Any) -> Any:
    if value is Fallback:  # a name set on another path only: Jinja says what it is
        raise Fallback
    return value


def _raise_fallback() -> Any:
    raise Fallback
