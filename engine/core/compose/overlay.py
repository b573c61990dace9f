"""One list of the pod as a patch has changed it so far, without copying it: the items put
first, the original items removed, and the items appended, over the list as it arrived.

`PodPatch` keeps one per list it touches; reading the original items is its business (through
the view), so that this stays plain bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .view import Key

# The fields the modes look items up by: appended items are indexed by them.
INDEXED = ("name", "mountPath")


@dataclass
class ListOverlay:
    """One list as mutated so far: `front` (newest first) + the original items not removed +
    `back`. `source` reads the original items: the view with the list's key in the pod as it
    arrived, or None for a list inside an item this patch added (`owned`)."""

    length: int | None  # the original length; None when the list was absent
    source: Key | None
    owned: list[Any] = field(default_factory=list)
    front: list[Any] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # original indices, ascending
    back: list[Any] = field(default_factory=list)
    created: bool = False
    holder: Any = None  # the added item a list belongs to, kept alive while its id names it

    # Where appended items with a given string field sit in `back`, built when first asked:
    # a pod asking for 500 secrets appends 500 init containers, each checked for its name.
    back_index: dict[tuple[str, str], list[int]] | None = None

    def size(self) -> int:
        return len(self.front) + (self.length or 0) - len(self.removed) + len(self.back)

    def in_back(self, field_name: str, value: str) -> list[int]:
        """The positions in `back` of the objects whose `field_name` is `value`."""
        if self.back_index is None:
            self.back_index = {}
            for index, item in enumerate(self.back):
                self._index(index, item)
        return self.back_index.get((field_name, value), [])

    def append(self, item: Any) -> None:
        self.back.append(item)
        if self.back_index is not None:
            self._index(len(self.back) - 1, item)

    def _index(self, index: int, item: Any) -> None:
        assert self.back_index is not None
        if isinstance(item, Mapping):
            for field_name in INDEXED:
                value = item.get(field_name)
                if type(value) is str:
                    self.back_index.setdefault((field_name, value), []).append(index)

    def exists(self) -> bool:
        return self.length is not None or self.created
