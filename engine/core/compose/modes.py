"""The merge modes: how a fragment's rendered items go into the pod.

Each mode is one class that knows everything about itself: which lists a rule entry may name
(`check_entry`), what its template must render (`items`), which lists of a pod it targets
(`targets`), whether it moves items that are already there (`reorders`), whether merging twice
changes nothing (`idempotent`), and how one item merges (`apply`). The rule loader and the
composer ask the mode, never its name: adding a mode is adding a class to `MODES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import quote_json
from ..jsontypes import VARIES
from .pod_patch import CONTAINER_LISTS, Changed, Key, PodPatch, describe
from .shapes import Shape, item_shape, skeleton_shape

# The metadata maps a `set` fragment may write.
METADATA_MAPS = ("annotations", "labels")


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


class EntryError(Exception):
    """A rule entry this mode cannot take; `key` is the entry's key at fault (None: the entry)."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        super().__init__(message)


class ShapeError(Exception):
    """A template rendered something this mode cannot merge."""


class MergeMode:
    """How one rendered item merges into one target. Subclasses set the class attributes and
    `apply`; the defaults describe a mode that merges named items into lists."""

    name: ClassVar[str]
    # Where the mode merges: into a list of each container (True), into a pod-spec list
    # (False), or either, as the rule entry's `field` says (None).
    field: ClassVar[bool | None]
    # Merging the same item twice changes nothing, so targets merged into for an earlier
    # secret may be skipped.
    idempotent: ClassVar[bool]
    # Puts items first: the items already in a list it merges into change places.
    reorders: ClassVar[bool] = False
    # Sets keys of a metadata map rather than adding named items to lists.
    metadata: ClassVar[bool] = False

    def check_entry(self, into: Sequence[str], field: str | None) -> None:
        """Refuse a rule entry whose `into` and `field` this mode cannot merge into."""
        if self.field is True and field is None:
            raise EntryError(
                None, f"merge mode {self.name!r} needs a 'field' (the container list to merge into)"
            )
        if self.field is False and field is not None:
            raise EntryError("field", f"merge mode {self.name!r} merges into pod-spec lists; remove 'field'")
        if field is not None:
            for list_name in into:
                if list_name not in CONTAINER_LISTS:
                    raise EntryError(
                        "into",
                        f"{list_name!r} is not a container list; with 'field', into names "
                        f"{', '.join(sorted(CONTAINER_LISTS))}",
                    )

    def items(self, value: Any) -> tuple[Mapping[str, Any], ...]:
        """A rendered template as the items to merge: one mapping with a non-empty string
        `name`, or a list of them with distinct names."""
        if type(value) is dict:  # one item, as most fragments render: no set of names
            name = value.get("name")
            if type(name) is str and name:
                return (value,)
        items = value if isinstance(value, list) else [value]
        names = set()
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
                raise ShapeError(
                    "a fragment must render a mapping with a non-empty string 'name', or a list of them; "
                    f"got {_shape(item)}"
                )
            if item["name"] in names:
                raise ShapeError(f"the fragment renders the name {item['name']!r} twice")
            names.add(item["name"])
        return tuple(items)

    def shape(self, item: Mapping[str, Any]) -> Any:
        """What merging `item` may look at (plans.py: two items of one shape merge alike into
        pods that answer alike): its name and mount path, the type of every other field, and
        the same of the items of every list field, with their count."""
        return item_shape(item)

    def shapes(self, items: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
        """The shape of each of a fragment's items."""
        return tuple(self.shape(item) for item in items)

    def item_shapes(self, skeleton: Any) -> tuple[Shape, ...] | None:
        """For a fragment whose renders are built on `skeleton` (shapes.py: its template,
        with `VARIES` for each computed value), a function giving `shape` of each item it
        renders, worked out at load as far as the skeleton decides it; None when the
        skeleton does not decide how many items there are, or the mode's shape is its own."""
        each = item_skeletons(skeleton)
        if type(self).shape is not MergeMode.shape or each is None:
            return None
        return tuple(self.shape if s is VARIES else skeleton_shape(s) for s in each)

    def targets(self, list_name: str, field: str | None, start: int, end: int) -> list[Key]:
        """The targets in one list named by `into`: the list itself, or with `field` that
        list of each container from the `start`th to before the `end`th."""
        if field is None:
            return [(list_name,)]
        return [(list_name, index, field) for index in range(start, end)]

    def apply(self, patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def merge(
        self,
        patch: PodPatch,
        into: Sequence[str],
        field: str | None,
        items: Sequence[Mapping[str, Any]],
        *,
        merged: dict[tuple[int, str], int] | None = None,
        token: int = 0,
    ) -> None:
        """Merge the items into their targets in Flyte's order (item by item).

        With `merged` (for a fragment whose re-merging is known to change nothing; see
        `rules.model.mark_skippable`), targets merged into for an earlier secret are skipped and
        recorded there under `token`: Flyte re-applies them for every secret, with no
        effect, which would make the patch grow with the square of the number of secrets."""
        keys: list[Key] = []
        for list_name in into:
            end = 0 if field is None else patch.length(list_name)
            if merged is None:
                keys.extend(self.targets(list_name, field, 0, end))
                continue
            seen = (token, list_name)
            if field is None:
                if seen not in merged:
                    merged[seen] = 1
                    keys.extend(self.targets(list_name, field, 0, end))
                continue
            start = merged.get(seen, 0)
            merged[seen] = end
            keys.extend(self.targets(list_name, field, start, end))
        for item in items:
            for key in keys:
                self.apply(patch, key, item)


class _AddUnlessNamed(MergeMode):
    """Add unless an item of the same name is there; a mount where the container already
    mounts another volume is refused."""

    idempotent = True

    def apply(self, patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
        add_unless_named(patch, key, item)


class Once(_AddUnlessNamed):
    """Add to each pod-spec list unless an item of the same name is there."""

    name = "once"
    field = False


class PerContainer(_AddUnlessNamed):
    """Add to the `field` list of every container unless an item of the same name is there;
    a mount where the container already mounts another volume is refused."""

    name = "per-container"
    field = True


class Append(MergeMode):
    """Append to each pod-spec list; a name already taken is refused (container names across
    all container lists, as Kubernetes requires)."""

    name = "append"
    field = False
    idempotent = False

    def apply(self, patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
        name = item["name"]
        if len(key) == 1 and key[0] in CONTAINER_LISTS:
            where = patch.container_name_owner(name)
        else:
            found = patch.index_of(key, name)
            where = None if found is None else f"{describe(key)}[{found}]"
        if patch.replaying:  # the pod carries the injection only if the item is there as written
            if where is None or not patch.holds_written(key, name, item):
                raise Changed(name)
            patch.matched[key] = patch.matched.get(key, 0) + 1
            return
        if where is not None:
            raise NameCollision(name, where)
        patch.add(key, item)


class Prepend(MergeMode):
    """In each target list, remove the first item of the same name and put the new one first."""

    name = "prepend"
    field = None
    idempotent = True
    reorders = True

    def apply(self, patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
        found = patch.index_of(key, item["name"])
        if found is not None:
            patch.remove(key, found)
        patch.add(key, item, first=True)


class SetKeys(MergeMode):
    """Set keys of metadata.labels or metadata.annotations (add, or replace a different value)."""

    name = "set"
    field = False
    idempotent = True
    metadata = True

    def check_entry(self, into: Sequence[str], field: str | None) -> None:
        super().check_entry(into, field)
        if not all(name in METADATA_MAPS for name in into):
            raise EntryError(
                "into",
                f"merge mode {self.name!r} sets keys of metadata maps; into names {', '.join(METADATA_MAPS)}",
            )

    def items(self, value: Any) -> tuple[Mapping[str, Any], ...]:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ShapeError(
                f"a '{self.name}' fragment must render a mapping of strings to strings; got {_shape(value)}"
            )
        return (value,)

    def apply(self, patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
        patch.set_keys(key[0], item)

    def shape(self, item: Mapping[str, Any]) -> Any:
        """All of it: each value is compared with the pod's."""
        return tuple((key, repr(value)) for key, value in item.items())


def item_skeletons(skeleton: Any) -> tuple[Any, ...] | None:
    """The skeleton of each item a fragment built on `skeleton` renders (`MergeMode.items`: a
    mapping is one item, a list's elements are its items; `VARIES` for one computed whole),
    or None when the skeleton does not decide how many items there are."""
    if type(skeleton) is dict:
        return (skeleton,)
    if type(skeleton) is list and all(type(s) is dict or s is VARIES for s in skeleton):
        return tuple(skeleton)
    return None


def add_unless_named(patch: PodPatch, key: Key, item: Mapping[str, Any]) -> None:
    if patch.index_of(key, item["name"]) is not None:
        return
    path = item.get("mountPath")
    if len(key) == 3 and isinstance(path, str):
        taken = patch.index_of_path(key, path)
        if taken is not None:
            other = patch.item_field(key, taken, "name")
            raise MountConflict(item["name"], path, f"{describe(key)}[{taken}]", other)
    if len(key) == 1:
        patch.added_singleton = True
    patch.add(key, item)


def _shape(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a mapping with keys {sorted(value)}"
    return f"a {type(value).__name__}"


MODES: dict[str, MergeMode] = {
    mode.name: mode for mode in (Once(), Append(), PerContainer(), Prepend(), SetKeys())
}
