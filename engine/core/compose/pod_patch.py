"""RFC 6902 operations composed directly against the original pod.

`PodPatch` records operations in the order they are decided and keeps, beside them, what it
has done to each list (items put first, original items removed, items appended), so that
every later operation names the right index. It reads the original pod only through a
`PodView`, a question at a time: the pod is never copied, modified or diffed, and what the
composition depended on is exactly `view.reads`. Lists that do not exist yet are created
with one `add` holding the first item; appends use `/-`; prepend-replace is a `remove` of the
old index followed by an `add` at `/0`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..jsontypes import PatchOp, copy_json
from .overlay import ListOverlay
from .view import (
    ABSENT,
    CONTAINER_ORDER,
    NO_METADATA,
    PRESENT,
    JsonValue,
    Key,
    PodReader,
    PodView,
    TooManyItems,
    as_stored,
    canonical_json,
    describe,
    escape,
    pointer,
)

# Containers and init containers share one namespace of names in a pod.
CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})

__all__ = ["CONTAINER_LISTS", "Changed", "Key", "PodPatch", "TooManyItems", "describe"]


class Changed(Exception):
    """A replay (see PodPatch) would change the pod: it does not already carry the injection."""


class PodPatch:
    """`copy_items=False` lets operations share rendered items; only for callers that
    serialise the patch at once and hand out no reference to it (Engine.review).

    The merge modes read the pod through `length`, `index_of`, `index_of_path`,
    `item_field` and `container_name_owner` only, and change it through `add`, `remove`
    and `set_keys`. This class reads the pod only through `reader`, typed as the
    `PodReader` protocol, so the type checker holds it to the questions the view records;
    `view` is the same object, kept for its record (`view.reads`).

    A replay (`replaying=True`, sharing the first composition's `view` so that the memo
    records its questions too) composes as if the pod already carried the injection: an
    append finds the item it would add already in the pod, as written, and is counted in
    `matched`, or raises Changed (the injection is not there). Other fragments merge as
    usual, filling what containers added since lack; `unchanged()` says at the end whether
    that changed anything."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        copy_items: bool = True,
        max_items: int | None = None,
        track_sources: bool = True,
        view: PodView | None = None,
        replaying: bool = False,
        max_ops: int | None = None,
    ) -> None:
        self.view = PodView(pod, max_items) if view is None else view
        self.reader: PodReader = self.view
        self.replaying = replaying
        self._max_ops = max_ops
        self.matched: dict[Key, int] = {}
        # A pod-spec item a `once` fragment had to add (the secrets volume): then the pod does
        # not carry the injection, and no replay is tried.
        self.added_singleton = False
        self._max_items = max_items
        self._lists: dict[tuple[Any, ...], ListOverlay] = {}
        # The same lists by their key as the modes name them (indices as mutated so far),
        # forgotten when a container list's items change places.
        self._by_key: dict[Key, ListOverlay] = {}
        self._maps: dict[
            str, tuple[dict[str, Any], bool]
        ] = {}  # keys known, and whether this patch made the map
        self._metadata_added = False
        self.ops: list[PatchOp] = []
        # Provenance: for each operation, whatever the caller set as `source` when it was made.
        self.track_sources = track_sources
        self.sources: list[Any] = []
        self.source: Any = None
        self._copy_items = copy_items
        # Names added to container lists since the owners were first asked (see container_name_owner).
        self._owners: dict[str, str | None] | None = None

    # ---- lists -----------------------------------------------------------------------------

    def _state(self, key: Key) -> ListOverlay:
        """The list at `key` (a container's list is found through its container list)."""
        state = self._by_key.get(key)
        if state is not None:
            return state
        if len(key) == 1:
            identity: tuple[Any, ...] = key
            region, container = "", None
        else:
            region, container = self._locate((key[0],), key[1])
            added = region != "original"  # then `container` is the item, else its original index
            identity = (
                (key[0], "added", id(container), key[2]) if added else (key[0], region, container, key[2])
            )
        state = self._lists.get(identity)
        if state is None:
            state = self._load(key, region, container)
            self._lists[identity] = state
        self._by_key[key] = state
        return state

    def _load(self, key: Key, region: str, container: Any) -> ListOverlay:
        """The list at `key`, as it arrived; for a container's list, the container is where
        `_locate` found it (`region`, and the item or its original index)."""
        if len(key) == 1:
            return ListOverlay(self.reader.length(key), key)
        if region == "original":
            source: Key = (key[0], container, key[2])
            return ListOverlay(self.reader.length(source, shown=key), source)
        if not isinstance(container, Mapping):
            raise InputError(f"spec.{key[0]}[{key[1]}] is not an object")
        value = container.get(key[2])
        if value is not None and not isinstance(value, list):
            raise InputError(f"{describe(key)} is not a list")
        if value is not None and self._max_items is not None and len(value) > self._max_items:
            cap = f"secretpatch.limits.maxListItems is {self._max_items}"
            raise TooManyItems(f"{describe(key)} has {len(value)} items; {cap}")
        return ListOverlay(None if value is None else len(value), None, list(value or ()), holder=container)

    def _locate(self, key: Key, index: int) -> tuple[str, Any]:
        """Where the item at `index` of the mutated list is: ("front", item), ("original",
        its original index), ("owned", item) for a list inside an added item, or ("back", item)."""
        state = self._state(key)
        if index < len(state.front):
            return "front", state.front[index]
        index -= len(state.front)
        kept = (state.length or 0) - len(state.removed)
        if index < kept:
            if state.source is None:
                return "owned", [i for i in range(len(state.owned)) if i not in state.removed][index]
            for removed in state.removed:  # ascending: the original index after the gaps
                if removed <= index:
                    index += 1
            return "original", index
        index -= kept
        if index < len(state.back):
            return "back", state.back[index]
        raise InputError(f"{describe(key)}[{index}] does not exist")  # pragma: no cover

    def length(self, list_name: str) -> int:
        return self._state((list_name,)).size()

    def _original(self, state: ListOverlay, field_name: str, value: str) -> Sequence[int]:
        """Where the objects whose `field_name` is `value` are among the list's original items."""
        if state.source is None:
            return [
                i
                for i, item in enumerate(state.owned)
                if (type(item) is dict or isinstance(item, Mapping)) and item.get(field_name) == value
            ]
        return self.reader.positions(state.source, field_name, value)

    def _matches(
        self,
        key: Key,
        field_name: str,
        value: str,
        first: bool = False,
        original: Sequence[int] | None = None,
    ) -> list[int]:
        """The indices, in the mutated list, of the objects whose `field_name` (a name or a
        mount path) is `value`; with `first`, the first of them only; `original`, where they
        are among the original items if already known. (Called for every item
        of every secret: kept to plain loops and dict lookups.)"""
        state = self._by_key.get(key) or self._state(key)
        found: list[int] = []
        front = state.front
        for index, item in enumerate(front):
            if (type(item) is dict or isinstance(item, Mapping)) and item.get(field_name) == value:
                if first:
                    return [index]
                found.append(index)
        offset = len(front)
        if state.length:
            removed = state.removed
            for position in self._original(state, field_name, value) if original is None else original:
                place = position
                if removed:
                    if position in removed:
                        continue
                    place -= sum(1 for r in removed if r < position)
                if first:
                    return [offset + place]
                found.append(offset + place)
            offset += state.length - len(removed)
        if state.back:
            hits = state.in_back(field_name, value)
            if hits:
                if first:
                    return [offset + hits[0]]
                found.extend(offset + hit for hit in hits)
        return found

    def index_of(self, key: Key, name: str) -> int | None:
        """The index of the first object named `name` in the list at `key`, as mutated so far."""
        found = self._matches(key, "name", name, first=True)
        return found[0] if found else None

    def index_of_path(self, key: Key, path: str) -> int | None:
        """The index of the first mount at `path` in the list at `key`, as mutated so far."""
        found = self._matches(key, "mountPath", path, first=True)
        return found[0] if found else None

    def item_field(self, key: Key, index: int, field_name: str) -> Any:
        """`field_name` of the item at `index` of the list at `key`, as mutated so far."""
        region, item = self._locate(key, index)
        if region == "original":
            state = self._state(key)
            assert state.source is not None
            value = self.reader.item_field(state.source, item, field_name)
            return value.value if isinstance(value, JsonValue) else value
        if region == "owned":
            item = self._state(key).owned[item]
        return item.get(field_name) if isinstance(item, Mapping) else None

    def container_name_owner(self, name: str) -> str | None:
        """Where a container name is used (names are unique across all container lists):
        the last place of it in containers, else in ephemeral containers, else in init
        containers; a name appended since this was first asked, where it was appended.
        Answers are kept until items of a container list change places."""
        if self._owners is None:
            self._owners = {}
        elif name in self._owners:
            return self._owners[name]
        owner = None
        originals = self.reader.container_name(name)
        for list_name, original in reversed(tuple(zip(CONTAINER_ORDER, originals, strict=True))):
            places = self._matches((list_name,), "name", name, original=original)
            if places:
                owner = f"spec.{list_name}[{places[-1]}]"
                break
        self._owners[name] = owner
        return owner

    # ---- changes ---------------------------------------------------------------------------

    def _emit(self, op: PatchOp) -> None:
        if self._max_ops is not None and len(self.ops) >= self._max_ops:
            raise TooManyItems(
                f"the patch would have more than {self._max_ops} operations "
                f"(secretpatch.limits.maxPatchOperations); ask for fewer secrets in this pod"
            )
        self.ops.append(op)
        if self.track_sources:
            self.sources.append(self.source)

    def add(self, key: Key, item: Any, *, first: bool = False) -> None:
        if self._copy_items:
            item = copy_json(item)
        state = self._state(key)
        path = pointer(key)
        if not state.exists():
            self._emit({"op": "add", "path": path, "value": [item]})
            state.created = True
        else:
            self._emit({"op": "add", "path": f"{path}/{0 if first else '-'}", "value": item})
        if first:
            state.front.insert(0, item)
            self._moved(key)
        else:
            state.append(item)
        if len(key) == 1 and key[0] in CONTAINER_LISTS and self._owners is not None:
            if first:
                self._owners = None
            elif isinstance(item.get("name"), str):
                self._owners[item["name"]] = f"spec.{key[0]}[{state.size() - 1}]"

    def remove(self, key: Key, index: int) -> None:
        self._emit({"op": "remove", "path": f"{pointer(key)}/{index}"})
        region, found = self._locate(key, index)
        state = self._state(key)
        if region == "front":
            del state.front[index]
        elif region == "back":
            del state.back[index - state.size() + len(state.back)]
            state.back_index = None  # positions after it moved
        else:
            state.removed.append(found)
            state.removed.sort()
        if len(key) == 1 and region in ("front", "back"):
            # An added item's lists are known by the item's identity; a static fragment adds
            # the same object again after removing it (prepend), and it must start afresh.
            for identity in [i for i in self._lists if len(i) == 4 and i[0] == key[0] and i[2] == id(found)]:
                del self._lists[identity]
        self._moved(key)
        if len(key) == 1 and key[0] in CONTAINER_LISTS:
            self._owners = None

    def holds_written(self, key: Key, name: str, item: Mapping[str, Any]) -> bool:
        """Whether the pod's own list at `key` holds an item named `name` with every field of
        `item` as `item` has it, once stored (a replay's test for an append the pod already
        carries). Fields `item` lacks are not compared: later fragments wrote some of them
        (the env of an init container), and the replay checks those; other webhooks may add
        others."""
        state = self._state(key)
        if state.source is None:
            return False
        places = self.reader.positions(state.source, "name", name)
        stored = self.reader.item_json(state.source, places[0]) if places else None
        if stored is None:
            return False
        found = json.loads(stored)
        return all(
            canonical_json(found.get(field_name)) == canonical_json(value)
            for field_name, value in as_stored(item).items()
        )

    def unchanged(self) -> bool:
        """After a replay: whether its operations leave the pod as it arrived. A prepend
        removed original items and put new ones first; that is no change when it removed
        exactly the first items and put back equal ones in their order."""
        if any(op["path"].startswith("/metadata") for op in self.ops):
            return False
        for state in self._lists.values():
            if state.back or state.created:
                return False
            if not state.front:
                continue
            if state.source is None or state.removed != list(range(len(state.front))):
                return False
            for index, item in enumerate(state.front):
                if self.reader.item_json(state.source, index) != canonical_json(as_stored(item)):
                    return False
        return True

    def _moved(self, key: Key) -> None:
        """Items of the list at `key` changed places: the lists inside them are found anew."""
        if len(key) == 1:
            self._by_key = {k: v for k, v in self._by_key.items() if len(k) == 1}

    def set_keys(self, map_name: str, values: Mapping[str, Any]) -> None:
        """Set keys of metadata.labels or metadata.annotations (add, or replace a different value)."""
        if map_name in self._maps:
            known, created = self._maps[map_name]
            state = PRESENT
        else:
            state = ABSENT if self._metadata_added else self.reader.map_state(map_name)
            known, created = {}, False
        if state == NO_METADATA:
            self._emit({"op": "add", "path": "/metadata", "value": {map_name: dict(values)}})
            self._metadata_added = True
            self._maps[map_name] = (dict(values), True)
            return
        if state == ABSENT:
            self._emit({"op": "add", "path": f"/metadata/{escape(map_name)}", "value": dict(values)})
            self._maps[map_name] = (dict(values), True)
            return
        for key, value in values.items():
            if key in known:
                current = known[key]
            elif created:
                current = None
            else:
                current = self.reader.map_value(map_name, key)
            if current == value:
                continue
            self._emit({"op": "add", "path": f"/metadata/{escape(map_name)}/{escape(key)}", "value": value})
            known[key] = value
        self._maps[map_name] = (known, created)
