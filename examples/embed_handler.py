"""secretpatch inside an existing admission handler that already mutates pods.

The handler makes its own change first and then asks secretpatch for the secret injection of
the changed pod. `Engine.mutate` returns RFC 6902 operations against the pod it is given, and
RFC 6902 operations apply in sequence, so the handler's operations followed by secretpatch's
form one patch for the original pod. A refusal becomes a denial.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
from secretpatch import Engine, Rejected

engine = Engine.from_config(None)


def add_team_label(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The handler's own mutation (an example): label the pod with its namespace's team."""
    if "labels" not in pod["metadata"]:
        return [{"op": "add", "path": "/metadata/labels", "value": {"team": "data"}}]
    return [{"op": "add", "path": "/metadata/labels/team", "value": "data"}]


def handle(review: dict[str, Any]) -> dict[str, Any]:
    request = review["request"]
    pod = request["object"]
    own = add_team_label(pod)
    labelled = jsonpatch.apply_patch(pod, own)
    try:
        secrets = engine.mutate(labelled)
    except Rejected as exc:
        answer = {"uid": request["uid"], "allowed": False, "status": {"code": 400, "message": exc.message}}
    else:
        patch = own + secrets.patch
        answer = {
            "uid": request["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
    return {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": answer}
