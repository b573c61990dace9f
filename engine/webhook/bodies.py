"""A review's request body, from bytes to what the server sends and records.

The same steps run in the server's worker thread and in its review process (worker.py), so
they live here, away from HTTP: the JSON limits checked before and after parsing, the
engine's review with its deadline, and the plain-data `Summary` that comes back, with every
name from the pod made safe for a log line.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, NamedTuple

import orjson

from ..core.admission import Denial, Outcome, Result
from ..core.errors import DeadlineExceeded, InputError, RefusalCode, printable, quote_value
from ..core.injection import REPLAY_WINDOW
from ..core.jsontypes import is_object
from ..core.limits import PARSER_DEPTH
from ..core.requests import secret_annotations
from ..core.runtime import Engine
from .glance import glance

MAX_REVIEW_TIMEOUT = 30.0  # the API server's own maximum for timeoutSeconds
_GO_DURATION = re.compile(r"(?:([0-9]+(?:\.[0-9]*)?)(h|m|s|ms|us|\u00b5s|ns))+")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(h|ms|m|s|us|\u00b5s|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}


class Malformed(Exception):
    """The call is not a well-formed review; the message says why (HTTP 400)."""


class Overloaded(Exception):
    """The server cannot take this review now; the message says why (HTTP 503)."""


class Summary(NamedTuple):
    """What the server sends and records of one review: the response's JSON, and the
    names, result and denial code for the metrics and the log line. Plain data, so that a
    review answered in another process comes back as it is."""

    response: bytes
    uid: str
    result: Result
    secrets: tuple[str, ...] = ()
    denial: Denial | None = None
    namespace: str | None = None
    pod: str | None = None
    admitted: tuple[RefusalCode, ...] = ()  # refusals of a pod admitted unchanged (onRefusal)


def summarize(outcome: Outcome) -> Summary:
    metadata = outcome.request.pod.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return Summary(
        orjson.dumps(outcome.response),
        outcome.request.uid,
        outcome.result,
        outcome.secrets,
        outcome.denial,
        log_name(metadata.get("namespace")),
        log_name(metadata.get("name") or metadata.get("generateName")),
        outcome.admitted,
    )


_NOT_ITEM_BYTES = bytes(byte for byte in range(256) if byte not in b",[{")


class BodyReader:
    """Bodies to documents, and documents to summaries, with the engine's JSON limits:
    the same steps whether a review runs in the server's worker thread or in a process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_depth = engine.config.limits.maxJsonDepth
        self.max_items = engine.config.limits.maxJsonItems

    def check(self, body: bytes) -> None:
        """What costs no parsing: every item but the first of an object or array follows a
        comma, and every object or array opens with a bracket, so commas and opening
        brackets together bound the parsed document's items (50 to 100 bytes each) before
        it exists."""
        if len(body) <= self.max_items:
            return  # an item takes a byte at least: nothing to count
        items = self.items(body)
        if items > self.max_items:
            raise Malformed(self.too_many(items))

    @staticmethod
    def items(data: bytes) -> int:
        # One pass that keeps only those three bytes: a third of the time of three counts.
        return len(data.translate(None, _NOT_ITEM_BYTES))

    def too_many(self, items: int) -> str:
        return (
            f"the body holds {items} JSON items or more; secretpatch.limits.maxJsonItems is {self.max_items}"
        )

    def parse(self, body: bytes) -> Any:
        too_deep_message = (
            f"the body nests JSON deeper than the limit; secretpatch.limits.maxJsonDepth is {self.max_depth}"
        )
        self.check(body)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            deep = "depth limit exceeded" in str(exc)
            raise Malformed(
                too_deep_message if deep else f"the body is not JSON: {printable(str(exc))}"
            ) from None
        # orjson enforces the default (its own limit). A stricter cap costs a walk, done only
        # when the body has more brackets than the cap allows levels.
        strict = self.max_depth < PARSER_DEPTH
        if (
            strict
            and body.count(b"{") + body.count(b"[") > self.max_depth
            and too_deep(document, self.max_depth)
        ):
            raise Malformed(too_deep_message)
        return document

    def glance(self, body: bytes) -> dict[str, Any] | None:
        """The fields of the review that asking the memo reads (`glance.py`), within the same
        limits as `parse`; None when only the whole parse can tell (a stricter depth cap than
        the parser's own, with more brackets than it allows levels)."""
        self.check(body)
        if self.max_depth < PARSER_DEPTH and body.count(b"{") + body.count(b"[") > self.max_depth:
            return None
        return glance(body)

    def remembered(self, body: bytes) -> tuple[Outcome | None, Any]:
        """The outcome of a review that costs no composing (`Engine.remembered_outcome`), else
        None and the parsed body to review. The memo is asked with what a glance at the body
        decodes (`glance.py`); the body is parsed whole only when that gives no answer, and
        then a refusal, or a body the glance could not read, is worked out again from it, so
        that its message is the one a whole parse gives."""
        glanced = self.glance(body) if self.engine.memo is not None else None
        asked = False  # whether the memo was asked, on the same fields, and had no answer
        if glanced is not None:
            try:
                outcome = self.engine.remembered_outcome(glanced)
            except InputError:
                outcome = None
            else:
                if outcome is None:
                    asked = True
                elif outcome.result != "denied":
                    return outcome, None
        document = self.parse(body)
        return (None if asked else self.engine.remembered_outcome(document)), document

    def review_document(self, document: Any, deadline: float) -> Summary:
        return summarize(self.engine.review_outcome(document, deadline=deadline))

    def review_body(self, body: bytes, deadline: float) -> Summary:
        if time.monotonic() > deadline:
            raise DeadlineExceeded("the review passed its deadline before it started")
        return self.review_document(self.parse(body), deadline)


# What a review costs, roughly, on one core of a slow machine: each secret about 60 us, and
# about 2 us more for each container it may merge into; a pod that seems to carry an
# injection already is composed again from each of its last init containers (the replay).
SECRET_US = 60
CONTAINER_US = 2


def estimated_cost_us(document: Any) -> int:
    """About how many microseconds reviewing this CREATE review's pod may take, from its
    secret annotations, containers and init containers (a very large number when the
    document cannot tell: the engine then says what is wrong)."""
    try:
        pod = document["request"]["object"]
        if not is_object(pod):
            return 0
        secrets = len(secret_annotations(pod))
        spec = pod.get("spec") or {}
        containers = len(spec.get("containers") or ())
        init = len(spec.get("initContainers") or ())
    except (TypeError, LookupError, AttributeError, InputError):
        return 1 << 30
    return secrets * (SECRET_US + CONTAINER_US * (containers + init)) * (1 + min(REPLAY_WINDOW, init))


def review_timeout(query: bytes, default: float) -> float:
    """The time a review may take: the API server's `?timeout=` (a Go duration such as
    `10s`, the time it will wait, rounded up to a second) less a tenth so that the answer
    arrives while it still waits; `default` when there is none."""
    if len(query) <= 64:  # the API server sends the same few: worked out once each
        return _known_timeout(query, default)
    return _timeout(query, default)


@functools.lru_cache(maxsize=64)
def _known_timeout(query: bytes, default: float) -> float:
    return _timeout(query, default)


def _timeout(query: bytes, default: float) -> float:
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name != b"timeout":
            continue
        text = value.decode("latin-1")
        if len(text) > 32 or not _GO_DURATION.fullmatch(text):
            break
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in _GO_PART.findall(text))
        if seconds > 0:
            return min(seconds, MAX_REVIEW_TIMEOUT) * 0.9
    return default


def log_name(value: Any) -> Any:
    """A pod name or namespace for a log line: as it is when it could be a Kubernetes name
    (at most 253 printable ASCII characters), else quoted, escaped and shortened."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) <= 253 and value.isascii() and value.isprintable():
            return value
        return quote_value(value)
    return f"<{type(value).__name__}>"


def too_deep(document: Any, limit: int) -> bool:
    """Whether `document` nests objects and arrays more than `limit` deep: level by level,
    without recursion, looking only at containers."""
    level = [document] if type(document) is dict or type(document) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [child for child in children if type(child) is dict or type(child) is list]
        level = below
    return False
