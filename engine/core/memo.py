"""Review answers remembered by secret requests and by what the composition read of the pod.

A patch depends on the pod only through the questions the composer asked of it
(`compose/view.py`): how long the lists it changes are, where the names it would add already
sit, the values of the labels it sets. Pods of one task give the same answers while differing
in almost everything else (pod name, env values, the random suffix of the service-account
token volume, the owner reference), so one composition serves every pod of the task's shape:
a map task's hundreds of pods are composed twice (the memo keeps an answer at the second
sight of its requests: see `ReviewMemo`).

Each entry keeps a record of the questions with their answers (`compose/recorded.py`). A
later pod with the same requests gets the remembered answer only when the record holds for
it: the same questions, asked of it through the same view, give the same answers. Nothing
here knows what the questions mean: a merge mode that reads the pod in a new way asks a new
question, and the record replays it like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .budget import BoundedCache, CacheStats, approx_size


class Record(Protocol):
    """What a composition depended on, as the memo keeps it."""

    def size(self) -> int:
        """The bytes it holds, about."""
        ...


A = TypeVar("A")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class _Entry(Generic[R, A]):
    record: R
    answer: A
    size: int  # what the entry holds, counted once when it is made


def _entries_size(key: Hashable, entries: tuple[_Entry[R, A], ...]) -> int:
    """Everything the memo keeps for a key: the key, and each entry's record and answer."""
    return approx_size(key) + sum(entry.size for entry in entries)


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


class ReviewMemo(Generic[R, A]):
    """Answers by requests, then by record, within a byte budget that counts keys, records
    and answers (`budget.BoundedCache`: the oldest requests go first).

    Safe to share between threads: entries are immutable, and a lost update only costs a
    composition.
    """

    def __init__(
        self,
        max_bytes: int = 16 << 20,
        shapes_per_key: int = 4,
        *,
        second_sight: bool = False,
        name: str = "memo",
    ) -> None:
        self._shapes_per_key = shapes_per_key
        # With `second_sight`, an answer is kept when its requests come a second time
        # (budget.Doorkeeper): the first pod of a new task, or one asking for a secret no other
        # pod asks for, leaves nothing behind to count, to store, or for the collector to walk.
        self._cache: BoundedCache[Hashable, tuple[_Entry[R, A], ...]] = BoundedCache(
            name, max_bytes, _entries_size, second_sight=second_sight
        )
        self.hits = 0
        self.misses = 0

    def find(self, key: Hashable, holds: Callable[[R], bool]) -> A | None:
        """The answer remembered under `key` whose record `holds` (for a new pod)."""
        for entry in self._cache.get(key) or ():
            if holds(entry.record):
                self.hits += 1
                return entry.answer
        return None  # the caller counts a miss when it composes afresh

    def store(self, key: Hashable, record: Callable[[], R], answer: A) -> None:
        """Remember `answer` under `key` with the record `record()` makes (made only if the
        answer is kept)."""
        self.remember(key, lambda: (record(), answer))

    def remember(
        self, key: Hashable, make: Callable[[], tuple[R, A] | None], *, sight: Hashable = None
    ) -> None:
        """Remember the record and answer `make()` gives (called only if they are kept; None
        keeps nothing). With `sight`, that (not the key) is what must have come before."""
        if not self._cache.admits(key if sight is None else sight):
            return
        made = make()
        if made is None:
            return
        record, answer = made
        kept = self._cache.get(key) or ()
        kept = kept[max(0, len(kept) - self._shapes_per_key + 1) :]
        entry = _Entry(record, answer, record.size() + approx_size(answer))
        self._cache.keep(key, (*kept, entry))

    def stats(self) -> CacheStats:
        return self._cache.stats()
