"""AdmissionReview in, AdmissionReview out: dicts only, no HTTP. The runtime calls these
functions in one direction (parse the request, then build the outcome); nothing here calls
back into it.

Two error channels, as Kubernetes intends: a review that is not a well-formed pod CREATE
request raises `InputError` (the server answers HTTP 400, the CLI exits 2); a pod that asks
for a secret that cannot be injected gets `allowed: false` with code 400 and the reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from .budget import BoundedCache, approx_size
from .errors import InputError, RefusalCode, Rejected, RenderError, printable, quote_json
from .jsontypes import AdmissionResponse, AdmissionReviewResponse, PatchOp, compact_json, is_object

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
# admission.k8s.io/v1 Operation; the API server sends one of these, spelled so.
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
MAX_UID_LENGTH = 128  # a UUID is 36; the answer echoes the uid and the log prints it
MUTATE_PATH = "/mutate--v1-pod"  # Flyte's webhook path; the webhook configuration names it
NO_CHANGES = "No changes"  # controller-runtime's message for an allowed answer without a patch


class Request(NamedTuple):
    api_version: str
    uid: str
    operation: str
    pod: Mapping[str, Any]


def parse_request(review: Any) -> Request:
    if not is_object(review):
        raise InputError("an AdmissionReview must be a JSON object")
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise InputError(
            f"apiVersion {quote_json(api_version)} is not an AdmissionReview version; "
            f"expected one of: {', '.join(API_VERSIONS)}"
        )
    if review.get("kind") != "AdmissionReview":
        raise InputError(f"kind {quote_json(review.get('kind'))} is not AdmissionReview")
    request = review.get("request")
    if not is_object(request):
        raise InputError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InputError("request.uid is missing; the API server always sends one")
    if len(uid) > MAX_UID_LENGTH or not uid.isascii() or not uid.isprintable():
        raise InputError(
            f"request.uid {quote_json(uid)} is not a UID: the API server sends a UUID "
            f"(printable ASCII, at most {MAX_UID_LENGTH} characters here)"
        )
    kind = request.get("kind")
    if not is_object(kind) or kind.get("kind") != "Pod" or kind.get("group", "") != "":
        raise InputError(f"request.kind is {quote_json(kind)}; secretpatch mutates core/v1 Pods only")
    operation = request.get("operation", "CREATE")
    if operation not in OPERATIONS:
        raise InputError(
            f"request.operation is {quote_json(operation)}; expected one of: {', '.join(OPERATIONS)}"
        )
    pod = request.get("object")
    if operation == "CREATE" and not is_object(pod):
        raise InputError("request.object is missing or not a pod")
    return Request(str(api_version), uid, operation, pod if is_object(pod) else {})


def carried_pod(document: Any) -> Any:
    """The pod `document` is, or the pod an AdmissionReview carries (None when there is
    none): what the CLI and the golden cases accept as input."""
    if is_object(document) and document.get("kind") == "AdmissionReview":
        request = document.get("request")
        return request.get("object") if is_object(request) else None
    return document


# How to make an item's JSON text, and the item.
ItemText = tuple[Callable[[Any], str], Any]


class PatchEncoder:
    """Serialises patches, reusing the JSON text of items it has serialised before.

    Rendered items are cached by the engine and shared, never modified, between reviews, so
    the JSON of an init container is computed once per distinct secret, not once per review.
    An entry keeps its item alive, so an id in the cache always names the same object; the
    cache's byte budget counts the item and its text. An item is kept the second time its
    text is made: one rendered for a single pod is not, one the render cache hands out again
    is. (Not the second time its id comes: a new item often has the id of one just freed.)
    An item whose text its fragment's skeleton makes (`known`, jsontypes.skeleton_json) is
    not kept: the skeleton makes it in 2 us, about what counting and keeping it costs, and
    a never-seen secret's item would never be asked for again.
    """

    def __init__(self, max_bytes: int = 4 << 20) -> None:
        self.cache: BoundedCache[int, tuple[Any, str]] = BoundedCache(
            "encoder", max_bytes, lambda _, entry: approx_size(entry), second_sight=True
        )

    def item(self, item: Any, known: Mapping[int, ItemText] | None = None) -> str:
        """One item's JSON text (`known`: see __call__)."""
        entry = self.cache.get(id(item))
        if entry is not None and entry[0] is item:
            return entry[1]
        how = None if known is None else known.get(id(item))
        if how is not None and how[1] is item:
            # Made from its skeleton in about the time keeping it would take: not kept.
            return how[0](item)
        text = compact_json(item)
        self.cache.put(id(item), (item, text), sight=text)
        return text

    def __call__(self, patch: list[PatchOp], known: Mapping[int, ItemText] | None = None) -> bytes:
        """The patch's JSON text. `known` gives, by id, how to make the text of items whose
        skeleton is known (`jsontypes.skeleton_json`), with the item (so an id names it)."""
        parts = []
        for op in patch:
            if op["op"] != "add":
                parts.append(compact_json(op))
                continue
            value = op["value"]
            if type(value) is list:
                text = "[" + ",".join(self.item(v, known) for v in value) + "]"
            else:
                text = self.item(value, known)
            parts.append(f"{add_head(op['path'])}{text}}}")
        return ("[" + ",".join(parts) + "]").encode("utf-8")


def add_head(path: str) -> str:
    """The JSON text of an add operation up to its value (which follows, then "}")."""
    # Written as it is when JSON needs no escape in it: printable ASCII, no quote or backslash.
    plain = path.isascii() and path.isprintable() and '"' not in path and "\\" not in path
    quoted = f'"{path}"' if plain else json.dumps(path)
    return f'{{"op":"add","path":{quoted},"value":'


def patch_field(encoded: bytes) -> str:
    """A JSONPatch as an AdmissionResponse carries it."""
    return base64.b64encode(encoded).decode("ascii")


class Answer(NamedTuple):
    """What a review takes from a mutation: the JSONPatch as the response carries it
    (`patch_field`, "" for none), the injected secrets' names, and the audit annotations.
    Answers may be remembered and shared between reviews: nothing here is modified."""

    patch: str = ""
    secrets: tuple[str, ...] = ()
    audit: Mapping[str, str] | None = None


def build_response(
    api_version: str,
    uid: str,
    *,
    patch: str = "",
    denial: str | None = None,
    audit: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> AdmissionReviewResponse:
    """The answer to one review: allowed with an optional JSONPatch (`patch_field`), or
    denied with 400. Every answer has a `status`, as Flyte's server (controller-runtime)
    sends it: 200 for a patch, 200 with "No changes" for a pod left as it is.

    `audit` becomes auditAnnotations; the API server records them in the audit log under
    `<webhook name>/<key>`. `warnings` reach the client that created the pod (kubectl prints
    each as "Warning: ...")."""
    response: AdmissionResponse = {"uid": uid, "allowed": denial is None}
    if audit:
        response["auditAnnotations"] = dict(audit)
    if warnings:
        response["warnings"] = warnings
    if denial is not None:
        response["status"] = {"code": 400, "message": denial}
    elif patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = patch
        response["status"] = {"code": 200}
    else:
        response["status"] = {"code": 200, "message": NO_CHANGES}
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


# What became of a review, and why a pod was denied: closed sets, counted by the server's metrics.
Result = Literal["patched", "unchanged", "denied", "admitted", "skipped"]
Denial = RefusalCode | Literal["malformed-pod", "render-error"]


class Outcome(NamedTuple):
    """A review's answer and what a server logs and counts about it (names only)."""

    response: AdmissionReviewResponse
    request: Request
    result: Result
    secrets: tuple[str, ...] = ()
    denial: Denial | None = None
    # Why each secret of an admitted pod was refused (`secretpatch.onRefusal: admit`).
    admitted: tuple[RefusalCode, ...] = ()


def skipped(request: Request) -> Outcome:
    """Not a CREATE: allowed, unchanged (the webhook configuration asks for CREATE only)."""
    return Outcome(build_response(request.api_version, request.uid), request, "skipped")


def answered(request: Request, answer: Answer) -> Outcome:
    """A pod's answer: allowed, with its patch if it has one."""
    response = build_response(request.api_version, request.uid, patch=answer.patch, audit=answer.audit)
    return Outcome(response, request, "patched" if answer.patch else "unchanged", answer.secrets)


def refused(request: Request, exc: Rejected | InputError | RenderError) -> Outcome:
    """A pod that cannot be mutated: denied with 400 and the reason."""
    version, uid = request.api_version, request.uid
    if isinstance(exc, Rejected):
        return Outcome(build_response(version, uid, denial=exc.message), request, "denied", denial=exc.code)
    message = f"secretpatch cannot mutate the pod: {exc}"
    code: Denial = "malformed-pod" if isinstance(exc, InputError) else "render-error"
    return Outcome(build_response(version, uid, denial=message), request, "denied", denial=code)


# Kubernetes asks webhooks to keep warnings short and few: the API server truncates a long one
# and drops the rest past a total size, and kubectl prints every one on the user's terminal.
MAX_WARNINGS = 10
MAX_WARNING_CHARS = 256


def admitted(request: Request, refusals: Sequence[Rejected]) -> Outcome:
    """A pod whose secrets cannot all be injected, let through unchanged as Flyte 1.16 does
    (`secretpatch.onRefusal: admit`), but never silently: a warning per refused secret for the
    user, the refusals in the audit log, and their codes for the server's metrics."""
    shown = refusals[:MAX_WARNINGS]
    warnings = [
        "secretpatch admitted the pod unchanged, without any of its secrets (onRefusal: admit): "
        f"{len(refusals)} secret request{'s' if len(refusals) != 1 else ''} cannot be injected",
        *(printable(exc.reason, MAX_WARNING_CHARS) for exc in shown),
    ]
    if len(refusals) > len(shown):
        warnings.append(f"... and {len(refusals) - len(shown)} more")
    refused_codes = ",".join(f"{exc.annotation or 'pod'}={exc.code}" for exc in refusals)
    audit = {"onRefusal": "admit", "refused": printable(refused_codes, MAX_WARNING_CHARS * 4)}
    response = build_response(request.api_version, request.uid, audit=audit, warnings=warnings)
    return Outcome(response, request, "admitted", admitted=tuple(exc.code for exc in refusals))
