"""Review answers remembered by secret requests and by what the composition read of the pod.

A patch depends on the pod only through the questions the composer asked of it
(`compose/view.py`): how long the lists it changes are, where the names it would add already
sit, the values of the labels it sets. Pods of one task give the same answers while differing
in almost everything else (pod name, env values, the random suffix of the service-account
token volume, the owner reference), so one composition serves every pod of the task's shape:
a map task's hundreds of pods are composed once.

Each entry keeps the questions with their answers. A later pod with the same requests gets the
remembered answer only when the same questions, asked of it through the same view, give the
same answers, in order. Nothing here knows what the questions mean: a merge mode that reads
the pod in a new way asks a new question, and the memo replays it like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .budget import BoundedCache, CacheStats, approx_size
from .compose.view import Question
from .errors import InputError

A = TypeVar("A")
Reads = tuple[tuple[Question, Any], ...]


# What one recorded read holds besides its strings: the pair, the question and list-key
# tuples, and a small answer (CPython 3.11, 64-bit: 56 + 72 + 64 + 28 bytes, rounded up).
READ_BYTES = 240


@dataclass(frozen=True)
class _Entry(Generic[A]):
    reads: Reads
    answer: A
    size: int  # what the entry holds, counted once when it is made


def _entry(reads: Reads, answer: A) -> _Entry[A]:
    """An entry with its size: the answer as `approx_size` counts it, and each read as
    READ_BYTES and its strings (a walk of every read would cost as much as the composition)."""
    strings = sum(len(part) for question, _ in reads for part in question if type(part) is str)
    return _Entry(reads, answer, approx_size(answer) + READ_BYTES * len(reads) + strings)


def _entries_size(key: Hashable, entries: tuple[_Entry[Any], ...]) -> int:
    """Everything the memo keeps for a key: the key, and each entry's reads and answer."""
    return approx_size(key) + sum(entry.size for entry in entries)


def replays(reads: Reads, ask: Callable[[Question], Any]) -> bool:
    """Whether `ask` gives every recorded answer. A question the pod cannot answer (a list
    that is not a list) is a difference: that pod is composed afresh, and refused there."""
    try:
        return all(ask(question) == answer for question, answer in reads)
    except InputError:
        return False


def key_of(pairs: Iterable[tuple[str, str]]) -> bytes:
    """A digest of pairs of strings (a pod's secret annotations), so that the memo's keys are
    small whatever a pod sends. Each string is length-prefixed, so no two lists of pairs give
    the same input."""
    digest = hashlib.blake2b(digest_size=32)
    for name, value in pairs:
        for text in (name, value):
            data = text.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.digest()


class ReviewMemo(Generic[A]):
    """Answers by requests, then by recorded reads, within a byte budget that counts keys,
    reads and answers (`budget.BoundedCache`: the oldest requests go first).

    Safe to share between threads: entries are immutable, and a lost update only costs a
    composition.
    """

    def __init__(self, max_bytes: int = 16 << 20, shapes_per_key: int = 4) -> None:
        self._shapes_per_key = shapes_per_key
        self._cache: BoundedCache[Hashable, tuple[_Entry[A], ...]] = BoundedCache(
            "memo", max_bytes, _entries_size
        )
        self.hits = 0
        self.misses = 0

    def find(self, key: Hashable, ask: Callable[[Question], Any]) -> A | None:
        """The answer remembered under `key` whose reads `ask` (a new pod's view) gives again."""
        for entry in self._cache.get(key) or ():
            if replays(entry.reads, ask):
                self.hits += 1
                return entry.answer
        return None  # the caller counts a miss when it composes afresh

    def store(self, key: Hashable, reads: Mapping[Question, Any], answer: A) -> None:
        kept = self._cache.get(key) or ()
        kept = kept[max(0, len(kept) - self._shapes_per_key + 1) :]
        self._cache.put(key, (*kept, _entry(tuple(reads.items()), answer)))

    def stats(self) -> CacheStats:
        return self._cache.stats()
