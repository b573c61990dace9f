"""Compositions remembered by their shape, for pods whose secrets are new.

The review memo (memo.py) answers a pod whose secret annotations it has seen. A pod of a new
task, or one asking for a secret no pod asked for before, misses it, and composing its patch
is then most of the review. Yet such pods mostly look alike: the same rules, the same number
of secrets, the same containers. What the composer decides (which operations, at which
paths, in which order) depends on nothing else than:

- the pod's answers to the questions the composer asked (`compose/view.py`), and
- of each rendered item, what the merge modes look at: its name and mount path, which of
  its fields are lists (a container's mounts and environment), the same of their items, and
  their lengths; all of a metadata fragment's item (its values are compared with the pod's).

The rest of an item (a gcloud line, an image) is carried into an operation, never looked at.
So a `Plan` keeps, for one composition, the record of the pod's answers (`Recorded`, as the
memo keeps it), the init container number each secret rendered at, each secret's item
shapes (the projection above; `MergeMode.shape`), and the operations with each rendered
item replaced by its place, their JSON text made once. A later pod with the same rules in
the same order gets the plan's operations, filled with its own rendered items (its patch's
text is the plan's, with its items' text in their places), when the record holds for it
and every secret, rendered at the plan's number, has the plan's shape. Composing would then
ask the same questions, get the same answers and see the same names at every step, so it
would make the same operations (tests/test_plans.py compares the two on generated pods).

Plans are kept in a memo of their own (keyed by the rules, second sight, within the byte
budget the engine gives it), only for compositions that added the pod's secrets volume (a
fresh pod; a pod carrying an injection already is replayed, which compares whole items) and
only for rules rendered per secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .admission import add_head
from .budget import approx_size
from .compose.recorded import Recorded
from .compose.view import PodView
from .jsontypes import PatchOp, compact_json
from .requests import SecretRequest
from .rules.model import Rendered, Rule

# What an operation is: a remove, or an add of the item at a place, of a list holding only
# that item (a list created), or of a value kept as it is.
REMOVE, ITEM, LIST, KEPT = 0, 1, 2, 3

# Path, what, (secret, fragment, item) or the value, and the operation's JSON text: all of it
# for a remove or a kept value, the text before the item for the others (admission.add_head).
PlannedOp = tuple[str, int, Any, str]


def shapes_of(rule: Rule, rendered: Rendered) -> tuple[Any, ...]:
    """A secret's rendered items, as each fragment's merge mode may look at them
    (`MergeMode.shape`): a static fragment's worked out at load, and as much of the others'
    as their templates decide (`FragmentSpec.item_shapes`)."""
    # Written for speed (no generator, one item alone): this runs for every secret of a
    # never-seen pod.
    shapes = []
    for spec, items in zip(rule.fragments, rendered.items, strict=True):
        if items is spec.items and spec.shape is not None:
            shapes.append(spec.shape)
            continue
        each = spec.item_shapes
        if each is None or len(each) != len(items):
            shapes.append(spec.mode.shapes(items))
        elif len(each) == 1:
            shapes.append((each[0](items[0]),))
        else:
            shapes.append(tuple([shape(item) for shape, item in zip(each, items, strict=True)]))
    return tuple(shapes)


@dataclass(frozen=True)
class Plan:
    """One composition's record of the pod, and what each secret rendered (see the module)."""

    record: Recorded
    indices: tuple[int, ...]  # the init container number each secret rendered at
    shapes: tuple[tuple[Any, ...], ...]

    def size(self) -> int:
        return self.record.size() + approx_size(self.shapes, once=True) + 16 * len(self.indices)

    def fits(
        self,
        view: PodView,
        chosen: Sequence[tuple[SecretRequest, Rule]],
        render: Callable[[Rule, SecretRequest, int], Rendered],
    ) -> list[Rendered] | None:
        """Each secret's render, when this plan's operations are this pod's (see the module);
        None otherwise. Rendering stops at the first secret whose shape differs."""
        if len(chosen) != len(self.indices) or not self.record.holds(view):
            return None
        renders = []
        for (request, rule), index, expected in zip(chosen, self.indices, self.shapes, strict=True):
            rendered = render(rule, request, index)
            if shapes_of(rule, rendered) != expected:
                return None
            renders.append(rendered)
        return renders


def plan_of(
    record: Recorded,
    chosen: Sequence[tuple[SecretRequest, Rule]],
    renders: Sequence[tuple[int, Rendered]],
    ops: Sequence[PatchOp],
) -> tuple[Plan, tuple[PlannedOp, ...]] | None:
    """The plan of a composition and its operations with each rendered item replaced by its
    place; None when an operation holds a rendered item other than as its value."""
    places: dict[int, tuple[int, int, int]] = {}
    for secret, (_, rendered) in enumerate(renders):
        for fragment, items in enumerate(rendered.items):
            for item, value in enumerate(items):
                places.setdefault(id(value), (secret, fragment, item))
    planned: list[PlannedOp] = []
    for op in ops:
        path = op["path"]
        if op["op"] == "remove":
            planned.append((path, REMOVE, None, compact_json(op)))
            continue
        value = op["value"]
        if id(value) in places:
            planned.append((path, ITEM, places[id(value)], add_head(path)))
        elif type(value) is list and len(value) == 1 and id(value[0]) in places:
            planned.append((path, LIST, places[id(value[0])], add_head(path) + "["))
        elif _holds_item(value, places):
            return None
        else:
            planned.append((path, KEPT, value, add_head(path) + compact_json(value) + "}"))
    shapes = tuple(
        shapes_of(rule, rendered) for (_, rule), (_, rendered) in zip(chosen, renders, strict=True)
    )
    plan = Plan(record, tuple(index for index, _ in renders), shapes)
    return plan, tuple(planned)


def _holds_item(value: Any, places: Mapping[int, Any]) -> bool:
    if isinstance(value, Mapping):
        return any(id(v) in places or _holds_item(v, places) for v in value.values())
    if isinstance(value, list):
        return any(id(v) in places or _holds_item(v, places) for v in value)
    return False


def encoded(
    planned: Sequence[PlannedOp], renders: Sequence[Rendered], item_text: Callable[[Any], str]
) -> bytes:
    """The JSON text of the plan's operations filled with this pod's rendered items (each
    item's text by `item_text`): what admission.PatchEncoder makes of those operations,
    without making them. The rest of each operation's text was made with the plan."""
    parts = []
    for _, what, where, text in planned:
        if what in {REMOVE, KEPT}:
            parts.append(text)
            continue
        secret, fragment, item = where
        value = item_text(renders[secret].items[fragment][item])
        parts.append(f"{text}{value}]}}" if what == LIST else f"{text}{value}}}")
    return ("[" + ",".join(parts) + "]").encode("utf-8")
