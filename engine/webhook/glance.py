"""A first look at a review body: only the fields that asking the memo reads, decoded.

Most reviews a busy webhook sees are pods of a task it has answered before, and the memo
answers them (`Engine.remembered_outcome`) from a few fields: the review's version and
request, the pod's labels, annotations and names, and its spec. A task pod's review also
carries what the memo never reads, and decoding it costs as much as the rest together:
`metadata.managedFields` is a third of a task pod's body and more than half of its JSON
objects (the API server writes one entry per annotation and per field of each container).

`BodyReader.glance` decodes the review with msgspec against the schema below. Fields it
does not name are checked as JSON syntax and skipped, not built, which is how Go's decoder
(and Flyte's webhook) reads the fields its types do not name. What it decodes is decoded as
orjson does in `BodyReader.parse`: the same values for the same text, the last of repeated
keys (but an integer beyond 64 bits, which orjson makes a float and msgspec an int: the memo
compares such values by their JSON text, so up to a double's range they make it miss, and a
log line names the pod's type int, not float). The server
answers from the glance only what the memo answers (an answer remembered, a pod that asks
for nothing, a review that is not a CREATE); for anything else, or a body the glance cannot
read, the body is parsed whole and reviewed as before, so a malformed review gets the same
refusal whichever way it came.

One difference is left, as Go's decoder leaves it: a number beyond a double's range is not
refused, where the whole parse refuses the body as not JSON. That is any such number (1e400)
in a field the glance skips, and an integer of 309 to 4300 digits in a field it decodes,
which msgspec reads exactly (longer ones it refuses). Reading such an integer costs more
than linear time in its digits (about 0.1 ms at 4300), which that cap and the size of the
bodies glanced at (INLINE_BODY, 32 KiB: seven such numbers) bound to under a millisecond a
body. The API server encodes a pod from Go types and never sends one; a client that does
gets the answer the rest of its review asks for (the memo's, or that a pod asking for
nothing or a review that is not a CREATE is let through).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

# Every field is Any, so that a field of any JSON type decodes as orjson would decode it and
# the engine, not the schema, says what is wrong with it. Only the levels above the fields
# that are read are typed: the structure the skipping hangs on.


class _Metadata(Struct):
    """What is read of a pod's metadata: the maps the composer reads and sets (labels and
    annotations, `compose/view.py`) and the names the log line shows (`summarize`)."""

    name: Any = UNSET
    generateName: Any = UNSET
    namespace: Any = UNSET
    labels: Any = UNSET
    annotations: Any = UNSET


class _Pod(Struct):
    metadata: _Metadata | UnsetType | None = UNSET
    spec: Any = UNSET  # whole: a rule may look up any list in it


class _Request(Struct):
    uid: Any = UNSET
    kind: Any = UNSET
    operation: Any = UNSET
    object: _Pod | UnsetType | None = UNSET


class _Review(Struct):
    apiVersion: Any = UNSET
    kind: Any = UNSET
    request: _Request | UnsetType | None = UNSET


# What each typed level holds, to turn it back into the plain dicts the engine reads.
GLANCED: dict[str, tuple[str, ...]] = {
    "review": _Review.__struct_fields__,
    "request": _Request.__struct_fields__,
    "pod": _Pod.__struct_fields__,
    "metadata": _Metadata.__struct_fields__,
}

_DECODER = msgspec.json.Decoder(_Review)


def _plain(value: Any) -> Any:
    """A typed level as the dict orjson would have made of its fields (absent ones left out)."""
    if not isinstance(value, Struct):
        return value
    plain: dict[str, Any] = {}
    for name in value.__struct_fields__:
        field = getattr(value, name)
        if field is not UNSET:
            plain[name] = _plain(field)
    return plain


def glance(body: bytes) -> dict[str, Any] | None:
    """The review's read fields as plain data, as `BodyReader.parse` would give them; None
    when the glance cannot vouch for that (the caller then parses the body whole).

    Strings the glance skips are not decoded, so a body that is not UTF-8 throughout is
    left to the whole parse, which refuses it."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        review = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    plain: dict[str, Any] = _plain(review)
    return plain
