"""AdmissionReview in, AdmissionReview out: dicts only, no HTTP.

Two error channels, as Kubernetes intends: a review that is not a well-formed pod CREATE
request raises `InputError` (the server answers HTTP 400, the CLI exits 2); a pod that asks
for a secret that cannot be injected gets `allowed: false` with code 400 and the reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError, Rejected, RenderError
from .types import AdmissionResponse, AdmissionReviewResponse, PatchOp

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


@dataclass(frozen=True)
class Request:
    api_version: str
    uid: str
    operation: str
    pod: Mapping[str, Any]


def parse_request(review: Any) -> Request:
    if not isinstance(review, Mapping):
        raise InputError("an AdmissionReview must be a JSON object")
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise InputError(
            f"apiVersion {json.dumps(api_version)} is not an AdmissionReview version; "
            f"expected one of: {', '.join(API_VERSIONS)}"
        )
    if review.get("kind") != "AdmissionReview":
        raise InputError(f"kind {json.dumps(review.get('kind'))} is not AdmissionReview")
    request = review.get("request")
    if not isinstance(request, Mapping):
        raise InputError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InputError("request.uid is missing; the API server always sends one")
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or kind.get("kind") != "Pod" or kind.get("group", "") != "":
        raise InputError(f"request.kind is {json.dumps(kind)}; secretpatch mutates core/v1 Pods only")
    operation = request.get("operation", "CREATE")
    pod = request.get("object")
    if operation == "CREATE" and not isinstance(pod, Mapping):
        raise InputError("request.object is missing or not a pod")
    return Request(str(api_version), uid, str(operation), pod if isinstance(pod, Mapping) else {})


def build_response(
    api_version: str, uid: str, *, patch: list[PatchOp] | None = None, denial: str | None = None
) -> AdmissionReviewResponse:
    """The answer to one review: allowed with an optional JSONPatch, or denied with 400."""
    response: AdmissionResponse = {"uid": uid, "allowed": denial is None}
    if denial is not None:
        response["status"] = {"code": 400, "message": denial}
    elif patch:
        encoded = json.dumps(patch, separators=(",", ":")).encode("utf-8")
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(encoded).decode("ascii")
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def review(mutate: Callable[[Mapping[str, Any]], list[PatchOp]], document: Any) -> AdmissionReviewResponse:
    """Answer a review with `mutate` (pod to patch). Only the envelope can raise."""
    request = parse_request(document)
    if request.operation != "CREATE":
        return build_response(request.api_version, request.uid)
    try:
        patch = mutate(request.pod)
    except Rejected as exc:
        return build_response(request.api_version, request.uid, denial=exc.message)
    except (InputError, RenderError) as exc:
        return build_response(
            request.api_version, request.uid, denial=f"secretpatch cannot mutate the pod: {exc}"
        )
    return build_response(request.api_version, request.uid, patch=patch)
