"""The pod as the composer sees it: a read-only view that answers a few questions and records
each question with its answer.

`PodPatch` reads the original pod through a `PodView` only, and the merge modes read the pod
through `PodPatch` only. A composition is therefore a function of the secret requests and of
the answers in `PodView.reads`: a later pod that gives the same answers to the same
questions gets the same patch. That is what the review memo relies on (`core/memo.py`), and
it needs no second description of what the composer looked at: asking the recorded questions
of the new pod, through this same class, is the check.

The answers say no more than the composer uses: where a name sits in a list, not the items;
whether a label is the string being set, not what else it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final, NamedTuple, Protocol

from ..errors import InputError

# ("volumes",) is spec.volumes; ("initContainers", 2, "env") is spec.initContainers[2].env,
# the index counted in the pod as it arrived.
Key = tuple[str] | tuple[str, int, str]
Question = tuple[Any, ...]

NO_METADATA: Final = "no-metadata"  # metadata is absent or not an object
ABSENT: Final = "absent"
PRESENT: Final = "present"
NOT_A_STRING: Final = ("not a string",)
# The lists that share one namespace of container names, in the order `container_name` answers.
CONTAINER_ORDER: Final = ("initContainers", "ephemeralContainers", "containers")


class JsonValue(NamedTuple):
    """A value that is not a string, as an answer: equal to another when their JSON texts are
    (`text` None, for a value that is not JSON, is equal to none)."""

    text: str | None
    value: Any

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonValue) and self.text is not None and self.text == other.text

    def __ne__(self, other: object) -> bool:  # tuple's own would compare `value` too
        return not self == other

    def __hash__(self) -> int:
        return hash(self.text)


class TooManyItems(InputError):
    """A list the patch would change is longer than the configured cap."""


class PodReader(Protocol):
    """What a composition may ask of the pod as it arrived (see `PodView` for the answers)."""

    def length(self, key: Key, shown: Key | None = None) -> int | None: ...

    def positions(self, key: Key, field: str, value: str) -> tuple[int, ...]: ...

    def container_name(self, name: str) -> tuple[tuple[int, ...], ...]: ...

    def item_field(self, key: Key, index: int, field: str) -> Any: ...

    def map_state(self, map_name: str) -> str: ...

    def item_json(self, key: Key, index: int) -> str | None: ...

    def map_value(self, map_name: str, key: str) -> str | tuple[str] | None: ...


def _index(key: tuple[str, int, str], shown: Key | None) -> int:
    """The container's index to name in a message: as the patch knows it, if given."""
    return shown[1] if shown is not None and len(shown) == 3 else key[1]


def canonical_json(value: Any) -> str | None:
    """`value` as JSON text with sorted keys, equal for equal JSON values (true is not 1);
    None for a value that is not JSON (a Python caller's pod) or is nested past Python's
    recursion limit (a pod's field 990 levels deep, which the API server lets through),
    equal to nothing."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return None


def as_stored(value: Any) -> Any:
    """`value` as the API server stores it: Kubernetes' Go types drop an empty string, list or
    map, and a null (`omitempty`), so `{name: X, value: ""}` comes back as `{name: X}`. A pod
    reviewed again has been through that; what secretpatch renders has not."""
    if isinstance(value, Mapping):
        kept = {key: as_stored(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ("", None, [], {})}
    if isinstance(value, list):
        return [as_stored(item) for item in value]
    return value


def describe(key: Key) -> str:
    if len(key) == 1:
        return f"spec.{key[0]}"
    return f"spec.{key[0]}[{key[1]}].{key[2]}"


def escape(segment: str) -> str:
    """RFC 6901: '~' and '/' inside a path segment."""
    if "~" not in segment and "/" not in segment:
        return segment
    return segment.replace("~", "~0").replace("/", "~1")


def pointer(key: Key) -> str:
    """The JSON pointer of the list at `key`, for a patch operation."""
    if len(key) == 1:
        return "/spec/" + escape(key[0])
    return f"/spec/{escape(key[0])}/{key[1]}/{escape(key[2])}"


class PodView:
    """Answers about one pod, each recorded in `reads` (question to answer, in the order
    first asked). A question the pod cannot answer (a list that is not a list, a container
    that is not an object) raises InputError; such a composition is never remembered."""

    def __init__(self, pod: Mapping[str, Any], max_items: int | None = None) -> None:
        spec = pod.get("spec")
        if not isinstance(spec, Mapping):
            raise InputError("the pod has no spec object")
        self._spec = spec
        self._metadata = pod.get("metadata")
        self._max_items = max_items
        self.reads: dict[Question, Any] = {}
        self._indexes: dict[tuple[Key, str], dict[str, tuple[int, ...]]] = {}

    def ask(self, question: Question) -> Any:
        """The answer to a recorded question (what the memo replays)."""
        reads = self.reads
        if question in reads:
            return reads[question]
        answer = self.answer(question)
        reads[question] = answer
        return answer

    def answer(self, question: Question) -> Any:
        """The answer to a question, not recorded: what the memo compares with a record."""
        try:
            answer_of = _ANSWERS[question[0]]
        except KeyError:
            raise ValueError(f"PodView has no question {question[0]!r}") from None
        return answer_of(self, *question[1:])

    def length(self, key: Key, shown: Key | None = None) -> int | None:
        """The length of the list at `key`; None when it is absent. An error names the list
        as `shown` (its key in the pod as mutated so far), when that differs."""
        question = ("length", key)
        if question in self.reads:
            answer: int | None = self.reads[question]
            return answer
        answer = self._length(key, shown or key)
        self.reads[question] = answer
        return answer

    def positions(self, key: Key, field: str, value: str) -> tuple[int, ...]:
        """Where in the list at `key` the objects whose `field` is `value` are."""
        answer: tuple[int, ...] = self.ask(("positions", key, field, value))
        return answer

    def container_name(self, name: str) -> tuple[tuple[int, ...], ...]:
        """Where the containers named `name` are, in each list of CONTAINER_ORDER: one
        question where `positions` would be three (every appended init container asks it)."""
        answer: tuple[tuple[int, ...], ...] = self.ask(("container-name", name))
        return answer

    def item_field(self, key: Key, index: int, field: str) -> Any:
        """The value of `field` of the item at `index` (None for a non-object or no field)."""
        return self.ask(("item-field", key, index, field))

    def item_json(self, key: Key, index: int) -> str | None:
        """The item at `index` of the list at `key` as stored (`as_stored`), in canonical JSON
        text (sorted keys); None when it is not JSON: what a re-invoked pod's items are
        compared with."""
        answer: str | None = self.ask(("item-json", key, index))
        return answer

    def map_state(self, map_name: str) -> str:
        """NO_METADATA, ABSENT or PRESENT for metadata.labels or metadata.annotations."""
        answer: str = self.ask(("map-state", map_name))
        return answer

    def map_value(self, map_name: str, key: str) -> str | tuple[str] | None:
        """The string at `key` of a present metadata map; None when the key is absent,
        NOT_A_STRING when its value is something else."""
        answer: str | tuple[str] | None = self.ask(("map-value", map_name, key))
        return answer

    # The answers, computed from the pod. Nothing else in the composer reads it.

    def _list(self, key: Key, shown: Key | None = None) -> Any:
        if len(key) == 1:
            return self._spec.get(key[0])
        containers = self._spec.get(key[0])
        if not isinstance(containers, list) or not 0 <= key[1] < len(containers):
            raise InputError(f"spec.{key[0]}[{_index(key, shown)}] does not exist")
        container = containers[key[1]]
        if type(container) is not dict and not isinstance(container, Mapping):
            raise InputError(f"spec.{key[0]}[{_index(key, shown)}] is not an object")
        return container.get(key[2])

    def _length(self, key: Key, shown: Key | None = None) -> int | None:
        value = self._checked(key, shown)
        return None if value is None else len(value)

    def _checked(self, key: Key, shown: Key | None = None) -> list[Any] | None:
        """The list at `key` (None when absent), refused when it is not a list or too long."""
        value = self._list(key, shown)
        if value is None:
            return None
        if type(value) is not list and not isinstance(value, list):
            raise InputError(f"{describe(shown or key)} is not a list")
        if self._max_items is not None and len(value) > self._max_items:
            cap = f"secretpatch.limits.maxListItems is {self._max_items}"
            raise TooManyItems(f"{describe(shown or key)} has {len(value)} items; {cap}")
        return value

    def _positions(self, key: Key, field: str, value: str) -> tuple[int, ...]:
        return self.index(key, field).get(value, ())

    def index(self, key: Key, field: str) -> Mapping[str, tuple[int, ...]]:
        """Where each string value of `field` sits in the list at `key`: one pass per list
        and field, kept privately (the record holds only the questions asked), and what a
        record checks its questions against all at once."""
        index = self._indexes.get((key, field))
        if index is None:
            index = {}
            items = self._checked(key)
            if items is not None:
                for position, item in enumerate(items):
                    if type(item) is dict or isinstance(item, Mapping):
                        text = item.get(field)
                        if type(text) is str:
                            before = index.get(text)
                            index[text] = (position,) if before is None else (*before, position)
            self._indexes[(key, field)] = index
        return index

    def any_of(self, key: Key, field: str, values: AbstractSet[str]) -> bool:
        """Whether an object in the list at `key` has a `field` that is one of `values`: what
        a record asks of the names its composition found nowhere (most of them, for a pod
        seen before). One pass that builds nothing and stops at the first found, where
        `index` places every item of the list; the answer is what `index` gives."""
        items = self._checked(key)
        if items is None:
            return False
        for item in items:
            if type(item) is dict or isinstance(item, Mapping):
                text = item.get(field)
                if type(text) is str and text in values:
                    return True
        return False

    def _container_name(self, name: str) -> tuple[tuple[int, ...], ...]:
        return tuple(self._positions((list_name,), "name", name) for list_name in CONTAINER_ORDER)

    def _item_field(self, key: Key, index: int, field: str) -> Any:
        item = self._list(key)[index]
        value = item.get(field) if isinstance(item, Mapping) else None
        if value is None or type(value) is str:
            return value
        # Compared exactly when replayed: JSON text tells true from 1; not JSON, equal to none.
        return JsonValue(canonical_json(value), value)

    def _item_json(self, key: Key, index: int) -> str | None:
        try:
            stored = as_stored(self._list(key)[index])
        except RecursionError:  # nested past the recursion limit: equal to nothing
            return None
        return canonical_json(stored)

    def _map_state(self, map_name: str) -> str:
        if not isinstance(self._metadata, Mapping):
            return NO_METADATA
        current = self._metadata.get(map_name)
        if current is None:
            return ABSENT
        if not isinstance(current, Mapping):
            raise InputError(f"metadata.{map_name} is not an object")
        return PRESENT

    def _map_value(self, map_name: str, key: str) -> str | tuple[str] | None:
        current = self._metadata[map_name]  # type: ignore[index]  # asked only when PRESENT
        if key not in current:
            return None
        value = current[key]
        return value if type(value) is str else NOT_A_STRING


# Each kind of question and what answers it (a table built once, not per view: a view is
# made for every review the memo is asked about).
_ANSWERS: dict[str, Callable[..., Any]] = {
    "length": PodView._length,
    "positions": PodView._positions,
    "container-name": PodView._container_name,
    "item-field": PodView._item_field,
    "item-json": PodView._item_json,
    "map-state": PodView._map_state,
    "map-value": PodView._map_value,
}
