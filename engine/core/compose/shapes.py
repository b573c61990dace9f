"""Item shapes: what merging an item may look at (plans.py compares them).

A mode that merges named items looks at an item's name and mount path, the type of every
other field, and the same of the items of every list field, with their count
(`item_shape`). Two items of one shape merge alike into pods that answer alike.

Working that out walks the whole item, which for a never-seen secret is a good part of what
a plan saves. Yet most of an item a fragment renders is fixed when the rule loads: its
mappings and lists are those of the template, and only the values its expressions compute
vary. So for a fragment's `skeleton` (its template with each computed value replaced by
`jsontypes.VARIES`) `skeleton_shape` works out the fixed part once, and gives a function that reads
only the values that vary. It gives what `item_shape` gives for any item built on that
skeleton (tests/test_skeletons.py checks the two agree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..jsontypes import VARIES, varies

# The fields of an item that modes merging named items compare with the pod's.
LOOKED_AT = frozenset({"name", "mountPath"})

Shape = Callable[[Any], Any]


def item_shape(value: Any) -> Any:
    """See MergeMode.shape (the modes that merge named items look at names and mount paths)."""
    if type(value) is dict or isinstance(value, Mapping):
        return tuple(
            (key, field) if key in LOOKED_AT else (key, _field_shape(field)) for key, field in value.items()
        )
    if type(value) is list or isinstance(value, list):
        return ("list", *[_element_shape(v) for v in value])
    return type(value).__name__


def _field_shape(value: Any) -> Any:
    """A mapping's field, as item_shape gives it (other than a name or mount path)."""
    if type(value) is str:  # most are: no isinstance of an ABC
        return "str"
    return item_shape(value) if type(value) is list or isinstance(value, list) else type(value).__name__


def _element_shape(value: Any) -> Any:
    """A list's element, as item_shape gives it."""
    if type(value) is str:
        return "str"
    if type(value) is dict or isinstance(value, Mapping | list):
        return item_shape(value)
    return type(value).__name__


def skeleton_shape(skeleton: dict[str, Any] | list[Any]) -> Shape:
    """`item_shape` of a value built on `skeleton` (a mapping or a list: its keys, its length
    and whatever does not vary are those of the skeleton), reading only what varies."""
    parts: list[Any] = []
    computed: list[tuple[int, Shape]] = []
    if type(skeleton) is dict:
        for key, sub in skeleton.items():
            if not varies(sub):
                parts.append((key, sub) if key in LOOKED_AT else (key, _field_shape(sub)))
            elif key in LOOKED_AT:  # the value itself
                parts.append(None)
                computed.append((len(parts) - 1, _field(key, None)))
            elif type(sub) is dict:  # a mapping is a field like any other: its type
                parts.append((key, "dict"))
            else:
                inner = skeleton_shape(sub) if type(sub) is list else None
                parts.append(None)
                computed.append((len(parts) - 1, _field(key, inner)))
        return _assembled(parts, computed)
    parts.append("list")
    for index, sub in enumerate(skeleton):
        parts.append(_element_shape(sub) if not varies(sub) else None)
        if sub is VARIES:
            computed.append((index + 1, _element(index, _element_shape)))
        elif varies(sub):
            computed.append((index + 1, _element(index, skeleton_shape(sub))))
    return _assembled(parts, computed)


def _field(key: str, inner: Shape | None) -> Shape:
    """A varying field's part of a mapping's shape: the value itself for a name or mount
    path (`inner` None there), else its shape, `inner` when the skeleton decides it."""
    if key in LOOKED_AT:
        return lambda item: (key, item[key])
    if inner is None:
        return lambda item: (key, _field_shape(item[key]))
    return lambda item: (key, inner(item[key]))


def _element(index: int, shape: Shape) -> Shape:
    """A varying element's part of a list's shape."""
    return lambda item: shape(item[index])


def _assembled(parts: list[Any], computed: list[tuple[int, Shape]]) -> Shape:
    """A shape of fixed `parts`, with the `computed` ones filled in per item."""
    if not computed:
        fixed = tuple(parts)
        return lambda _: fixed

    def shape(item: Any) -> Any:
        filled = parts.copy()
        for index, compute in computed:
            filled[index] = compute(item)
        return tuple(filled)

    return shape
