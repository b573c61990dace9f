"""What a fragment's skeleton decides at load: item shapes (compose/shapes.py) and JSON
text (jsontypes.skeleton_json), each the same as worked out from the whole item.

Plans compare a secret's item shapes with the plan's (plans.py): a shape that differed from
item_shape where it matters would let a pod of another shape get a plan's operations. And
the JSON text is what the API server applies. So both are checked against the whole-item
functions on generated skeletons filled with generated values, and on what the shipped rule
renders under every switch of its values.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secretpatch import Engine
from secretpatch.core.compose.modes import MODES
from secretpatch.core.compose.shapes import item_shape, skeleton_shape
from secretpatch.core.errors import RenderError
from secretpatch.core.jsontypes import VARIES, compact_json, skeleton_json
from secretpatch.core.requests import SecretRequest
from secretpatch.core.rules.model import ArgumentTooLong

from .test_compiled import REQUESTS, _rules

_KEYS = st.sampled_from(["name", "mountPath", "image", "env", "command", "x"])
_SCALARS = st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none())
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
# Templates: mappings and lists of constants and VARIES (a value computed per render).
_SKELETON_LEAVES = st.one_of(_JSON, st.just(VARIES))
_SKELETONS = st.recursive(
    _SKELETON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def built(draw: st.DrawFn) -> tuple[Any, Any]:
    """A skeleton (a mapping or a list at the top) and a value built on it."""
    skeleton = draw(
        st.dictionaries(_KEYS, _SKELETONS, min_size=1, max_size=4) | st.lists(_SKELETONS, max_size=4)
    )

    def fill(node: Any) -> Any:
        if node is VARIES:
            return draw(_JSON)
        if type(node) is dict:
            return {k: fill(v) for k, v in node.items()}
        if type(node) is list:
            return [fill(v) for v in node]
        return node

    return skeleton, fill(skeleton)


@settings(max_examples=400, deadline=None)
@given(built())
def test_a_skeletons_shape_is_item_shape_of_every_value_built_on_it(case: tuple[Any, Any]) -> None:
    skeleton, value = case
    assert skeleton_shape(skeleton)(value) == item_shape(value)


@settings(max_examples=400, deadline=None)
@given(built())
def test_a_skeletons_json_is_the_json_of_every_value_built_on_it(case: tuple[Any, Any]) -> None:
    skeleton, value = case
    text = skeleton_json(skeleton)
    assert text is not None
    assert text(value) == compact_json(value)


def test_a_skeleton_with_a_key_other_than_a_string_is_left_to_the_encoder() -> None:
    assert skeleton_json({"a": VARIES, 1: "x"}) is None
    # A constant JSON cannot carry (YAML reads 2020-01-01 as a date): the encoder refuses it
    # per review, naming it, as before; loading the rule does not fail on it.
    assert skeleton_json({"a": VARIES, "when": datetime.date(2020, 1, 1)}) is None
    assert skeleton_json({"a": {2: VARIES}}) is None
    assert skeleton_json({"a": [{"b": VARIES}, "é"]}) is not None


def test_only_what_varies_is_read() -> None:
    """The point of it: the fixed part is worked out once, and a value's fixed parts are
    not read (here they are missing, and nothing fails)."""
    skeleton = {
        "name": VARIES,
        "image": "x",
        "command": ["sh", "-ec", VARIES],
        "volumeMounts": [{"name": "v", "mountPath": "/m"}],
        "resources": {"limits": {"cpu": "1"}},
    }
    shape = skeleton_shape(skeleton)
    value = {"name": "c-1", "command": {2: "gcloud ..."}}
    assert shape(value) == (
        ("name", "c-1"),
        ("image", "str"),
        ("command", ("list", "str", "str", "str")),
        ("volumeMounts", ("list", (("name", "v"), ("mountPath", "/m")))),
        ("resources", "dict"),
    )


def test_a_mode_gives_item_shapes_only_where_the_skeleton_decides_the_items() -> None:
    append = MODES["append"]
    assert append.item_shapes(VARIES) is None  # one expression: any number of items
    assert append.item_shapes(["a", VARIES]) is None  # "a" is no item
    one, computed = append.item_shapes([{"name": VARIES}, VARIES]) or ()
    assert one({"name": "n"}) == (("name", "n"),)
    assert computed({"name": "m", "env": [1]}) == (("name", "m"), ("env", ("list", "int")))
    # A `set` fragment's shape is every value as it is (SetKeys.shape).
    assert MODES["set"].item_shapes({"a": VARIES}) is None


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return _rules(tmp_path_factory.mktemp("switches"))


def test_the_shipped_init_container_has_item_shapes_and_json(rules: list[Any]) -> None:
    """Else plans would walk every init container the GCP rule renders. (The env of
    envVars: fileKeyRef is one expression, any number of items: its shapes are worked out
    per render.)"""
    for rule in rules:
        by_name = {spec.fragment.name: spec for spec in rule.fragments}
        if rule.values["fetch"] == "per-secret":
            assert by_name["gcp/init-container.yaml.j2"].item_shapes is not None, rule.values
            assert by_name["gcp/init-container.yaml.j2"].item_json is not None, rule.values
        if rule.values["envVars"] == "fileKeyRef":
            assert by_name["gcp/env-from-file.yaml.j2"].item_shapes is None, rule.values


@settings(max_examples=150, deadline=None)
@given(
    request=REQUESTS,
    index=st.integers(0, 30),
)
def test_the_shipped_rules_items_have_the_shapes_their_modes_give(
    rules: list[Any], request: SecretRequest, index: int
) -> None:
    for rule in rules:
        try:
            rendered = rule.render(request, index, {})
        except (RenderError, ArgumentTooLong):
            continue  # refused: no plan is tried with it
        for spec, items in zip(rule.fragments, rendered.items, strict=True):
            if spec.item_shapes is not None and items is not spec.items:
                assert len(spec.item_shapes) == len(items)
                for shape, item in zip(spec.item_shapes, items, strict=True):
                    assert shape(item) == spec.mode.shape(item), (rule.values, spec.fragment.name)
            if spec.item_json is not None and items is not spec.items:
                assert len(spec.item_json) == len(items)
                for text, item in zip(spec.item_json, items, strict=True):
                    assert text(item) == compact_json(item), (rule.values, spec.fragment.name)


def test_a_custom_fragment_with_lists_inside_gets_the_shapes_its_renders_have(tmp_path: Path) -> None:
    """The plans test's fragment whose env list differs from secret to secret: its shape
    says how many variables each render has."""
    from .test_plans import _with_fragment

    template = (
        'name: "extra-{{ index }}"\nimage: x\n'
        "env: \"{{ [{'name': 'A', 'value': 'v'}] if secret.key else [] }}\"\n"
        'volumeMounts: [{name: "v-{{ index }}", mountPath: /m}]\n'
    )
    engine = _with_fragment(tmp_path, "    merge: append\n    into: [initContainers]\n", template)
    (spec,) = [s for s in engine.rules[0].fragments if s.fragment.name == "gcp/extra.yaml.j2"]
    assert spec.item_shapes is not None
    for key in ("", "k"):
        request = SecretRequest("flyte.secrets/s0", "g", "1", key)
        rendered = engine.rules[0].render(request, 3, {})
        (item,) = rendered.items[engine.rules[0].fragments.index(spec)]
        assert spec.item_shapes[0](item) == item_shape(item)
        assert dict(spec.item_shapes[0](item))["volumeMounts"] == (
            "list",
            (("name", "v-3"), ("mountPath", "/m")),
        )


def test_reviews_send_the_same_patch_text_with_skeleton_json_as_without() -> None:
    """Composed pods and pods answered from a plan, with new secrets each: the patch text,
    byte for byte, is what encoding each item whole gives, and the skeleton's text was
    what made the init containers'."""
    from .conftest import flyte_pod
    from .test_memo import answer
    from .test_plans import planning_at_first_sight

    loaded = Engine.from_config(None)  # its rules are shared: changed copies only
    made: list[str] = []

    def with_item_json(change: Any) -> Engine:
        rules = [
            dataclasses.replace(
                rule,
                fragments=[
                    dataclasses.replace(spec, item_json=change(spec.item_json)) for spec in rule.fragments
                ],
            )
            for rule in loaded.rules
        ]
        return planning_at_first_sight(Engine(loaded.config, rules))

    fast = with_item_json(lambda each: each and tuple(_counted(text, made) for text in each))
    whole = with_item_json(lambda _: None)
    for n in range(6):
        wanted = [
            {"group": f"g{n}-{i}", "group_version": str(i + 1), "key": "k" * (n % 2)}
            for i in range(1 + n % 3)
        ]
        pod = flyte_pod(*wanted)
        got = answer(fast, pod, uid=str(n))
        assert "patch" in got
        assert got == answer(whole, pod, uid=str(n))
    assert len(made) == sum(1 + n % 3 for n in range(6)), "one init container per secret"


def _counted(text: Any, made: list[str]) -> Any:
    def counted(item: Any) -> str:
        made.append(text(item))
        return made[-1]

    return counted


def test_a_fragment_with_a_constant_json_cannot_carry_still_loads(tmp_path: Path) -> None:
    """From review: working out the skeleton's JSON at load raised on a YAML date and
    stopped the start-up with a bare TypeError. The fragment loads, as before, and is
    encoded whole (where the encoder refuses it per review, as before)."""
    from .test_plans import _with_fragment

    template = 'name: "extra-{{ index }}"\nimage: x\nsince: 2020-01-01\n'
    engine = _with_fragment(tmp_path, "    merge: append\n    into: [initContainers]\n", template)
    (spec,) = [s for s in engine.rules[0].fragments if s.fragment.name == "gcp/extra.yaml.j2"]
    assert spec.item_json is None and spec.item_shapes is not None
