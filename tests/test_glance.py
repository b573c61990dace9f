"""The server's glance at a review body (webhook/glance.py): it decodes what asking the memo
reads, as the whole parse decodes it, and the server answers every body as it did when it
parsed every body whole."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from secretpatch import Engine
from secretpatch.webhook.app import INLINE_BODY, WebhookApp
from secretpatch.webhook.bodies import BodyReader, Malformed, summarize
from secretpatch.webhook.glance import GLANCED, glance

from .conftest import admission_review, flyte_pod, post_to_app, remembering_at_first_sight
from .strategies import json_scalars, reviews, text
from .test_properties import SETTINGS

# The levels the glance types, and the field of each that holds the next.
BELOW = {"review": ("request", "request"), "request": ("object", "pod"), "pod": ("metadata", "metadata")}
EXTRA = ["managedFields", "status", "ownerReferences", "userInfo", "oldObject", "uid", "x"]


class Unglanceable(Exception):
    pass


def glanced(value: Any, level: str = "review") -> dict[str, Any]:
    """What the glance should give for a parsed body: each level's read fields, the last of
    repeated keys (as orjson keeps), a typed level that is neither an object nor null
    refused."""
    if type(value) is not dict:
        raise Unglanceable
    kept = {name: value[name] for name in GLANCED[level] if name in value}
    below = BELOW.get(level)
    if below is not None and kept.get(below[0]) is not None:
        kept[below[0]] = glanced(kept[below[0]], below[1])
    return kept


def as_text(value: Any) -> str:
    """JSON text of `value`, with objects given as lists of pairs (`Pairs`) written with
    their repeated keys."""
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{as_text(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(as_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


class Pairs:
    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


# Numbers orjson and msgspec read alike: integers within 64 bits, finite floats. (Beyond 64
# bits orjson makes a float and msgspec an int; see test_integers_beyond_64_bits...)
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)


def level(name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """An object at `name`'s level with its read fields, fields the glance skips, and keys
    repeated; now and then not an object at all."""
    below = BELOW.get(name)
    keys = st.sampled_from([*GLANCED[name], *EXTRA])
    member: st.SearchStrategy[tuple[str, Any]] = st.tuples(keys, values)
    if below is not None:
        member = st.one_of(member, st.tuples(st.just(below[0]), level(below[1], depth + 1)))
    objects = st.lists(member, max_size=8).map(Pairs)
    return st.one_of(objects, objects, objects, values) if depth else objects


@SETTINGS
@given(level("review"))
def test_the_glance_decodes_the_read_fields_as_the_whole_parse_does(document: Any) -> None:
    body = as_text(document).encode()
    parsed = orjson.loads(body)
    try:
        expected: dict[str, Any] | None = glanced(parsed)
    except Unglanceable:
        expected = None
    result = glance(body)
    if repeats(document):
        # A typed field is checked at each of its keys: a repeat that is not an object
        # before the last that is leaves the body to the whole parse.
        assert result is None or result == expected
    else:
        assert result == expected


def repeats(value: Any) -> bool:
    """Whether a typed level repeats the key of the level below it."""
    if not isinstance(value, Pairs):
        return False
    keys = [key for key, _ in value.pairs]
    below = {field for field, _ in BELOW.values()}
    return any(keys.count(key) > 1 for key in below) or any(repeats(v) for _, v in value.pairs)


@pytest.mark.parametrize(
    ("number", "parsed", "decoded"),
    [(b"123456789012345678901234567890", 1.2345678901234568e29, 123456789012345678901234567890)],
)
def test_integers_beyond_64_bits_are_the_one_value_read_otherwise(
    number: bytes, parsed: Any, decoded: Any
) -> None:
    """orjson reads them as floats, msgspec as ints. Both are `not a string` to the memo, and
    compared by their JSON text where their value counts, so such a pod is composed afresh,
    never given another pod's answer (test_every_body_gets_the_answer_a_whole_parse_gives)."""
    body = b'{"request": {"uid": ' + number + b"}}"
    assert orjson.loads(body)["request"]["uid"] == parsed
    assert glance(body) == {"request": {"uid": decoded}}


def task_review(name: str, **changes: Any) -> dict[str, Any]:
    pod = flyte_pod({"group": "db", "group_version": "1"}, {"group": "api", "group_version": "2"})
    pod["metadata"]["name"] = name
    pod["metadata"]["managedFields"] = [
        {
            "manager": "flytepropeller",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:flyte.secrets/s0": {}}}},
        }
    ]
    review = admission_review(pod, uid=f"uid-{name}")
    for path, value in changes.items():
        review["request"]["object"]["metadata"][path] = value
    return review


class Counting(BodyReader):
    """A BodyReader that counts the whole parses it is asked for."""

    parsed = 0

    def parse(self, body: bytes) -> Any:
        self.parsed += 1
        return super().parse(body)


def app_counting(engine: Engine | None = None) -> tuple[WebhookApp, Counting]:
    app = WebhookApp(
        engine or remembering_at_first_sight(Engine.from_config(None)), review_log=lambda _: None
    )
    reader = Counting(app.engine)
    app.reader = reader
    return app, reader


def test_a_remembered_pod_is_answered_from_the_glance_and_a_new_one_parsed_once() -> None:
    app, reader = app_counting()
    first = orjson.dumps(task_review("a"))
    assert post_to_app(app, first)[0] == 200
    assert reader.parsed == 1, "the memo had no answer: the body was parsed whole, once"
    sibling = orjson.dumps(task_review("b", managedFields=[{"manager": "other"}] * 50))
    status, body = post_to_app(app, sibling)
    assert reader.parsed == 1, "answered from the memo with no whole parse"
    assert status == 200
    fresh = Engine.from_config(None).review(orjson.loads(sibling))
    assert orjson.loads(body) == fresh


@pytest.mark.parametrize(
    ("managed", "why"),
    [
        (b'"\xff\xfe"', "not UTF-8 where the glance skips"),
        (b'"\\ud800"', "a lone surrogate"),
        (b"[" * 200 + b"]" * 200, "nested deeper than the cap"),
    ],
)
def test_a_body_only_the_whole_parse_can_judge_is_refused_as_before(managed: bytes, why: str) -> None:
    engine = remembering_at_first_sight(
        Engine.from_config({"secretpatch": {"limits": {"maxJsonDepth": 100}}})
    )
    app, reader = app_counting(engine)
    post_to_app(app, orjson.dumps(task_review("a")))
    body = orjson.dumps(task_review("b", managedFields=None)).replace(
        b'"managedFields":null', b'"managedFields":' + managed
    )
    status, text = post_to_app(app, body)
    assert status == 400, why
    with pytest.raises(Malformed) as refused:
        reader.parse(body)
    assert json.loads(text)["message"] == str(refused.value)


BEYOND_A_DOUBLE = {
    "1e400 where the glance skips": (b'"managedFields":null', b'"managedFields":1e400'),
    "a 400-digit integer where it decodes": (b'"labels":{', b'"labels":{"x":' + b"9" * 400 + b","),
}


@pytest.mark.parametrize("where", BEYOND_A_DOUBLE.values(), ids=BEYOND_A_DOUBLE.keys())
def test_a_number_beyond_a_double_is_not_refused_by_the_glance(where: tuple[bytes, bytes]) -> None:
    """The one difference glance.py names (Go's decoder does not refuse these either): the
    memo's answer, where the whole parse refuses the body as not JSON."""
    app, reader = app_counting()
    post_to_app(app, orjson.dumps(task_review("a")))
    body = orjson.dumps(task_review("b", managedFields=None)).replace(*where)
    status, text = post_to_app(app, body)
    assert (status, reader.parsed) == (200, 1)
    assert json.loads(text)["response"]["patch"]
    with pytest.raises(Malformed, match="not JSON"):
        reader.parse(body)


def test_the_costliest_body_the_glance_reads_is_bounded_by_the_number_cap_and_the_inline_size() -> None:
    """Decoding a decimal integer costs more than linear time in its digits, so the glance's
    work on a body is bounded by the longest integer msgspec reads (4300 digits: one more and
    it refuses, and the body is parsed whole) times how many fit in a body it glances at
    (INLINE_BODY; larger bodies are never glanced at). The worst case, a body of such numbers
    at that size, is answered as the memo answers it."""
    longest = b"9" * 4300
    assert glance(b'{"request": {"uid": ' + longest + b"}}") == {"request": {"uid": int(longest)}}
    assert glance(b'{"request": {"uid": ' + longest + b"9}}") is None
    app, reader = app_counting()
    post_to_app(app, orjson.dumps(task_review("a")))
    body = orjson.dumps(task_review("b", managedFields=None))
    room = INLINE_BODY - len(body)
    numbers = b",".join([longest] * (room // (len(longest) + 1)))
    body = body.replace(b'"labels":{', b'"labels":{"x":[' + numbers + b"],", 1)
    assert INLINE_BODY - len(longest) <= len(body) <= INLINE_BODY
    status, text = post_to_app(app, body)
    assert (status, reader.parsed) == (200, 1)
    assert json.loads(text)["response"]["patch"]


def sequences() -> st.SearchStrategy[list[bytes]]:
    """Reviews as bodies, each now and then sent again with another name and uid and with
    fields the glance skips changed, so that the memo is asked about siblings."""

    def bodies(documents: list[Any], extras: list[Any]) -> Iterator[bytes]:
        for number, (document, extra) in enumerate(zip(documents, extras, strict=False)):
            yield json.dumps(document).encode()
            if isinstance(document, dict) and isinstance(document.get("request"), dict):
                sibling = copy.deepcopy(document)
                sibling["request"]["uid"] = f"sibling-{number}"
                pod = sibling["request"].get("object")
                if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
                    pod["metadata"]["managedFields"] = extra
                    pod["status"] = extra
                yield json.dumps(sibling).encode()

    return st.builds(
        lambda documents, extras: list(bodies(documents, extras)),
        st.lists(reviews, min_size=1, max_size=4),
        st.lists(st.one_of(json_scalars, st.lists(json_scalars, max_size=3)), min_size=4, max_size=4),
    )


@SETTINGS
@given(sequences())
def test_every_body_gets_the_answer_a_whole_parse_gives(bodies: list[bytes]) -> None:
    """Two servers with memos that keep every answer, one that glances and one that always
    parses whole, answer the same bodies byte for byte (refusals and their messages too)."""
    glancing, _ = app_counting()
    whole, _ = app_counting()
    whole.reader.glance = lambda body: None  # type: ignore[method-assign]
    for body in bodies:
        assert post_to_app(glancing, body) == post_to_app(whole, body)


class Reads(dict[str, Any]):
    """A level of a review that records the keys read of it."""

    def __init__(self, level: str, value: dict[str, Any], read: dict[str, set[str]]) -> None:
        super().__init__(value)
        self.level, self.read = level, read

    def _note(self, key: Any) -> None:
        self.read.setdefault(self.level, set()).add(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self._note(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._note("*every key*")
        return super().__iter__()

    def keys(self) -> Any:
        self._note("*every key*")
        return super().keys()

    def items(self) -> Any:
        self._note("*every key*")
        return super().items()

    def values(self) -> Any:
        self._note("*every key*")
        return super().values()


def recording(review: dict[str, Any], read: dict[str, set[str]]) -> Reads:
    request, pod = review["request"], review["request"]["object"]
    pod = Reads("pod", {**pod, "metadata": Reads("metadata", pod["metadata"], read)}, read)
    return Reads("review", {**review, "request": Reads("request", {**request, "object": pod}, read)}, read)


@pytest.mark.parametrize(
    "case",
    ["answered from the memo", "not in the memo", "refused", "no secrets", "not a CREATE"],
)
def test_asking_the_memo_reads_nothing_the_glance_leaves_out(case: str) -> None:
    """What `Engine.remembered_outcome` and the log line read of a review, level by level,
    is within what the glance decodes (webhook/glance.py): a composer or memo that starts
    reading another field of the pod has to be glanced at too."""
    engine = remembering_at_first_sight(Engine.from_config(None))
    review = task_review("a")
    engine.review(copy.deepcopy(review))
    if case == "not in the memo":
        review["request"]["object"]["spec"]["volumes"] = [{"name": "another", "emptyDir": {}}]
    elif case == "refused":
        review["request"]["object"]["metadata"]["annotations"]["flyte.secrets/s0"] = 7
    elif case == "no secrets":
        review["request"]["object"]["metadata"]["annotations"] = {}
    elif case == "not a CREATE":
        review["request"]["operation"] = "UPDATE"
    read: dict[str, set[str]] = {}
    outcome = engine.remembered_outcome(recording(review, read))
    assert (outcome is None) == (case == "not in the memo")
    if outcome is not None:
        summarize(outcome)
    for level_name, keys in read.items():
        assert keys <= set(GLANCED[level_name]), f"{level_name} read {keys - set(GLANCED[level_name])}"
    assert read["metadata"] if case != "not a CREATE" else read["request"]
