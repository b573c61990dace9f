"""A composition's questions and answers, kept by the review memo and asked again of a later
pod: the check that the remembered patch fits it (see core/memo.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import InputError
from .view import CONTAINER_ORDER, JsonValue, Key, PodView, Question

# What one recorded question holds besides its strings: the pair, the question and list-key
# tuples, and a small answer (CPython 3.11, 64-bit: 56 + 72 + 64 + 28 bytes, rounded up).
READ_BYTES = 240
Lookups = tuple[tuple[Key, str, frozenset[str], tuple[tuple[str, tuple[int, ...]], ...]], ...]


class Recorded(NamedTuple):
    """A composition's questions and answers, arranged to be asked again of another pod.

    Where-is questions (`positions`, `container-name`) are grouped by list and field: per
    group, the values that were nowhere and the values that were somewhere, with their
    places. A pod asking for 100 secrets asks 100 such questions of its container lists; a
    sibling pod answers them in one pass over each list (`PodView.any_of` when every value
    was nowhere, else the list's index, checked in one set operation). The other questions
    are asked again in the order first asked."""

    ordered: tuple[tuple[Question, Any], ...]
    lookups: Lookups
    strings: int  # the characters of the values and answers kept, for size()

    @classmethod
    def of(cls, reads: Mapping[Question, Any]) -> Recorded:
        ordered = []
        absent: dict[tuple[Key, str], set[str]] = {}
        present: dict[tuple[Key, str], dict[str, tuple[int, ...]]] = {}

        def found(key: Key, field: str, value: str, places: tuple[int, ...]) -> None:
            absent.setdefault((key, field), set())
            present.setdefault((key, field), {})
            if places:
                present[(key, field)][value] = places
            else:
                absent[(key, field)].add(value)

        kept = 0  # characters of the ordered answers' texts
        for question, answer in reads.items():
            if question[0] == "positions":
                found(question[1], question[2], question[3], answer)
            elif question[0] == "container-name":
                for list_name, places in zip(CONTAINER_ORDER, answer, strict=True):
                    found((list_name,), "name", question[1], places)
            elif isinstance(answer, JsonValue):  # compared by its text: the pod's object is not kept
                kept += len(answer.text or "")
                ordered.append((question, JsonValue(answer.text, None)))
            else:
                kept += len(answer) if isinstance(answer, str) else 0
                ordered.append((question, answer))
        lookups = tuple(
            (key, field, frozenset(values), tuple(present[(key, field)].items()))
            for (key, field), values in absent.items()
        )
        strings = sum(len(value) for _, _, values, places in lookups for value in [*values, *dict(places)])
        return cls(tuple(ordered), lookups, strings + kept)

    def holds(self, view: PodView) -> bool:
        """Whether `view`'s pod gives every recorded answer. A question it cannot answer (a
        list that is not a list) is a difference: that pod is composed afresh, and refused there."""
        try:
            for question, answer in self.ordered:
                if view.answer(question) != answer:
                    return False
            for key, field, nowhere, somewhere in self.lookups:
                if not somewhere:
                    if view.any_of(key, field, nowhere):
                        return False
                    continue
                index = view.index(key, field)
                if not nowhere.isdisjoint(index):
                    return False
                for value, places in somewhere:
                    if index.get(value, ()) != places:
                        return False
        except InputError:
            return False
        return True

    def size(self) -> int:
        """READ_BYTES per question kept, and the characters of the values (a walk of every
        question would cost as much as the composition)."""
        questions = len(self.ordered) + sum(
            len(nowhere) + len(somewhere) for _, _, nowhere, somewhere in self.lookups
        )
        return READ_BYTES * questions + self.strings
