"""The wire formats, typed: JSON Patch operations and AdmissionReview documents; JSON data
and its compact text."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
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


# json.dumps with separators builds an encoder per call: a third of a small item's time. No
# circularity check (a quarter of the rest): what a patch holds is JSON data, parsed or copied
# as trees (copy_json), which cannot hold a cycle.
compact_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class _Varies:
    """The type of VARIES."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "VARIES"


# In a skeleton (a fragment's template as its renders are built: its mappings and lists, each
# constant as it is), a value computed at each render.
VARIES: Any = _Varies()


def varies(skeleton: Any) -> bool:
    """Whether anything in `skeleton` is computed at each render."""
    if skeleton is VARIES:
        return True
    if type(skeleton) is dict:
        return any(varies(v) for v in skeleton.values())
    if type(skeleton) is list:
        return any(varies(v) for v in skeleton)
    return False


def skeleton_json(skeleton: dict[str, Any] | list[Any]) -> Callable[[Any], str] | None:
    """`compact_json` of any value built on `skeleton` (its keys, its length and whatever
    does not vary are those of the skeleton): the constant text is made once, and only what
    varies is encoded. An init container is a long gcloud line and a name in 570 bytes of
    JSON; encoding it whole took 7 us, this 2. None for a mapping with a key other than a
    string (JSON's text of it is the encoder's business)."""
    pieces: list[str | tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> bool:
        if node is VARIES:
            pieces.append(path)
        elif not varies(node):
            pieces.append(compact_json(node))
        elif type(node) is dict:
            pieces.append("{")
            for n, (key, value) in enumerate(node.items()):
                if type(key) is not str:
                    return False
                pieces.append(("," if n else "") + encode_basestring_ascii(key) + ":")
                if not walk(value, (*path, key)):
                    return False
            pieces.append("}")
        else:
            pieces.append("[")
            for n, value in enumerate(node):
                if n:
                    pieces.append(",")
                if not walk(value, (*path, n)):
                    return False
            pieces.append("]")
        return True

    try:
        if not walk(skeleton, ()):
            return None
    except (TypeError, ValueError, RecursionError):
        return None  # a constant JSON cannot carry (a YAML date): the encoder says so per review
    merged: list[str | tuple[Any, ...]] = []
    for piece in pieces:  # adjacent constant text as one piece
        if type(piece) is str and merged and type(merged[-1]) is str:
            merged[-1] += piece
        else:
            merged.append(piece)

    def text(item: Any) -> str:
        out = []
        for piece in merged:
            if type(piece) is str:
                out.append(piece)
                continue
            value = item
            for step in piece:
                value = value[step]
            out.append(encode_basestring_ascii(value) if type(value) is str else compact_json(value))
        return "".join(out)

    return text
