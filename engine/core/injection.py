"""Injecting a pod's chosen requests: each rule's fragments rendered and merged in Flyte's
order, and the search for an injection the pod already carries.

The engine (runtime.py) decodes and chooses; this module composes. It holds no state between
calls but the render cache it is given, so one `Composer` serves many threads at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Mapping
from typing import Any, cast

from .compose.modes import MountConflict, NameCollision
from .compose.pod_patch import Changed, PodPatch
from .errors import DeadlineExceeded, RefusalCode, Rejected, printable
from .limits import Limits
from .mutation import Injected
from .requests import SecretRequest
from .rules.model import FragmentSpec, PodRendered, Rendered, Rule

# How far from the end of the init containers a re-invoked pod's injection is looked for:
# other webhooks may have appended theirs after it (see Composer.replay).
REPLAY_WINDOW = 16

RenderKey = tuple[Rule, SecretRequest | tuple[SecretRequest, ...], int]


class Composer:
    """Composes patches for the engine. `render_cached` is the engine's bounded cache of
    renders (see `render_uncached`); `managers` name Flyte's managers in refusals."""

    def __init__(
        self,
        limits: Limits,
        render_cached: Callable[[RenderKey], Rendered | PodRendered],
        managers: tuple[str, ...],
    ) -> None:
        self.limits = limits
        self.render_cached = render_cached
        self.managers = managers

    def render(self, key: RenderKey, fresh: Container[int]) -> Rendered | PodRendered:
        """A render of a rule that does not read the pod: from the render cache, or without it
        when a request's id is in `fresh` (its annotation's first sight: the cache is not
        asked for it, and keeps nothing of it)."""
        requests = key[1] if isinstance(key[1], tuple) else (key[1],)
        if any(id(request) in fresh for request in requests):
            return render_uncached(key)
        return self.render_cached(key)

    def compose(
        self,
        patch: PodPatch,
        chosen: list[tuple[SecretRequest, Rule]],
        pod: Mapping[str, Any],
        deadline: float | None,
        *,
        base: int | None = None,
        renders: list[tuple[int, Rendered]] | None = None,
        fresh: Container[int] = frozenset(),
    ) -> list[Injected]:
        """Merge every chosen rule's fragments for every request, in Flyte's order. A replay
        (see `replay`) numbers init containers from `base`, where the first patch did.
        `renders` gets each secret's init container number and render (for plans.py).
        Requests whose ids are in `fresh` (their annotation's first sight) are rendered
        without the render cache."""
        limits = self.limits
        containers = patch.length("containers") + patch.length("initContainers")
        if containers > limits.maxContainers:
            raise Rejected(
                f"the pod has {containers} containers and init containers; "
                f"secretpatch.limits.maxContainers is {limits.maxContainers}",
                annotation="",
                code="limit",
            )
        merged: dict[tuple[int, str], int] = {}
        injected = []
        # Who rendered each name of a `unique` fragment.
        owners: dict[tuple[int, str], str] = {}
        # A rule with per-pod fragments renders them once, with all the secrets it took,
        # and merges them in their place among the fragments of its first secret.
        pending: dict[Rule, list[SecretRequest]] = {}
        for request, rule in chosen:
            if rule.per_pod:
                pending.setdefault(rule, []).append(request)
        for request, rule in chosen:
            check_deadline(deadline)
            if base is None:
                index = patch.length("initContainers")
            else:
                index = base + patch.matched.get(("initContainers",), 0)
            rendered = (
                rule.render(request, index, pod)
                if rule.reads_pod
                else cast(Rendered, self.render((rule, request, index), fresh))
            )
            if renders is not None:
                renders.append((index, rendered))
            batch = pending.pop(rule, None)
            whole: PodRendered | None = None
            if batch is not None:
                whole = (
                    rule.render_pod(batch, index, pod)
                    if rule.reads_pod
                    else cast(PodRendered, self.render((rule, tuple(batch), index), fresh))
                )
            name = request.label() if patch.track_sources else ""  # provenance only
            for position, spec in enumerate(rule.fragments):
                if spec.per == "pod":
                    if whole is None or batch is None:
                        continue
                    items = whole.items[position]
                    if patch.track_sources:  # every secret of the rule is its source
                        every = ",".join(r.annotation for r in batch)
                        patch.source = (rule.name, spec.fragment.name, every, f"{len(batch)} secrets")
                else:
                    items = rendered.items[position]
                    if patch.track_sources:
                        patch.source = (rule.name, spec.fragment.name, request.annotation, name)
                    if spec.unique:
                        self._claim(owners, spec, items, request)
                try:
                    skipped = merged if spec.skip_merged else None
                    spec.mode.merge(patch, spec.into, spec.field, items, merged=skipped, token=id(spec))
                except NameCollision as exc:
                    raise self._refusal(
                        request,
                        f"cannot add {exc.name!r}: {exc}; rename the pod's own item",
                        "name-collision",
                    ) from None
                except MountConflict as exc:
                    raise self._refusal(
                        request,
                        f"cannot mount {exc.name!r} at {exc.path}: {exc}, and a container's mount paths "
                        "must be unique; move the pod's own mount elsewhere",
                        "mount-conflict",
                    ) from None
            injected.append(Injected(request, rule.name, rendered.texts))
        return injected

    def replay(
        self,
        first: PodPatch,
        chosen: list[tuple[SecretRequest, Rule]],
        pod: Mapping[str, Any],
        deadline: float | None,
        *,
        copy_items: bool,
        fresh: Container[int] = frozenset(),
    ) -> PodPatch | None:
        """The injection composed as the pod's own, if the pod already carries it: it was
        injected once and is reviewed again (reinvocationPolicy: IfNeeded, after another
        webhook added containers), or its spec was copied from an injected pod. First
        patches carry no marker, so the injection itself is looked for.

        Tried only when composing added no pod-spec item by name (a fresh pod lacks the
        secrets volume). The init containers are named by the number the pod had, so the
        composition is replayed from each of the last REPLAY_WINDOW positions: its appends
        must find their items where a first patch put them, as written, and the other
        fragments fill what containers added since lack. The replays ask the first
        composition's view, so the memo records their questions with the answer."""
        length = first.view.length(("initContainers",)) or 0
        for base in range(length - 1, max(length - REPLAY_WINDOW, 0) - 1, -1):
            replay = PodPatch(
                pod,
                copy_items=copy_items,
                max_items=self.limits.maxListItems,
                track_sources=first.track_sources,
                view=first.view,
                replaying=True,
                max_ops=self.limits.maxPatchOperations,
            )
            try:
                self.compose(replay, chosen, pod, deadline, base=base, fresh=fresh)
            except (Changed, Rejected):
                continue
            if replay.matched:
                return replay
        return None

    def _claim(
        self,
        owners: dict[tuple[int, str], str],
        spec: FragmentSpec,
        items: tuple[Mapping[str, Any], ...],
        request: SecretRequest,
    ) -> None:
        """Refuse a second secret that renders an item name of a `unique` fragment (two
        requests for one environment variable): the pod would get one of them silently."""
        for item in items:
            owner = owners.setdefault((id(spec), item["name"]), request.annotation)
            if owner != request.annotation:
                raise self._refusal(
                    request,
                    f"cannot add {printable(item['name'], limit=80)!r}: {owner} adds it too "
                    f"({spec.fragment.name}); give each secret a name of its own",
                    "name-collision",
                )

    def _refusal(self, request: SecretRequest, reason: str, code: RefusalCode) -> Rejected:
        return refused_secret(request, reason, code, self.managers)


def refused_secret(
    request: SecretRequest, reason: str, code: RefusalCode, managers: tuple[str, ...]
) -> Rejected:
    """The refusal of one secret a pod asks for, with the annotation and the request named as
    Flyte's message names them (`managers`: those Flyte would have tried)."""
    return Rejected(
        f"{request.annotation}: {reason}",
        annotation=request.annotation,
        secret=request.describe(),
        code=code,
        managers=managers,
    )


def render_uncached(key: RenderKey) -> Rendered | PodRendered:
    """What the render cache holds: a rule's render of one request, or of all its requests
    of a pod (`Rule.render_pod`), for a rule whose templates do not read the pod."""
    rule, requests, index = key
    if isinstance(requests, tuple):
        return rule.render_pod(requests, index, {})
    return rule.render(requests, index, {})


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the review passed its deadline; its work was stopped")
