"""Values from pods are hostile: every one is checked before a template sees it."""

from __future__ import annotations

import json
from typing import Any

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


KEY_FILES = Engine.from_config({"secretpatch": {"values": {"gcp": {"keyFiles": True}}}})
FLYTE2 = Engine.from_config({"secretpatch": {"values": {"gcp": {"flyte2Requests": True}}}})
ENV_FILES = Engine.from_config({"secretpatch": {"values": {"gcp": {"envVars": "fileKeyRef"}}}})
ENV_NAMES_REFUSED = [
    *HOSTILE,
    "1ABC",
    "A-B",
    "A.B",
    "FLYTE_SECRETS_DEFAULT_DIR",
    "FLYTE_SECRETS_FILE_PREFIX",
    "A" * 254,
]


@pytest.mark.parametrize("mount", ["ENV_VAR", "ANY", "FILE"])
@pytest.mark.parametrize("value", ENV_NAMES_REFUSED, ids=range(len(ENV_NAMES_REFUSED)))
def test_with_env_files_a_hostile_env_var_is_refused_whatever_the_mount(value: str, mount: str) -> None:
    """With envVars: fileKeyRef, env_var names a variable of every container (and, for the
    env file, reaches a shell line quoted): it must be a plain name, and not one of the two
    secretpatch sets; key, which may name the variable, keeps its grammar too."""
    pod = flyte_pod({"group": "good", "group_version": "1", "mount_requirement": mount, "env_var": value})
    with pytest.raises(Rejected) as caught:
        ENV_FILES.mutate(pod)
    assert "flyte.secrets/s0: env_var " in caught.value.message
    assert "other than FLYTE_SECRETS_DEFAULT_DIR and FLYTE_SECRETS_FILE_PREFIX" in caught.value.message


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_with_env_files_a_hostile_key_is_refused(value: str) -> None:
    pod = flyte_pod({"group": "good", "group_version": "1", "mount_requirement": "ENV_VAR", "key": value})
    with pytest.raises(Rejected, match="flyte.secrets/s0: key "):
        ENV_FILES.mutate(pod)


def test_env_var_requests_are_refused_by_default_as_flyte_does_and_taken_with_env_files() -> None:
    pod = flyte_pod({"group": "good", "group_version": "1", "mount_requirement": "ENV_VAR"})
    with pytest.raises(Rejected, match="mount_requirement ENV_VAR is not supported with GCP Secret Manager"):
        Engine.from_config(None).mutate(pod)
    env = ENV_FILES.mutate(pod).pod["spec"]["containers"][0]["env"]
    assert env[-1]["name"] == "_FSEC_GOOD_1" and "fileKeyRef" in env[-1]["valueFrom"]


@pytest.mark.parametrize("field", ["group", "group_version", "key"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_refused_with_the_field_named(engine: Engine, field: str, value: str) -> None:
    """Every field a template reads: group and version always, key with keyFiles on."""
    pod = flyte_pod(_request(field, value))
    with pytest.raises(Rejected) as caught:
        (KEY_FILES if field == "key" else engine).mutate(pod)
    message = caught.value.message
    assert f"flyte.secrets/s0: {field} " in message
    assert "\n" not in message and "\x00" not in message and "\r" not in message
    assert message.isascii()
    assert len(message) < 800
    if len(value) < 64:
        assert json.dumps(value, ensure_ascii=True) in message


@pytest.mark.parametrize("field", ["key", "env_var"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_field_no_template_reads_is_not_validated_and_reaches_nothing(
    engine: Engine, field: str, value: str
) -> None:
    """Flyte injects a pod whose key is "a/b" or whose env_var is "my-var": the GCP rule reads
    neither (key only with keyFiles), so secretpatch injects it too, and the value reaches no
    shell, path or pod: the patch is the one of the same request without the field."""
    plain = engine.mutate(flyte_pod(_request(field, "")))
    mutation = engine.mutate(flyte_pod(_request(field, value)))
    assert mutation.patch == plain.patch
    assert getattr(mutation.injected[0].secret, field) == value  # provenance keeps what was asked


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
        ("projects/p-12345/locations/us/secrets/s", True),  # regional (a multi-region name)
        ("projects/p-12345/locations/us-central1/secrets/s", True),
        ("projects/123456789/locations/northamerica-northeast2/secrets/s", True),
        ("projects/p-12345/locations/US-central1/secrets/s", False),
        ("projects/p-12345/locations/us-central1/versions/1", False),
        ("projects/p-12345/locations//secrets/s", False),
        ("projects/p-12345/locations/us;id/secrets/s", False),
        ("projects/p-12345/locations/../secrets/s", False),
        ("projects/p-12345/locations/$(id)/secrets/s", False),
        ("projects/p-12345/locations/us-central1/secrets/s/versions/1", False),
        ("projects/p-12345/locations/us-central1-a/secrets/s", False),  # a zone
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
def test_key_grammar(value: str, valid: bool) -> None:
    _check(KEY_FILES, _request("key", value), valid)


@pytest.fixture(scope="module")
def reads_env_var(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An operator's env template that reads env_var: then its grammar applies."""
    folder = tmp_path_factory.mktemp("templates")
    (folder / "gcp").mkdir()
    (folder / "gcp" / "env.yaml.j2").write_text(
        '- name: FLYTE_SECRETS_DEFAULT_DIR\n  value: "{{ values.mountPath }}"\n'
        '- name: FLYTE_SECRETS_FILE_PREFIX\n  value: ""\n'
        '- name: SECRET_ENV_VAR\n  value: "{{ secret.env_var }}"\n'
    )
    engine = Engine.from_config({"secretpatch": {"templates": str(folder)}})
    assert "env_var" in engine.rules[0].reads
    return engine


@pytest.mark.parametrize(("value", "valid"), [("MY_VAR", True), ("_x1", True), ("1X", False), ("A-B", False)])
def test_env_var_grammar(reads_env_var: Engine, value: str, valid: bool) -> None:
    _check(reads_env_var, _request("env_var", value), valid)


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


@pytest.mark.parametrize("number", ["99999999999", "040000000000", "0x100000000", "-99999999999"])
def test_an_enum_number_outside_int32_is_a_bad_annotation_not_a_crash(engine: Engine, number: str) -> None:
    from .conftest import flyte_b32

    pod = flyte_pod()
    text = f'group: "a"\ngroup_version: "1"\nmount_requirement: {number}\n'
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = flyte_b32(text)
    with pytest.raises(Rejected) as caught:
        engine.mutate(pod)
    assert caught.value.code == "bad-annotation"
    admitted = Engine.from_config({"secretpatch": {"onRefusal": "admit"}}).review(admission_review(pod))
    assert admitted["response"]["allowed"] is True and "patch" not in admitted["response"]


def test_a_template_calling_a_method_of_the_request_gets_every_field_validated(tmp_path: Any) -> None:
    """`secret.describe()` prints every field: the loader cannot tell which, so all are read."""
    (tmp_path / "gcp").mkdir()
    (tmp_path / "gcp" / "command.sh.j2").write_text("echo {{ secret.describe() | shquote }}")
    engine = Engine.from_config({"secretpatch": {"templates": str(tmp_path)}})
    assert engine.rules[0].reads == {"group", "group_version", "key", "env_var"}
    with pytest.raises(Rejected, match="key"):
        engine.mutate(flyte_pod({"group": "a", "group_version": "1", "key": "$(id)"}))


def test_the_names_of_secrets_in_audit_annotations_are_printable(tmp_path: Any) -> None:
    """An operator's templates may read neither group nor version: then nothing validates
    them, and the names that reach audit annotations and log lines are escaped."""
    (tmp_path / "gcp").mkdir()
    (tmp_path / "gcp" / "command.sh.j2").write_text("true")
    engine = Engine.from_config({"secretpatch": {"templates": str(tmp_path)}})
    assert engine.rules[0].reads == frozenset()
    hostile = "a\x1b[2J\nX: y\u202e" + "A" * 400
    response = engine.review(admission_review(flyte_pod({"group": hostile, "group_version": "1"})))[
        "response"
    ]
    secrets = response["auditAnnotations"]["secrets"]
    assert secrets.isascii() and secrets.isprintable() and len(secrets) < 250


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_with_flyte_2_requests_the_key_names_a_secret_and_a_file_and_keeps_its_grammar(value: str) -> None:
    """A Flyte 2 request's key is read (the secret ID, the file name), so it is validated."""
    with pytest.raises(Rejected) as caught:
        FLYTE2.mutate(flyte_pod({"key": value, "mount_requirement": "FILE"}))
    assert "flyte.secrets/s0: key " in caught.value.message
    assert caught.value.message.isascii() and "\n" not in caught.value.message


def test_flyte_2_requests_are_refused_unless_switched_on_and_env_var_ones_still_are(engine: Engine) -> None:
    request = {"key": "api-token", "mount_requirement": "FILE"}
    with pytest.raises(Rejected, match="group is empty"):
        engine.mutate(flyte_pod(request))
    assert FLYTE2.mutate(flyte_pod(request)).patch
    with pytest.raises(Rejected, match="mount_requirement ENV_VAR is not supported"):
        FLYTE2.mutate(flyte_pod({"key": "api-token", "mount_requirement": "ENV_VAR", "env_var": "API_TOKEN"}))


@pytest.mark.parametrize(
    ("first", "second", "name"),
    [
        ({"group": "alpha", "env_var": "TOKEN"}, {"group": "beta", "env_var": "TOKEN"}, "TOKEN"),
        (
            {"group": "alpha", "env_var": "TOKEN"},
            {"group": "cfg", "mount_requirement": "FILE", "env_var": "TOKEN"},
            "TOKEN",
        ),
        (
            {"group": "a_b", "mount_requirement": "ENV_VAR"},
            {"group": "a", "group_version": "b_1", "mount_requirement": "ENV_VAR"},
            "_FSEC_A_B_1",
        ),
    ],
)
def test_two_secrets_naming_one_variable_are_refused(
    first: dict[str, str], second: dict[str, str], name: str
) -> None:
    """Only one value could reach the task: the pod is refused, naming both requests (the
    fragment is `unique` in rules/gcp.yaml)."""
    pod = flyte_pod({"group_version": "1", **first}, {"group_version": "1", **second})
    with pytest.raises(Rejected) as caught:
        ENV_FILES.mutate(pod)
    assert caught.value.code == "name-collision"
    assert f"flyte.secrets/s1: cannot add {name!r}: flyte.secrets/s0 adds it too" in caught.value.message
