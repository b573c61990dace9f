"""RFC 6902 operations composed directly against the original pod.

`PodPatch` records operations in the order they are decided and keeps, beside them, the lists
it has changed (copied on first write), so that every later operation names the right index.
The input pod is never modified and never diffed. Lists that do not exist yet are created
with one `add` holding the first item; appends use `/-`; prepend-replace is a `remove` of the
old index followed by an `add` at `/0`.

The merge modes are looked up in `MODES`: adding a mode is adding an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, quote_json
from ..jsontypes import PatchOp, copy_json
from .trace import Trace

# ("volumes",) is spec.volumes; ("initContainers", 2, "env") is spec.initContainers[2].env.
Key = tuple[str] | tuple[str, int, str]

# Containers and init containers share one namespace of names in a pod.
CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


class TooManyItems(Exception):
    """A list the patch would change is longer than the configured cap."""


class NameCollision(Exception):
    """An appended item's name is already taken; the engine turns this into a refusal."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where
        super().__init__(f"the name {name!r} is already used by {where}")


class MountConflict(Exception):
    """A mount would go where the container already mounts another volume; Kubernetes
    requires each mount path of a container to be unique, so the pod would be refused."""

    def __init__(self, name: str, path: str, where: str, other: Any) -> None:
        self.name = name
        self.path = path
        self.where = where
        self.other = other
        super().__init__(f"{where} already mounts {quote_json(other)} there")


def escape(segment: str) -> str:
    """RFC 6901: '~' and '/' inside a path segment."""
    if "~" not in segment and "/" not in segment:
        return segment
    return segment.replace("~", "~0").replace("/", "~1")


def pointer(key: Key) -> str:
    if len(key) == 1:
        return "/spec/" + escape(key[0])
    return f"/spec/{escape(key[0])}/{key[1]}/{escape(key[2])}"


def _describe(key: Key) -> str:
    if len(key) == 1:
        return f"spec.{key[0]}"
    return f"spec.{key[0]}[{key[1]}].{key[2]}"


_UNSEEN = object()


class PodPatch:
    """`copy_items=False` lets operations share rendered items; only for callers that
    serialise the patch at once and hand out no reference to it (Engine.review).

    With a `trace`, every question asked of the pod is recorded there (see memo.py). The
    merge modes must ask through `current`, `index_of`, `container_name_owner` and
    `set_keys` only, or a remembered answer could be given to a pod it does not fit.
    """

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        copy_items: bool = True,
        max_items: int | None = None,
        track_sources: bool = True,
        trace: Trace | None = None,
    ) -> None:
        spec = pod.get("spec")
        if not isinstance(spec, Mapping):
            raise InputError("the pod has no spec object")
        self._spec = spec
        self._metadata = pod.get("metadata")
        self._maps: dict[str, dict[str, Any] | None] = {}
        self._lists: dict[Key, list[Any] | None] = {}
        self._owned: set[Key] = set()
        self.ops: list[PatchOp] = []
        # Provenance: for each operation, whatever the caller set as `source` when it was made.
        self.track_sources = track_sources
        self.sources: list[Any] = []
        self.source: Any = None
        self._copy_items = copy_items
        self._max_items = max_items
        self._container_names: dict[str, str] | None = None
        self.trace = trace

    def current(self, key: Key) -> list[Any] | None:
        """The list at `key` as mutated so far (None when absent); read-only for callers."""
        known = self._lists.get(key, _UNSEEN)
        if known is not _UNSEEN:
            return known  # type: ignore[return-value]
        if self.trace is not None:
            self.trace.lists.add(key[0])
            if len(key) == 3:
                self.trace.fields.add(key[2])
        if len(key) == 1:
            value = self._spec.get(key[0])
        else:
            container = self.container(key[0], key[1])
            value = container.get(key[2])
        if value is not None and not isinstance(value, list):
            raise InputError(f"{_describe(key)} is not a list")
        if value is not None and self._max_items is not None and len(value) > self._max_items:
            cap = f"secretpatch.limits.maxListItems is {self._max_items}"
            raise TooManyItems(f"{_describe(key)} has {len(value)} items; {cap}")
        self._lists[key] = value
        return value

    def container(self, list_name: str, index: int) -> Mapping[str, Any]:
        items = self.current((list_name,))
        if items is None or index >= len(items):  # pragma: no cover - callers iterate lengths
            raise InputError(f"spec.{list_name}[{index}] does not exist")
        item = items[index]
        if type(item) is not dict and not isinstance(item, Mapping):
            raise InputError(f"spec.{list_name}[{index}] is not an object")
        return item

    def container_name_owner(self, name: str) -> str | None:
        """Where a container name is used (names are unique across all container lists)."""
        if self.trace is not None:
            self.trace.names.add(name)
        if self._container_names is None:
            self._container_names = {}
            for list_name in sorted(CONTAINER_LISTS, reverse=True):
                for index, item in enumerate(self.current((list_name,)) or ()):
                    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                        self._container_names[item["name"]] = f"spec.{list_name}[{index}]"
        return self._container_names.get(name)

    def _emit(self, op: PatchOp) -> None:
        self.ops.append(op)
        if self.track_sources:
            self.sources.append(self.source)

    def length(self, list_name: str) -> int:
        return len(self.current((list_name,)) or ())

    def index_of(self, key: Key, name: str) -> int | None:
        """The index of the first object named `name` in the list at `key`, as mutated so far."""
        if self.trace is not None:
            self.trace.names.add(name)
        return self._first(key, "name", name)

    def index_of_path(self, key: Key, path: str) -> int | None:
        """The index of the first mount at `path` in the list at `key`, as mutated so far."""
        if self.trace is not None:
            self.trace.paths.add((key[-1], path))
        return self._first(key, "mountPath", path)

    def _first(self, key: Key, field: str, value: str) -> int | None:
        for index, item in enumerate(self.current(key) or ()):
            if (type(item) is dict or isinstance(item, Mapping)) and item.get(field) == value:
                return index
        return None

    def _writable(self, key: Key) -> list[Any]:
        items = self.current(key)
        if key not in self._owned:
            items = list(items or ())
            self._lists[key] = items
            self._owned.add(key)
        return items  # type: ignore[return-value]

    def add(self, key: Key, item: Any, *, first: bool = False) -> None:
        if self._copy_items:
            item = copy_json(item)
        existing = self.current(key)
        path = pointer(key)
        if existing is None:
            self._emit({"op": "add", "path": path, "value": [item]})
        else:
            self._emit({"op": "add", "path": f"{path}/{0 if first else '-'}", "value": item})
        items = self._writable(key)
        if first:
            items.insert(0, item)
            self._shift(key, 0, +1)
        else:
            items.append(item)
        if len(key) == 1 and key[0] in CONTAINER_LISTS and self._container_names is not None:
            if first:
                self._container_names = None
            elif isinstance(item.get("name"), str):
                self._container_names[item["name"]] = f"spec.{key[0]}[{len(items) - 1}]"

    def remove(self, key: Key, index: int) -> None:
        self._emit({"op": "remove", "path": f"{pointer(key)}/{index}"})
        del self._writable(key)[index]
        self._shift(key, index, -1)
        if len(key) == 1 and key[0] in CONTAINER_LISTS:
            self._container_names = None

    def set_keys(self, map_name: str, values: Mapping[str, Any]) -> None:
        """Set keys of metadata.labels or metadata.annotations (add, or replace a different value)."""
        if self.trace is not None:
            self.trace.maps.add(map_name)
            self.trace.map_keys.update(values)
        if map_name in self._maps:
            current = self._maps[map_name]
        else:
            metadata = self._metadata if isinstance(self._metadata, Mapping) else {}
            current = metadata.get(map_name)
            if current is not None and not isinstance(current, Mapping):
                raise InputError(f"metadata.{map_name} is not an object")
        if not isinstance(self._metadata, Mapping):
            self._emit({"op": "add", "path": "/metadata", "value": {map_name: dict(values)}})
            self._metadata = {map_name: dict(values)}
            self._maps[map_name] = dict(values)
            return
        if current is None:
            self._emit({"op": "add", "path": f"/metadata/{escape(map_name)}", "value": dict(values)})
            self._maps[map_name] = dict(values)
            return
        updated = dict(current)
        for key, value in values.items():
            if key in updated and updated[key] == value:
                continue
            self._emit({"op": "add", "path": f"/metadata/{escape(map_name)}/{escape(key)}", "value": value})
            updated[key] = value
        self._maps[map_name] = updated

    def _shift(self, key: Key, start: int, delta: int) -> None:
        """Keep container-level state on the right container when a container list moves."""
        if len(key) != 1 or key[0] not in CONTAINER_LISTS:
            return
        list_name = key[0]
        moved = {k: v for k, v in self._lists.items() if len(k) == 3 and k[0] == list_name}
        if not moved:
            return
        for k in moved:
            del self._lists[k]
        owned = {k for k in self._owned if len(k) == 3 and k[0] == list_name}
        self._owned -= owned
        for k, v in moved.items():
            index: int = k[1]
            if index < start:
                new_key = k
            elif delta < 0 and index == start:
                continue  # the removed container takes its state with it
            else:
                new_key = (list_name, index + delta, k[2])
            self._lists[new_key] = v
            if k in owned:
                self._owned.add(new_key)


def set_map_keys(patch: PodPatch, key: Key, values: Mapping[str, Any]) -> None:
    patch.set_keys(key[0], values)


def add_unless_named(patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
    if patch.index_of(key, item["name"]) is not None:
        return
    path = item.get("mountPath")
    if len(key) == 3 and isinstance(path, str):
        taken = patch.index_of_path(key, path)
        if taken is not None:
            current = patch.current(key) or ()
            other = current[taken].get("name")
            raise MountConflict(item["name"], path, f"{_describe(key)}[{taken}]", other)
    patch.add(key, item)


def append_unique(patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
    name = item["name"]
    if len(key) == 1 and key[0] in CONTAINER_LISTS:
        where = patch.container_name_owner(name)
    else:
        found = patch.index_of(key, name)
        where = None if found is None else f"{_describe(key)}[{found}]"
    if where is not None:
        raise NameCollision(name, where)
    patch.add(key, item)


def prepend_replace(patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
    found = patch.index_of(key, item["name"])
    if found is not None:
        patch.remove(key, found)
    patch.add(key, item, first=True)


@dataclass(frozen=True)
class MergeMode:
    """How one item merges into one list (or, for `set`, keys into a metadata map).

    `field`: whether the mode targets a list of each container (True), a pod-spec list
    (False), or either (None). `idempotent`: merging the same item twice changes nothing, so
    the engine may skip containers it has already merged into.
    """

    name: str
    field: bool | None
    idempotent: bool
    apply: Callable[[PodPatch, Key, Mapping[str, Any]], None]
    # Merges keys into metadata.labels/annotations instead of named items into a list.
    map: bool = False


MODES: dict[str, MergeMode] = {
    mode.name: mode
    for mode in (
        MergeMode("once", field=False, idempotent=True, apply=add_unless_named),
        MergeMode("append", field=False, idempotent=False, apply=append_unique),
        MergeMode("per-container", field=True, idempotent=True, apply=add_unless_named),
        MergeMode("prepend", field=None, idempotent=True, apply=prepend_replace),
        MergeMode("set", field=False, idempotent=True, apply=set_map_keys, map=True),
    )
}
