"""Templates compiled over `values` (templating/compiled.py) answer as Jinja does, or step aside.

A compiled function may return a value only when Jinja, rendering the same template with
the same context, returns that value; otherwise it must raise Fallback (the engine then
renders in Jinja). These tests compare the two on expressions and statements of every kind
the compiler takes or refuses, and on the shipped rule's templates, under every switch of
its values, for generated requests.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secretpatch.core.config import load_config
from secretpatch.core.requests import SecretRequest
from secretpatch.core.rules.select import load_rules
from secretpatch.core.templating.compiled import compile_expression, compile_template
from secretpatch.core.templating.fragments import _render_tree
from secretpatch.core.templating.jinja import Fallback, make_environment

ROOT = Path(__file__).resolve().parent.parent
ENV = make_environment([ROOT / "templates"])
VALUES: dict[str, Any] = {
    "mountPath": "/etc/flyte/secrets",
    "on": True,
    "off": False,
    "prefix": "gcp-pull-secret-",
    "n": [1, 2],
    "items": "a key named like a method",
    "nested": {"a": {"b": "deep"}},
    "empty": "",
}
SECRETS = [
    SecretRequest(annotation="flyte.secrets/s0", group="projects/p/secrets/s", group_version="1"),
    SecretRequest(annotation="flyte.secrets/s1", group="a", group_version="", key="K.x"),
    SecretRequest(
        annotation="flyte.secrets/s2",
        group="projects/p/locations/us-east1/secrets/s",
        group_version="latest",
        mount_requirement="ENV_VAR",
        env_var="E",
    ),
    SecretRequest(annotation="flyte.secrets/s3", group="A B'c", group_version="../x"),
]


def _context(secret: Any, **more: Any) -> dict[str, Any]:
    return {"secret": secret, "index": 3, "values": VALUES, "pod": {"spec": {}}, **more}


def _jinja(source: str, context: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", ENV.from_string(source).render(context)
    except Exception as exc:
        return "error", type(exc).__name__


def _compiled(source: str) -> Any:
    try:
        tree = ENV.parse(source)
    except jinja2.TemplateSyntaxError:  # an expression that cannot stand in this place
        return None
    return compile_template(ENV, tree, VALUES)


def _check(source: str, context: dict[str, Any]) -> bool:
    """Whether the compiled template answered (True) or stepped aside (False); fails when
    it answers otherwise than Jinja."""
    function = _compiled(source)
    if function is None:
        return False
    expected = _jinja(source, context)
    try:
        got = function(context)
    except Fallback:
        return False
    assert expected == ("value", got), source
    return True


# Expressions the compiler takes: each must compile, and answer as Jinja for every secret.
COMPILED = [
    "secret.group",
    "secret.group | lower",
    "values.mountPath | path_join(secret.group) | lower",
    "secret.group | shquote",
    "secret.group ~ '/versions/' ~ secret.group_version",
    "secret.group.split('/')",
    "secret.group.split('/')[1]",
    "secret.group.split('/') | length == 6 and secret.group.split('/')[2] == 'locations'",
    "secret.key or secret.group",
    "secret.key and secret.group",
    "not secret.key",
    "secret.mount_requirement == 'ENV_VAR' or secret.mount_requirement == 'ANY' and secret.env_var",
    "'yes' if secret.key else 'no'",
    "values.off and secret.key",
    "values.on or secret.key",
    "values.missing | default(false) and secret.key",
    "values.prefix ~ index",
    "index + 1 if false else index",
    "[secret.group, secret.group_version, secret.key] | select | join('_') | upper",
    "{'name': secret.env_var, 'n': values.n}",
    "(secret.group, secret.key)",
    "secret.annotation | replace('flyte.secrets/', '')",
    "secret.group is string",
    "secret.group in ['a', 'b']",
    "secret.group not in values.mountPath",
    "values.nested.a.b ~ secret.group",
    "values.items ~ secret.key",
    "secret.group.startswith('projects/')",
    "secret.group[0]",
    "values.n[1] ~ secret.group",
    "secret.group_version | int",
]

# Expressions it may take or leave, whose answers (values or failures) it must never change.
ANY = [
    *COMPILED,
    "secret.nosuch",
    "secret._private",
    "secret.__class__",
    "secret.label()",
    "secret.describe()",
    "secret.group.split('/')[9]",
    "secret.group.__class__.__mro__",
    "'{}'.format(secret)",
    "secret.group.format(secret)",
    "'{0.__class__}'.format(secret)",
    "values.pop('mountPath') ~ secret.group",
    "values.n.append(3) ~ secret.group",
    "values.nosuch ~ secret.group",
    "values['nosuch'] ~ secret.group",
    "secret.group if secret.key",
    "secret.group | path_join('..', '..')",
    "values.mountPath | path_join(secret.group_version)",
    "secret.group.split(sep='/')",
    "secret.group[1:]",
    "range(3) | list",
    "secret | string",
    "pod.spec.containers",
    "texts.command",
    "nosuch",
    "secret.group | nosuchfilter",
    "secret.group | first",
    "secret.key | first",
    "secret.group * 2",
    "loop",
    "values.n[index - 2]",
]


@pytest.mark.parametrize("expression", COMPILED)
def test_what_the_compiler_takes_it_compiles_and_answers_as_jinja(expression: str) -> None:
    source = "{{ %s }}" % expression  # noqa: UP031 - Jinja's braces
    assert _compiled(source) is not None, expression
    answered = [_check(source, _context(secret)) for secret in SECRETS]
    assert any(answered), f"{expression} stepped aside for every secret"


@pytest.mark.parametrize("expression", ANY)
@pytest.mark.parametrize(
    "place",
    [
        "{{ %s }}",
        "a{{ %s }}b{{ secret.group }}",
        "{% set x = %s %}{{ x }}|{{ x }}",
        "{% if secret.key %}{% set x = %s %}{% endif %}{{ x }}",
        "{% if secret.key %}{% set x = 1 %}{% else %}{% set x = %s %}{% endif %}{{ x }}",
        "{% with y = %s %}{{ y }}{% endwith %}",
        "{% if %s %}T{% elif secret.group %}E{% else %}F{% endif %}",
        "{% set x = secret.group %}{% with x = %s %}{{ x }}{% endwith %}{{ x }}",
    ],
)
def test_a_compiled_template_answers_as_jinja_or_steps_aside(expression: str, place: str) -> None:
    source = place.replace("%s", expression)
    for secret in SECRETS:
        _check(source, _context(secret, texts={"command": "c"}))


@pytest.mark.parametrize(
    "source",
    [
        # a name set on one path only: undefined on the other
        "{% if secret.key %}{% set x = 'k' %}{% endif %}{{ x }}",
        # a with-block's names stay inside it; its values are computed outside it
        "{% set a = 'out' %}{% with a = secret.group, b = a %}{{ a }}-{{ b }}{% endwith %}{{ a }}",
        "{% with a = 1 %}{% set a = secret.group %}{{ a }}{% endwith %}",
        # a name read from outside a with-block and then set inside it is left to Jinja
        "{% set a = 'out' %}{% with %}{{ a }}{% set a = secret.group %}{{ a }}{% endwith %}{{ a }}",
        # a value known at load, set again on one path
        "{% set v = values.prefix %}{% if secret.key %}{% set v = secret.key %}{% endif %}{{ v }}",
        "{% set v = values.prefix %}{% if secret.key %}{% set v = 2 %}{% endif %}{{ v ~ 'x' }}",
        "{% if values.on %}A{% else %}{{ values.nosuch }}{% endif %}",
        "{% if values.off %}{{ values.nosuch }}{% elif secret.key %}K{% else %}N{% endif %}",
        "{%- if values.missing | default(false) and not secret.group_version -%}X{%- endif -%}Y",
        "{{ values.nosuch }}",
        "{% for p in [1] %}{{ p }}{% endfor %}",
        "{% include 'gcp/path.txt.j2' %}",
        "{% set index = 1 %}{{ index }}",
        "{% set values = 1 %}{{ values }}",
        "{{ secret.group }}\n",
    ],
)
def test_statements_answer_as_jinja_or_step_aside(source: str) -> None:
    for secret in SECRETS:
        _check(source, _context(secret))


def test_an_expression_compiles_to_its_value_not_its_text() -> None:
    compiled = compile_expression(
        ENV, ENV.parse("{{ {'a': [secret.group, index]} }}").body[0].nodes[0], VALUES
    )  # type: ignore[attr-defined]
    assert compiled is not None
    function, always_text = compiled
    assert not always_text
    assert function(_context(SECRETS[0])) == {"a": ["projects/p/secrets/s", 3]}
    with pytest.raises(Fallback):
        function(_context("not a request"))


def test_branches_values_rule_out_are_not_compiled() -> None:
    """A branch `values` rule out may hold what the compiler does not take."""
    source = "{% if values.off %}{% for x in y %}{% endfor %}{% endif %}{{ secret.group }}"
    assert _compiled(source) is not None
    assert _check(source, _context(SECRETS[0]))


# --- the shipped rule, under every switch of its values ---------------------------------------

SWITCHES = {
    "keyFiles": [False, True],
    "flyte2Requests": [False, True],
    "envVars": ["refuse", "fileKeyRef"],
    "fetch": ["per-secret", "batched"],
}


def _rules(tmp: Path) -> list[Any]:
    rules = []
    for combination in itertools.product(*SWITCHES.values()):
        overrides = dict(zip(SWITCHES, combination, strict=True))
        config = tmp / f"{'-'.join(map(str, combination))}.yaml"
        lines = "".join(
            f"        {k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in overrides.items()
        )
        config.write_text(f"secretpatch:\n  values:\n    gcp:\n{lines}")
        loaded = load_config(str(config))
        rules.append(load_rules(loaded)[0][0])
    return rules


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return _rules(tmp_path_factory.mktemp("switches"))


def test_every_shipped_text_and_per_secret_fragment_compiles(rules: list[Any]) -> None:
    """Else a shipped template would render in Jinja alone, correct but slow."""
    for rule in rules:
        for name, text in rule.texts.items():
            assert text.fast is not None, (rule.values, name)
        for spec in rule.fragments:
            if spec.per == "secret" and not spec.fragment.is_static:
                assert spec.fragment.build is not None, (rule.values, spec.fragment.name)


_FIELD = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.from_regex(
        r"projects/[a-z][a-z0-9-]{4,8}[a-z0-9]/(locations/[a-z]+-[a-z]+[0-9]/)?secrets/[a-z]{1,5}",
        fullmatch=True,
    ),
    st.sampled_from(["", "latest", "1", "..", "a/b", "A'B", "x y", "/abs", "é"]),
    st.text(max_size=10),
)

# Requests of every kind, valid or not, for the shipped templates.
REQUESTS = st.builds(
    SecretRequest,
    annotation=st.sampled_from(["flyte.secrets/s0", "flyte.secrets/s12"]),
    group=_FIELD,
    group_version=_FIELD,
    key=_FIELD,
    mount_requirement=st.sampled_from(["ANY", "FILE", "ENV_VAR"]),
    env_var=st.sampled_from(["", "MY_VAR", "x"]),
)


@settings(max_examples=150, deadline=None)
@given(
    request=REQUESTS,
    index=st.integers(0, 30),
)
def test_the_shipped_templates_render_as_in_jinja(
    rules: list[Any], request: SecretRequest, index: int
) -> None:
    for rule in rules:
        accepted = rule.refusal(request) is None
        visible = rule._visible(request)
        context: dict[str, Any] = {"secret": visible, "index": index, "values": rule.values, "pod": {}}
        texts = {}
        for name, text in rule.texts.items():
            expected = _jinja_text(text, context)
            try:
                got: Any = ("value", text.fast(context))
            except Fallback:
                assert not accepted or expected[0] == "error", (name, request)
                got = expected if expected[0] == "error" else ("fallback", None)
            assert got == expected, (rule.values, name, request)
            texts[name] = expected[1]
        if not all(isinstance(t, str) for t in texts.values()):
            continue
        context["texts"] = texts
        for spec in rule.fragments:
            build = spec.fragment.build
            if spec.per != "secret" or build is None:
                continue
            try:
                expected_items: Any = ("value", _render_tree(spec.fragment.tree, context))
            except Exception as exc:
                expected_items = ("error", type(exc).__name__)
            try:
                assert ("value", build(context)) == expected_items, (spec.fragment.name, request)
            except Fallback:
                assert not accepted or expected_items[0] == "error", (spec.fragment.name, request)


def _jinja_text(text: Any, context: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", text.template.render(context)
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        return "error", type(exc).__name__


def test_a_template_nested_too_deep_for_the_compiler_renders_in_jinja() -> None:
    source = "{{ " + "not " * 60 + "secret.group }}"
    assert _compiled(source) is None or _check(source, _context(SECRETS[0]))
    deep = "".join("{% if secret.group %}" for _ in range(120)) + "x" + "{% endif %}" * 120
    assert _compiled(deep) is None or _check(deep, _context(SECRETS[0]))


ITERATING = {**VALUES, "hosts": ["a", "b", "c"], "teams": ["Alpha", "Beta"], "big": 10**4400}


@pytest.mark.parametrize(
    "source",
    [
        "{{ values.hosts | reverse | join(secret.group) }}",
        "{{ secret.group in values.teams | map('lower') }}",
        "{{ (values.hosts | unique | list) ~ secret.group }}",
        "{% set r = values.hosts | reverse %}{{ r | join('-') }}{{ r | join('+') }}{{ secret.group }}",
        "{{ values.teams | select('equalto', secret.group) | list }}",
        "{{ values.hosts | random }}{{ secret.group }}",
        "{{ values.big }}{{ secret.group }}",
    ],
)
def test_a_compiled_template_rendered_again_answers_as_jinja_every_time(source: str) -> None:
    """Found in review: a values-only iterator (`reverse`, `map`) computed once at load was
    consumed by the first render, so every later render differed from Jinja's."""
    function = compile_template(ENV, ENV.parse(source), ITERATING)
    if "random" in source:  # a pick at every render: never one pick at load
        assert function is None
        return
    context = {**_context(SimpleNamespace()), "values": ITERATING}
    for secret in [SECRETS[0], SECRETS[1], SECRETS[0], SECRETS[0]]:
        context["secret"] = secret
        expected = _jinja(source, context)
        if function is None:
            continue
        try:
            got = ("value", function(context))
        except Fallback:
            continue
        assert got == expected, source
