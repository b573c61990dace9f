"""The wire formats, typed: JSON Patch operations and AdmissionReview documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict


class AddOp(TypedDict):
    op: Literal["add"]
    path: str
    value: Any


class RemoveOp(TypedDict):
    op: Literal["remove"]
    path: str


PatchOp = AddOp | RemoveOp

Pod = dict[str, Any]


class Status(TypedDict):
    code: int
    message: NotRequired[str]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


def is_object(value: Any) -> bool:
    """A JSON object: a dict (checked first, as parsed JSON always gives one) or any Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def is_json_data(value: Any) -> bool:
    """True for what JSON can carry: the only thing a template may put into a pod."""
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple):
        return all(is_json_data(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_json_data(v) for k, v in value.items())
    return False


def copy_json(value: Any) -> Any:
    """A fresh copy of JSON data (tuples become lists), so no operation shares objects with a
    cache or with the input pod."""
    kind = type(value)
    if kind is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [copy_json(v) for v in value]
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [copy_json(v) for v in value]
    return value
