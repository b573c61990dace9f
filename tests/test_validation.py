"""Values from pods are hostile: every one is checked before a template sees it."""

from __future__ import annotations

import json

import pytest
from secretpatch import Engine, Rejected

from .conftest import admission_review, flyte_pod

HOSTILE = [
    "a;rm -rf /",
    "a && curl evil.example",
    "a|sh",
    "$(id)",
    "${HOME}",
    "`id`",
    "a\nb",
    "a\rb",
    "a\x00b",
    "\x00",
    "..",
    "../../etc/passwd",
    "a/../b",
    "/etc/shadow",
    "/",
    "a b",
    "a\tb",
    "'quoted'",
    '"quoted"',
    "a\\b",
    "*",
    "a?",
    "~root",
    "a>b",
    "a<b",
    "a&",
    "#comment",
    "a=b c",
    "\u0430pi-key",  # Cyrillic a
    "api\u2010key",  # Unicode hyphen
    "ｓecret",  # fullwidth s
    "secret\u200b",  # zero-width space
    "{{ 7*7 }}",
    "{% raw %}",
    "key: value",
    "- item",
    "x" * 600,  # over MAX_FIELD_LENGTH; a whole annotation over its cap is test_secrets' case
    "a" * 256,
    "%2e%2e",
    "a,b",
    "@file",
]


def _request(field: str, value: str) -> dict[str, str]:
    request = {"group": "good", "group_version": "1"}
    request[field] = value
    return request


@pytest.mark.parametrize("field", ["group", "group_version", "key"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_refused_with_the_field_named(engine: Engine, field: str, value: str) -> None:
    pod = flyte_pod(_request(field, value))
    with pytest.raises(Rejected) as caught:
        engine.mutate(pod)
    message = caught.value.message
    assert f"flyte.secrets/s0: {field} " in message
    assert "\n" not in message and "\x00" not in message and "\r" not in message
    assert message.isascii()
    assert len(message) < 800
    if len(value) < 64:
        assert json.dumps(value, ensure_ascii=True) in message


def test_there_are_at_least_thirty_hostile_values_per_field() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a", True),
        ("A-Z_0-9", True),
        ("x" * 255, True),
        ("x" * 256, False),
        ("projects/my-project/secrets/s", True),
        ("projects/123456789/secrets/s", True),
        ("projects/my-project-/secrets/s", False),
        ("projects/My-Project/secrets/s", False),
        ("projects/abc/secrets/s", False),
        ("projects/p-12345/secrets/", False),
        ("projects/p-12345/locations/us/secrets/s", False),
        ("projects/p-12345/secrets/s/versions/1", False),
        ("a.b", False),
        ("a/b", False),
    ],
)
def test_group_grammar(engine: Engine, value: str, valid: bool) -> None:
    _check(engine, _request("group", value), valid)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1", True),
        ("42", True),
        ("9" * 19, True),
        ("9" * 20, False),
        ("0", False),
        ("01", False),
        ("-1", False),
        ("latest", True),
        ("Latest", False),
        ("LATEST", False),
        ("new", False),
        ("NEW", False),
        ("prod", True),
        ("Prod_2024-q4", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("1abc", False),
        ("_x", False),
    ],
)
def test_version_grammar_follows_gcp_alias_rules(engine: Engine, value: str, valid: bool) -> None:
    _check(engine, _request("group_version", value), valid)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("token", True),
        ("my_key", True),
        ("a.json", True),
        (".hidden", False),
        ("a/b", False),
        ("x" * 253, True),
        ("x" * 254, False),
    ],
)
def test_key_grammar(engine: Engine, value: str, valid: bool) -> None:
    _check(engine, _request("key", value), valid)


@pytest.mark.parametrize(("value", "valid"), [("MY_VAR", True), ("_x1", True), ("1X", False), ("A-B", False)])
def test_env_var_grammar(engine: Engine, value: str, valid: bool) -> None:
    _check(engine, _request("env_var", value), valid)


def _check(engine: Engine, request: dict[str, str], valid: bool) -> None:
    pod = flyte_pod(request)
    if valid:
        assert engine.mutate(pod).patch
    else:
        with pytest.raises(Rejected, match="is not valid: it must|characters long"):
            engine.mutate(pod)


def test_an_unknown_mount_requirement_is_refused(engine: Engine) -> None:
    from .conftest import flyte_b32

    pod = flyte_pod()
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = flyte_b32(
        'group: "a"\ngroup_version: "1"\nmount_requirement: 7\n'
    )
    with pytest.raises(Rejected, match="mount_requirement 7 is not accepted; accepted: ANY, FILE"):
        engine.mutate(pod)


def test_no_hostile_value_reaches_a_review_answer(engine: Engine) -> None:
    for value in HOSTILE:
        pod = flyte_pod(_request("group", value))
        review = admission_review(pod)
        response = engine.review(review)["response"]
        assert response["allowed"] is False
        assert "patch" not in response
