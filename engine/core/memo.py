"""Review answers remembered by secret requests and pod shape.

A patch depends on the pod only through what the patch composer asks of it: whether each
list it reads exists and how long it is, where the names it would add already appear, and
the current values of the metadata keys a `set` fragment writes. Pods of one task agree on
all of that while differing in almost everything else (pod name, env values, the random
suffix of the service-account token volume, the owner reference), so one composition
serves every pod of the task's shape: a map task's hundreds of pods are composed once.

`PodPatch` records in a `Trace` what a composition asked; `shape` reads the same facts from
any pod. The composer is a function of the requests and of these facts, so a pod whose
facts equal a remembered pod's gets the remembered answer. A pod that is unusual in any way
(a list that is not a list, an item that is not an object, a label value that is not a
string) has no shape and is always composed afresh.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .budget import BoundedCache, CacheStats, approx_size
from .compose.trace import Trace


@dataclass(frozen=True)
class Probe:
    """A trace, frozen and ordered, so that `shape` reads facts in the same order every time."""

    lists: tuple[str, ...]
    fields: tuple[str, ...]
    names: frozenset[str]
    paths: Mapping[str, frozenset[str]]  # by the name of the lists they were looked up in
    maps: tuple[str, ...]
    map_keys: tuple[str, ...]

    @classmethod
    def of(cls, trace: Trace) -> Probe:
        return cls(
            tuple(sorted(trace.lists)),
            tuple(sorted(trace.fields)),
            frozenset(trace.names),
            {name: frozenset(p for n, p in trace.paths if n == name) for name, _ in trace.paths},
            tuple(sorted(trace.maps)),
            tuple(sorted(trace.map_keys)),
        )


Facts = tuple[Any, ...]
A = TypeVar("A")


_NO_SHAPE = object()  # where the composer looks, something other than JSON lists of objects


def _list_fact(value: Any, names: frozenset[str], paths: frozenset[str]) -> Any:
    """None for an absent list; else its length, where the looked-up names sit in it and
    where the looked-up mount paths sit, as (position, value) pairs (a pod's long env list
    costs two numbers, not one per item); `_NO_SHAPE` for anything that is not a list of
    objects with hashable names and mount paths."""
    if value is None:
        return None
    if type(value) is not list:
        return _NO_SHAPE
    try:
        found = [item.get("name") for item in value]
        mounted = [item.get("mountPath") for item in value] if paths else []
        if names.isdisjoint(found) and paths.isdisjoint(mounted):
            return (len(found),)
    except (AttributeError, TypeError):
        return _NO_SHAPE  # JSON gives .get to objects only; lists and dicts do not hash
    where = tuple((i, name) for i, name in enumerate(found) if type(name) is str and name in names)
    at = tuple((i, path) for i, path in enumerate(mounted) if type(path) is str and path in paths)
    return (len(found), where, at)


def shape(pod: Mapping[str, Any], probe: Probe) -> Facts | None:
    """The facts of `pod` that a composition traced as `probe` depends on; None when the
    pod is not plain JSON objects and lists where the composer looks."""
    spec = pod.get("spec")
    if type(spec) is not dict:
        return None
    names, paths, fields = probe.names, probe.paths, probe.fields
    nowhere: frozenset[str] = frozenset()
    facts: list[Any] = []
    for list_name in probe.lists:
        items = spec.get(list_name)
        fact = _list_fact(items, names, paths.get(list_name, nowhere))
        if fact is _NO_SHAPE:
            return None
        facts.append(fact)
        if items is None or not fields:
            continue
        for item in items:
            for field_name in fields:
                fact = _list_fact(item.get(field_name), names, paths.get(field_name, nowhere))
                if fact is _NO_SHAPE:
                    return None
                facts.append(fact)
    if probe.maps:
        metadata = pod.get("metadata")
        if type(metadata) is not dict:
            return None
        for map_name in probe.maps:
            current = metadata.get(map_name)
            if current is None:
                facts.append(None)
                continue
            if type(current) is not dict:
                return None
            values = tuple(current.get(key) for key in probe.map_keys)
            if not all(value is None or type(value) is str for value in values):
                return None
            facts.append(values)
    return tuple(facts)


@dataclass(frozen=True)
class _Entry(Generic[A]):
    probe: Probe
    facts: Facts
    answer: A


def _entries_size(key: Hashable, entries: tuple[_Entry[Any], ...]) -> int:
    """Everything the memo keeps for a key: the key, and each shape's probe, facts and answer."""
    return approx_size(key) + approx_size(entries)


class ReviewMemo(Generic[A]):
    """Answers by requests, then by shape, within a byte budget that counts keys, probes,
    facts and answers (`budget.BoundedCache`: the oldest requests go first).

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

    def find(self, key: Hashable, pod: Mapping[str, Any]) -> A | None:
        for entry in self._cache.get(key) or ():
            if shape(pod, entry.probe) == entry.facts:
                self.hits += 1
                return entry.answer
        return None  # the caller counts a miss when it composes afresh

    def store(self, key: Hashable, trace: Trace, pod: Mapping[str, Any], answer: A) -> None:
        probe = Probe.of(trace)
        facts = shape(pod, probe)
        if facts is None:
            return
        kept = self._cache.get(key) or ()
        kept = kept[max(0, len(kept) - self._shapes_per_key + 1) :]
        self._cache.put(key, (*kept, _Entry(probe, facts, answer)))

    def stats(self) -> CacheStats:
        return self._cache.stats()
