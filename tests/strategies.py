"""Hypothesis strategies for hostile input: annotations, secret requests, pods and whole
AdmissionReviews, valid and invalid. Shared by tests/test_fuzz.py (a modest run in
`make test`) and tests/fuzz.py (`make fuzz`: 100,000 engine inputs, 5,000 to a live server)."""

from __future__ import annotations

import base64
import functools
from typing import Any

from hypothesis import strategies as st

from .conftest import admission_review, annotation, flyte_b32, proto_text

# The engine's caps on annotations, restated so that the strategies aim at their edges:
# MAX_ANNOTATION_LENGTH in engine/secrets.py and Limits.maxAnnotationChars in engine/config.py.
ANNOTATION_CAP = 3397
POD_CAP = 64 * 1024

MOUNTS = ["ANY", "FILE", "ENV_VAR", "", "7"]
text = st.text(max_size=40)
names = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), text)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)

valid_fields = st.fixed_dictionaries(
    {
        "group": st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        "group_version": st.sampled_from(["1", "2", "latest", "prod"]),
    }
)
hostile_fields = st.fixed_dictionaries(
    {"group": text, "group_version": text},
    optional={"key": text, "env_var": text, "mount_requirement": st.sampled_from(MOUNTS)},
)


annotation_values = st.one_of(
    valid_fields.map(lambda f: annotation(**f)),
    hostile_fields.map(lambda fields: flyte_b32(proto_text(**fields))),
    st.from_regex(r"[a-z1-6]{0,60}", fullmatch=True),
    text,
    json_values,
)
# Hostile annotations aimed at cost rather than meaning: texts that make a parser work hard,
# at and just over the caps, up to 20 to a pod. Each is a prefix, a unit repeated to the
# length wanted and a suffix; whole units only, so a run of escaped backslashes stays even
# and its string stays well-formed, which is what carries it to protobuf's unescaping. A long
# comment, comments and whitespace around valid fields make valid requests, the costliest a
# pod can send (the budgets in tests/fuzz.py derive from requests padded the same way).
COSTLY_TEXTS = {
    "backslashes": ('group: "', "\\\\", '"\n'),
    "bare backslashes": ("", "\\", ""),
    "octal escapes": ('group: "', "\\101", '"\n'),
    "hex escapes": ('key: "', "\\x41", '"\n'),
    "escaped quotes": ('group: "', '\\"', '"\n'),
    "adjacent strings": ("group: ", '"" ', "\n"),
    "single quotes": ("group: ", "'a' ", "\n"),
    "repeated field": ('group: "g"\n', 'group_version: "1"\n', ""),
    "many fields": ("", 'key: "k" env_var: "E" mount_requirement: FILE ', ""),
    "comments": ('group: "g"\ngroup_version: "1"\n', "#\n", ""),
    "a long comment": ('group: "g"\ngroup_version: "1"\n#', "c", "\n"),
    "whitespace": ('group: "g"\n', " \t\r\n", 'group_version: "1"\n'),
    "nesting": ("", "group { ", ""),
    "control characters": ('group: "', "\x00\x1b", '"\n'),
    "outside ASCII": ('group: "', "\u202e\u00e9", '"\n'),
}
COSTLY_LENGTHS = (ANNOTATION_CAP, ANNOTATION_CAP + 1, ANNOTATION_CAP + 8, POD_CAP // 2, POD_CAP, POD_CAP + 8)


def costly_text(kind: str, length: int) -> str:
    """A text of kind `kind` whose annotation is `length` base32 characters, or the next
    length base32 can have."""
    prefix, unit, suffix = COSTLY_TEXTS[kind]
    size = 5 * (max(length, 1) - 1) // 8 + 1  # the fewest bytes that encode to `length`
    room = max(size - len((prefix + suffix).encode()), 0)
    middle = unit * (room // len(unit.encode()))
    return prefix + middle + "a" * (room - len(middle.encode())) + suffix


def costly_annotations(kind: str, length: int, count: int, over: bool) -> dict[str, str]:
    """`count` annotations of `kind`, no more than the pod cap holds; one more if `over` and
    the pod is full, so that the characters in all pass the cap by one annotation."""
    fits = max(POD_CAP // max(length, 1), 1)
    count = min(count, fits) + (1 if over and 1 < fits <= count else 0)
    value = costly_value(kind, length)
    return {f"flyte.secrets/s{i}": value for i in range(count)}


@functools.lru_cache(maxsize=256)
def costly_value(kind: str, length: int) -> str:
    return flyte_b32(costly_text(kind, length))  # pure-Python base32, slow at 64 KiB


costly_annotation_sets = st.builds(
    costly_annotations,
    st.sampled_from(sorted(COSTLY_TEXTS)),
    st.one_of(st.sampled_from(COSTLY_LENGTHS), st.integers(0, POD_CAP)),
    st.integers(1, 20),
    st.booleans(),
)


annotation_names = st.one_of(
    st.integers(0, 40).map(lambda n: f"flyte.secrets/s{n}"), st.just("flyte.secrets/sX"), text
)

containers = st.one_of(
    st.fixed_dictionaries(
        {"name": names, "image": st.just("x")},
        optional={
            "env": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.sampled_from(
                                ["FLYTE_SECRETS_DEFAULT_DIR", "A", "FLYTE_SECRETS_FILE_PREFIX"]
                            ),
                            "value": text,
                        }
                    ),
                    max_size=4,
                ),
                json_values,
            ),
            "volumeMounts": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["gcp-secret-vol", "data"]), "mountPath": st.just("/m")}
                    ),
                    max_size=3,
                ),
                json_values,
            ),
        },
    ),
    json_values,
)
specs = st.one_of(
    st.fixed_dictionaries(
        {"containers": st.one_of(st.lists(containers, max_size=3), json_values)},
        optional={
            "initContainers": st.one_of(st.lists(containers, max_size=3), json_values),
            "volumes": st.one_of(st.lists(st.fixed_dictionaries({"name": names}), max_size=3), json_values),
        },
    ),
    json_values,
)
pods = st.fixed_dictionaries(
    {
        "metadata": st.one_of(
            st.fixed_dictionaries(
                {
                    "name": names,
                    "labels": st.one_of(
                        st.just({"inject-flyte-secrets": "true"}),
                        st.just({"inject-flyte-secrets": "true"}),
                        st.dictionaries(text, text, max_size=2),
                        json_values,
                    ),
                    "annotations": st.one_of(
                        st.dictionaries(annotation_names, annotation_values, max_size=5), json_values
                    ),
                }
            ),
            json_values,
        ),
        "spec": specs,
    }
)
envelopes = st.builds(
    lambda version, uid, pod, operation: {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": operation,
            "object": pod,
        },
    },
    st.sampled_from(["admission.k8s.io/v1"] * 4 + ["admission.k8s.io/v1beta1", "v1"]),
    st.one_of(st.uuids().map(str), st.uuids().map(str), st.uuids().map(str), st.just(""), text),
    pods,
    st.sampled_from(["CREATE", "CREATE", "UPDATE"]),
)


def costly_review(annotations: dict[str, str], spec: Any = None) -> dict[str, Any]:
    """A well-formed review of a labelled pod with `annotations`, so that they are decoded;
    the pod has one container unless `spec` says otherwise."""
    pod = {
        "metadata": {"labels": {"inject-flyte-secrets": "true"}, "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": "x"}]} if spec is None else spec,
    }
    return admission_review(pod)


costly_reviews = st.builds(costly_review, costly_annotation_sets, specs)
# Two in three bodies have a well-formed envelope, so the pod inside gets exercised, and one
# in nine is costly: often enough that a run meets the costliest, rarely enough that the
# others keep most of it.
reviews = st.one_of(*[envelopes] * 6, *[json_values] * 2, costly_reviews)


def check_answer(document: Any, answer: Any) -> str:
    """'patched', 'allowed' or 'denied' for a well-formed answer; raises AssertionError otherwise."""
    import json

    import jsonpatch

    assert isinstance(answer, dict) and answer["kind"] == "AdmissionReview"
    assert answer["apiVersion"] == document["apiVersion"]
    response = answer["response"]
    assert response["uid"] == document["request"]["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["code"] == 400 and isinstance(response["status"]["message"], str)
        assert "patch" not in response
        return "denied"
    if "patch" in response:
        patch = json.loads(base64.b64decode(response["patch"]))
        jsonpatch.apply_patch(document["request"]["object"], patch)
        return "patched"
    return "allowed"
