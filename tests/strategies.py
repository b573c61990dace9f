"""Hypothesis strategies for hostile input: annotations, secret requests, pods and whole
AdmissionReviews, valid and invalid. Shared by tests/test_fuzz.py (a modest run in
`make test`) and tests/fuzz.py (`make fuzz`: 100,000 engine inputs, 5,000 to a live server)."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from .conftest import annotation, flyte_b32, proto_text

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
# Three in four bodies have a well-formed envelope, so the pod inside gets exercised.
reviews = st.one_of(envelopes, envelopes, envelopes, json_values)


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
