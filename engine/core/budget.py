"""Caches with a byte budget: every key and value they keep is counted.

A webhook's caches are filled by what pods send, so a count of entries says nothing about
memory: one entry may be a few bytes or a few hundred kilobytes. Each cache here is given
its size in bytes, charges every entry with an estimate of the Python memory it holds (key
and value, `approx_size`), and evicts the oldest entries when a new one would not fit. An
entry over a quarter of the budget is not kept at all, so one huge input cannot push out
the working set. `stats()` is what the server exports as metrics.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# The dict slot, the key tuple and bookkeeping of one entry, beyond its key and value.
ENTRY_OVERHEAD = 200


def approx_size(value: Any, shared: frozenset[int] = frozenset()) -> int:
    """The bytes `value` holds, counting each object once per reference (shared objects are
    counted twice: an upper bound), except the objects whose ids are in `shared`, which are
    held elsewhere for as long (a rule's constant fragments). Walks mappings, lists, tuples,
    sets and objects with a `__dict__`, without recursion."""
    total = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if shared and id(node) in shared:
            continue
        total += sys.getsizeof(node)
        kind = type(node)
        if kind is dict:
            stack.extend(node.keys())
            stack.extend(node.values())
        elif kind is list or kind is tuple or kind is frozenset or kind is set:
            stack.extend(node)
        elif kind is str or kind is bytes or kind is int or kind is bool or kind is float or node is None:
            continue
        elif isinstance(node, Mapping):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif hasattr(node, "__dict__"):
            stack.extend(vars(node).values())
        elif isinstance(node, tuple):  # NamedTuple
            stack.extend(node)
    return total


class CacheStats(NamedTuple):
    name: str
    budget: int
    bytes: int
    entries: int
    evictions: int


class BoundedCache(Generic[K, V]):
    """A dict with a byte budget; the oldest entries go first. Thread-safe.

    `size(key, value)` estimates an entry's bytes; the default is `approx_size` of both.
    A budget of 0 keeps nothing."""

    def __init__(self, name: str, max_bytes: int, size: Callable[[K, V], int] | None = None) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._size = size or (lambda key, value: approx_size(key) + approx_size(value))
        self._entries: dict[K, tuple[V, int]] = {}
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: K, value: V) -> None:
        cost = self._size(key, value) + ENTRY_OVERHEAD
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._entries and self._bytes + cost > self.max_bytes:
                oldest = next(iter(self._entries))
                self._bytes -= self._entries.pop(oldest)[1]
                self._evictions += 1
            self._entries[key] = (value, cost)
            self._bytes += cost

    def cached(self, compute: Callable[[K], V]) -> Callable[[K], V]:
        """`compute`, remembered in this cache (exceptions are not remembered)."""

        def lookup(key: K) -> V:
            entry = self._entries.get(key)
            if entry is not None:
                return entry[0]
            value = compute(key)
            self.put(key, value)
            return value

        return lookup

    def stats(self) -> CacheStats:
        return CacheStats(self.name, self.max_bytes, self._bytes, len(self._entries), self._evictions)
