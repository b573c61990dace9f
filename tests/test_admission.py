"""Malformed reviews raise InputError (a 400 from the server); bad pods are denied."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest
from secretpatch import Engine, InputError
from secretpatch.core.admission import Denial, Result
from secretpatch.core.errors import RefusalCode
from secretpatch.webhook.app import Unanswered

from .conftest import ROOT, admission_review, flyte_pod

POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}


def review(**request: Any) -> dict[str, Any]:
    return admission_review(flyte_pod(), **request)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "an AdmissionReview must be a JSON object"),
        ({"kind": "AdmissionReview"}, "apiVersion null is not an AdmissionReview version"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}, 'kind "Pod" is not AdmissionReview'),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "has no request object"),
        (review(uid=""), "request.uid is missing"),
        (review(uid=None), "request.uid is missing"),
        (
            review(kind={"group": "apps", "version": "v1", "kind": "Deployment"}),
            "secretpatch mutates core/v1 Pods only",
        ),
        (review(object=None), "request.object is missing or not a pod"),
    ],
)
def test_malformed_reviews_raise_input_error(engine: Engine, document: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        engine.review(document)


def test_a_malformed_pod_inside_a_good_review_is_denied(engine: Engine) -> None:
    pod = flyte_pod({"group": "a", "group_version": "1"})
    pod["spec"]["containers"] = {"name": "not-a-list"}
    response = engine.review(review(object=pod))["response"]
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 400,
        "message": "secretpatch cannot mutate the pod: spec.containers is not a list",
    }


def test_operations_other_than_create_are_allowed_unchanged(engine: Engine) -> None:
    assert engine.review(review(operation="UPDATE"))["response"] == {
        "uid": "u",
        "allowed": True,
        "status": {"code": 200, "message": "No changes"},  # as controller-runtime says it
    }


def test_the_engine_never_imports_the_cli_or_a_server() -> None:
    import subprocess
    import sys

    code = "import sys, secretpatch; e = secretpatch.Engine.from_config(None); print(sorted(m for m in sys.modules if m.startswith(('secretpatch.cli', 'uvicorn', 'starlette', 'cryptography'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_patch_encoder_gives_the_same_json_as_a_plain_dump() -> None:
    import json

    from secretpatch.core.admission import PatchEncoder

    shared = {"name": "x", "value": 'é"\n'}
    patch: list[Any] = [
        {"op": "remove", "path": "/spec/containers/0/env/1"},
        {"op": "add", "path": "/spec/volumes", "value": [shared]},
        {"op": "add", "path": "/spec/containers/0/env/0", "value": shared},
        {"op": "add", "path": "/spec/a~1b/-", "value": {"name": "y"}},
        # From review: a control character in a path was written unescaped (a `set`
        # fragment's key with a tab), and the patch was not JSON.
        {"op": "add", "path": "/metadata/labels/tab\there", "value": "x"},
        {"op": "add", "path": '/metadata/labels/q"\\é\x7f', "value": "x"},
    ]
    encoder = PatchEncoder(max_bytes=3000)
    for _ in range(3):
        text = encoder(patch)
        assert json.loads(text) == patch
        assert text == json.dumps(patch, separators=(",", ":")).encode()


def metric_labels(metric: str) -> list[str]:
    """The label values docs/operations.md lists for one metric, in its order."""
    text = (ROOT / "docs" / "operations.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith(f"| `{metric}")]
    return re.findall(r"`([a-z-]+)`", row.split("|")[2])


def literal_values(kind: Any) -> list[str]:
    """The strings of a Literal, or of a union of Literals."""
    values = []
    for arg in get_args(kind):
        values += literal_values(arg) if get_args(arg) else [arg]
    return values


def test_the_denial_reasons_are_a_closed_set_and_the_docs_list_each() -> None:
    assert sorted(metric_labels("secretpatch_denials_total")) == sorted(literal_values(Denial))
    assert set(literal_values(RefusalCode)) < set(literal_values(Denial))


def test_the_review_results_are_a_closed_set_and_the_docs_list_each() -> None:
    documented = metric_labels("secretpatch_reviews_total")
    assert sorted(documented) == sorted([*literal_values(Result), *literal_values(Unanswered)])


def test_on_refusal_admit_lets_the_pod_through_unchanged_with_a_warning_per_refused_secret() -> None:
    """Flyte 1.16 admits such a pod silently; secretpatch says, to the user (warnings, which
    kubectl prints), the audit log and the metrics, what the pod will lack and why."""
    engine = Engine.from_config({"secretpatch": {"onRefusal": "admit"}})
    pod = flyte_pod(
        {"group": "ok", "group_version": "1"},
        {"group": "a;b", "group_version": "1"},
        {"group": "c", "group_version": "1", "mount_requirement": "ENV_VAR"},
    )
    outcome = engine.review_outcome(admission_review(pod))
    response = outcome.response["response"]
    assert response["allowed"] is True
    assert "patch" not in response and response["status"] == {"code": 200, "message": "No changes"}
    assert response["warnings"] == [
        "secretpatch admitted the pod unchanged, without any of its secrets (onRefusal: admit): "
        "2 secret requests cannot be injected",
        'flyte.secrets/s1: group "a;b" is not valid: it must be a secret ID (1 to 255 letters, digits, '
        "'-' or '_'), projects/<project-id-or-number>/secrets/<secret-id>, or "
        "projects/<project-id-or-number>/locations/<location>/secrets/<secret-id>",
        "flyte.secrets/s2: mount_requirement ENV_VAR is not supported with GCP Secret Manager (the "
        "secret is written to a file); request FILE or ANY",
    ]
    assert response["auditAnnotations"] == {
        "onRefusal": "admit",
        "refused": "flyte.secrets/s1=invalid-field,flyte.secrets/s2=mount-requirement",
    }
    assert outcome.result == "admitted" and outcome.denial is None
    assert outcome.admitted == ("invalid-field", "mount-requirement")
    # The default denies the same pod, with the first refusal.
    denied = Engine.from_config(None).review(admission_review(pod))["response"]
    assert denied["allowed"] is False and "flyte.secrets/s1" in denied["status"]["message"]


def test_admitted_warnings_are_few_short_and_printable() -> None:
    """Kubernetes truncates long warnings and drops many; kubectl prints them on a terminal."""
    engine = Engine.from_config({"secretpatch": {"onRefusal": "admit"}})
    hostile = "\x1b[31m\u202e" + "x" * 300
    pod = flyte_pod(*({"group": hostile, "group_version": "1"} for _ in range(25)))
    response = engine.review(admission_review(pod))["response"]
    warnings = response["warnings"]
    assert len(warnings) == 12  # the summary, ten refusals, "... and 15 more"
    assert warnings[0].endswith("25 secret requests cannot be injected")
    assert warnings[-1] == "... and 15 more"
    for warning in warnings:
        assert warning.isascii() and warning.isprintable() and len(warning) <= 300
    assert response["auditAnnotations"]["refused"].count("=invalid-field") == 25


def test_admit_still_denies_what_is_not_a_secret_refusal() -> None:
    """A malformed pod is not a refused secret: denied whatever onRefusal says."""
    engine = Engine.from_config({"secretpatch": {"onRefusal": "admit"}})
    pod = flyte_pod({"group": "a", "group_version": "1"})
    pod["metadata"]["annotations"] = ["not", "a", "map"]
    response = engine.review(admission_review(pod))["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400


def test_a_limit_under_admit_is_one_warning_for_the_pod() -> None:
    engine = Engine.from_config({"secretpatch": {"onRefusal": "admit", "limits": {"maxSecrets": 2}}})
    pod = flyte_pod(*({"group": f"g{i}", "group_version": "1"} for i in range(3)))
    response = engine.review(admission_review(pod))["response"]
    assert response["allowed"] is True and "patch" not in response
    assert response["warnings"][1] == "the pod asks for 3 secrets; secretpatch.limits.maxSecrets is 2"
    assert response["auditAnnotations"]["refused"] == "pod=limit"


def test_admitting_the_most_refused_secrets_a_pod_may_carry_keeps_the_answer_small() -> None:
    """The worst case of `onRefusal: admit`: limits.maxSecrets (500) requests, each refused.
    Every one is decoded (bounded by maxSecrets and maxAnnotationChars before any is), yet
    the answer stays a dozen short warnings and one bounded audit value."""
    engine = Engine.from_config({"secretpatch": {"onRefusal": "admit"}})
    limit = engine.config.limits.maxSecrets
    pod = flyte_pod(*({"group": f"bad;{i}", "group_version": "1"} for i in range(limit)))
    outcome = engine.review_outcome(admission_review(pod))
    response = outcome.response["response"]
    assert len(outcome.admitted) == limit
    assert len(response["warnings"]) == 12 and response["warnings"][-1] == f"... and {limit - 10} more"
    assert all(len(w) <= 300 for w in response["warnings"])
    assert len(response["auditAnnotations"]["refused"]) <= 1100
