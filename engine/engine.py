"""The engine: configuration and rules loaded once, then pods in, patches out.

`Engine.from_config` does all the I/O and all the checking; after it returns, `mutate` and
`review` read no file and share no mutable state between calls, so one engine serves many
threads at once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jsonpatch

from . import admission
from .config import Config, load_config
from .errors import InputError, Rejected
from .memo import ReviewMemo, Trace
from .patch import NameCollision, PodPatch, TooManyItems
from .rules import FragmentSpec, Rule
from .ruleset import load_rules
from .secrets import SecretRequest, decode_requests, secret_annotations
from .types import AdmissionReviewResponse, PatchOp, is_object


@dataclass(frozen=True)
class Injected:
    """Provenance of one injected secret: the request, the rule, the texts it rendered."""

    secret: SecretRequest
    rule: str
    texts: Mapping[str, str]


@dataclass(frozen=True)
class Source:
    """Where one operation came from: the rule, the fragment's template, the secret."""

    rule: str
    template: str
    annotation: str
    secret: str  # group/group_version


@dataclass(frozen=True)
class Mutation:
    """The result of `Engine.mutate`. `patch` is RFC 6902 against `original`."""

    original: Mapping[str, Any]
    patch: list[PatchOp]
    injected: tuple[Injected, ...] = ()
    sources: tuple[Source, ...] = ()  # one per operation of `patch`

    @cached_property
    def pod(self) -> dict[str, Any]:
        """The patched pod, made by applying `patch` with the jsonpatch library."""
        if not self.patch:
            return copy.deepcopy(dict(self.original))
        result: dict[str, Any] = jsonpatch.apply_patch(self.original, copy.deepcopy(self.patch))
        return result


class Engine:
    def __init__(self, config: Config, rules: Sequence[Rule], warnings: Sequence[str] = ()) -> None:
        self.config = config
        self.rules = tuple(rules)
        self.warnings = tuple(warnings)
        _mark_idempotent_merges(self.rules)
        # Requests repeat all day; which rule takes one depends on the request alone.
        self._rule_for = lru_cache(maxsize=4096)(self._choose_rule)
        self._encode = admission.PatchEncoder()
        # A rule whose templates read the pod makes patches depend on more than memo.shape sees.
        memo_bytes = config.limits.memoBytes
        off = memo_bytes == 0 or any(rule.reads_pod for rule in self.rules)
        self._memo = None if off else ReviewMemo(max_bytes=memo_bytes)

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any] | None = None) -> Engine:
        """Load config, rules and templates; any mistake raises LoadError with file and line."""
        config = load_config(source)
        return cls(config, *load_rules(config))

    def mutate(self, pod: Mapping[str, Any]) -> Mutation:
        """The patch Flyte's webhook would apply; raises Rejected for a secret it cannot inject."""
        return self._mutate(pod, copy_items=True)

    def _annotations(self, pod: Mapping[str, Any]) -> list[tuple[str, str]]:
        if not is_object(pod):
            raise InputError("a pod must be a JSON object")
        return secret_annotations(pod)

    def _mutate(
        self,
        pod: Mapping[str, Any],
        *,
        copy_items: bool,
        requests: list[SecretRequest] | None = None,
        trace: Trace | None = None,
    ) -> Mutation:
        if requests is None:
            requests = decode_requests(self._annotations(pod), self.config.limits.maxSecrets)
        if not requests:
            return Mutation(pod, [])
        chosen = [(request, self._rule_for(request)) for request in requests]
        # Provenance is for callers that keep the Mutation; reviews serialise and drop it.
        patch = PodPatch(
            pod,
            copy_items=copy_items,
            max_items=self.config.limits.maxListItems,
            track_sources=copy_items,
            trace=trace,
        )
        try:
            injected = self._compose(patch, chosen, pod)
        except TooManyItems as exc:
            raise Rejected(str(exc), annotation="", code="limit") from None
        sources = tuple(Source(*source) for source in patch.sources)
        return Mutation(pod, patch.ops, tuple(injected), sources)

    def _compose(
        self, patch: PodPatch, chosen: list[tuple[SecretRequest, Rule]], pod: Mapping[str, Any]
    ) -> list[Injected]:
        """Merge every chosen rule's fragments for every request, in Flyte's order."""
        limits = self.config.limits
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
        for request, rule in chosen:
            rendered = rule.render(request, patch.length("initContainers"), pod)
            name = f"{request.group}/{request.group_version}"
            for spec, items in zip(rule.fragments, rendered.items, strict=True):
                if patch.track_sources:
                    patch.source = (rule.name, spec.fragment.name, request.annotation, name)
                try:
                    _merge(patch, spec, items, merged)
                except NameCollision as exc:
                    raise Rejected(
                        f"{request.annotation}: cannot add {exc.name!r}: {exc}; rename the pod's own item",
                        annotation=request.annotation,
                        secret=request.describe(),
                        code="name-collision",
                    ) from None
            injected.append(Injected(request, rule.name, rendered.texts))
        return injected

    @property
    def memo(self) -> ReviewMemo | None:
        """The remembered answers (None when a rule reads the pod or limits.memoBytes is 0);
        `hits` and `misses` count reviews that asked for secrets."""
        return self._memo

    def review(self, review: Mapping[str, Any]) -> AdmissionReviewResponse:
        """An AdmissionReview response; raises InputError only for a malformed review."""
        return self.review_outcome(review).response

    def review_outcome(self, review: Mapping[str, Any]) -> admission.Outcome:
        """`review`, plus what a server logs and counts: result, secret names, denial code."""
        return admission.review(self._review_mutate, review)

    def _review_mutate(self, pod: Mapping[str, Any]) -> admission.Answer:
        annotations = self._annotations(pod)
        if not annotations:
            return admission.Answer()
        # The annotations as they are decide the requests, so they key the memo undecoded.
        memo, key = self._memo, tuple(annotations)
        if memo is not None:
            remembered = memo.find(key, pod)
            if remembered is not None:
                return remembered
        requests = decode_requests(annotations, self.config.limits.maxSecrets)
        trace = Trace()
        mutation = self._mutate(pod, copy_items=False, requests=requests, trace=trace)
        secrets = tuple(f"{i.secret.group}/{i.secret.group_version}" for i in mutation.injected)
        rules = sorted({i.rule for i in mutation.injected})
        answer = admission.Answer(
            admission.patch_field(self._encode(mutation.patch)) if mutation.patch else "",
            secrets,
            {"secrets": ",".join(secrets), "rule": ",".join(rules)},
        )
        if memo is not None:
            memo.store(key, trace, pod, answer)
        return answer

    def _choose_rule(self, request: SecretRequest) -> Rule:
        reasons = []
        for rule in self.rules:
            refusal = rule.refusal(request)
            if refusal is None:
                return rule
            reasons.append((rule.name, *refusal))
        if len(reasons) == 1:
            text = reasons[0][2]
        else:
            text = "; ".join(f"rule {name}: {reason}" for name, _, reason in reasons)
        raise Rejected(
            f"{request.annotation}: {text}",
            annotation=request.annotation,
            secret=request.describe(),
            code=reasons[0][1],
        )


def _merge(
    patch: PodPatch,
    spec: FragmentSpec,
    items: Sequence[Mapping[str, Any]],
    merged: dict[tuple[int, str], int],
) -> None:
    """Merge a fragment's items into its target lists, in Flyte's order (item by item).

    When merging is known to be idempotent, targets already merged into for an earlier
    secret are skipped: Flyte re-applies them for every secret, with no effect, which would
    make the patch grow with the square of the number of secrets.
    """
    keys: list[Any] = []
    field, skip = spec.field, spec.skip_merged
    for list_name in spec.into:
        memo = (id(spec), list_name)
        if field is None:
            if skip:
                if memo in merged:
                    continue
                merged[memo] = 1
            keys.append((list_name,))
        else:
            end = patch.length(list_name)
            start = merged.get(memo, 0) if skip else 0
            if skip:
                merged[memo] = end
            keys.extend([(list_name, i, field) for i in range(start, end)])
    apply = spec.mode.apply
    for item in items:
        for key in keys:
            apply(patch, key, item)


def _mark_idempotent_merges(rules: Sequence[Rule]) -> None:
    """A fragment may skip targets it has merged into when re-merging cannot change them.

    That holds when the mode is idempotent, the fragment renders the same items for every
    secret, no other fragment writes the same lists, and no fragment reorders the container
    lists the fragment walks.
    """
    writers: dict[tuple[str, str | None], int] = {}
    reordered: set[str] = set()
    specs = [spec for rule in rules for spec in rule.fragments]
    for spec in specs:
        for list_name in spec.into:
            writers[(list_name, spec.field)] = writers.get((list_name, spec.field), 0) + 1
            if spec.field is None and spec.mode.name == "prepend":
                reordered.add(list_name)
    for spec in specs:
        spec.skip_merged = (
            spec.mode.idempotent
            and spec.fragment.is_static
            and all(writers[(list_name, spec.field)] == 1 for list_name in spec.into)
            and not (spec.field is not None and reordered & set(spec.into))
        )
