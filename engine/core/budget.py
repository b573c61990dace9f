"""Caches with a byte budget: every key and value they keep is counted.

A webhook's caches are filled by what pods send, so a count of entries says nothing about
memory: one entry may be a few bytes or a few hundred kilobytes. Each cache here is given
its size in bytes, charges every entry with an estimate of the Python memory it holds (key
and value, `approx_size`), and evicts the oldest entries when a new one would not fit. An
entry over a quarter of the budget is not kept at all, so one huge input cannot push out
the working set. `stats()` is what the server exports as metrics.

A cache may also keep an entry only when its key comes a second time (`Doorkeeper`): most
of what a webhook computes for a pod it has never seen (a new task, a new secret) is never
asked for again, and keeping it would cost more than computing it (an entry is counted,
byte by byte, when it is kept) and push out entries that are asked for again.
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


def approx_size(value: Any, shared: frozenset[int] = frozenset(), *, once: bool = False) -> int:
    """The bytes `value` holds, counting each object once per reference (shared objects are
    counted twice: an upper bound), except the objects whose ids are in `shared`, which are
    held elsewhere for as long (a rule's constant fragments). With `once`, each object is
    counted (and walked) once however often it is referenced: for values built of shared
    parts, such as a plan's item shapes, which share the constant parts of each fragment's
    shape (a fifth of the bytes, in a third of the time). Walks mappings, lists, tuples,
    sets and objects with a `__dict__`, without recursion."""
    total = 0
    stack = [value]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if shared and id(node) in shared:
            continue
        if once:
            if id(node) in seen:
                continue
            seen.add(id(node))
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


class Doorkeeper:
    """Which keys have been offered before, in a fixed array of bits (the "doorkeeper" of
    TinyLFU: a Bloom filter, here with two bits per key).

    `seen(key)` records the key and says whether it was offered before. It may say yes for
    a key never offered (other keys set both its bits), never no for one offered since the
    last reset: a wrong yes only keeps an entry at first sight, as a cache without a
    doorkeeper does. The bits are cleared once an eighth of them are set (about `bits / 16`
    keys), so old keys are forgotten and a wrong yes stays rare: at most one in 64 keys,
    about one in 200 on average (with one bit per key it was one in 16). Races between
    threads lose a bit or a reset, which only misjudges a key once.
    """

    def __init__(self, bits: int = 1 << 18) -> None:
        if bits < 8 or bits & (bits - 1):
            raise ValueError("a doorkeeper's bits are a power of two, at least 8")
        self._bits = bytearray(bits // 8)
        self._mask = bits - 1
        # The second bit comes from the hash's next bits (a str's or a tuple's hash mixes all 64).
        self._shift = (bits - 1).bit_length()
        self._set = 0
        self._limit = bits // 8

    @property
    def nbytes(self) -> int:
        """The bytes its bits take (counted in the budget of the cache that owns it)."""
        return len(self._bits)

    def seen(self, key: Hashable) -> bool:
        hashed = hash(key)
        first, second = hashed & self._mask, (hashed >> self._shift) & self._mask
        bits = self._bits
        one, two = 1 << (first & 7), 1 << (second & 7)
        first >>= 3
        second >>= 3
        new = (not bits[first] & one) + (not bits[second] & two)
        if not new:
            return True
        bits[first] |= one
        bits[second] |= two
        self._set += new
        if self._set >= self._limit:
            self._bits = bytearray(len(bits))
            self._set = 0
        return False


class CacheStats(NamedTuple):
    name: str
    budget: int
    bytes: int
    entries: int
    evictions: int


class BoundedCache(Generic[K, V]):
    """A dict with a byte budget; the oldest entries go first. Thread-safe.

    `size(key, value)` estimates an entry's bytes; the default is `approx_size` of both.
    A budget of 0 keeps nothing. With `second_sight`, `put` keeps an entry only when its
    key was put before (`Doorkeeper`, whose bits count in the budget; none when the budget
    is under 16 times their size)."""

    def __init__(
        self,
        name: str,
        max_bytes: int,
        size: Callable[[K, V], int] | None = None,
        *,
        second_sight: bool = False,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._size = size or (lambda key, value: approx_size(key) + approx_size(value))
        self._entries: dict[K, tuple[V, int]] = {}
        self._door = Doorkeeper() if second_sight else None
        if self._door is not None and max_bytes < 16 * self._door.nbytes:
            self._door = None
        self._bytes = 0 if self._door is None else self._door.nbytes
        self._evictions = 0
        self._lock = threading.Lock()

    @property
    def at_second_sight(self) -> bool:
        """Whether it keeps an entry only at its key's second sight (it has a doorkeeper)."""
        return self._door is not None

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def admits(self, sight: Hashable) -> bool:
        """Whether an entry whose key (or `sight`, see `put`) is this would be kept; counts
        this as a sight of it."""
        return self._door is None or self._door.seen(sight)

    def put(self, key: K, value: V, *, sight: Hashable = None) -> None:
        """Keep `value` under `key`, if the cache `admits` it. With a doorkeeper, `sight`
        (default: the key) is what must have come before: the encoder's keys are ids, which
        new objects reuse."""
        if self.admits(key if sight is None else sight):
            self.keep(key, value)

    def keep(self, key: K, value: V) -> None:
        """Keep `value` under `key`, admitted or not (the caller asked `admits`)."""
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

        entries = self._entries

        def lookup(key: K) -> V:
            entry = entries.get(key)
            if entry is not None:
                return entry[0]
            value = compute(key)
            door = self._door  # `put`, inlined: this runs for every secret of a new pod
            if door is None or door.seen(key):
                self.keep(key, value)
            return value

        return lookup

    def stats(self) -> CacheStats:
        return CacheStats(self.name, self.max_bytes, self._bytes, len(self._entries), self._evictions)
