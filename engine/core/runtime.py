"""The engine: configuration and rules loaded once, then pods in, patches out.

`Engine.from_config` does all the I/O and all the checking; after it returns, `mutate` and
`review` read no file and share no mutable state between calls, so one engine serves many
threads at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from . import admission
from .budget import BoundedCache, CacheStats, approx_size
from .compose.pod_patch import PodPatch, TooManyItems
from .compose.recorded import Recorded
from .compose.view import PodView
from .config import Config, flyte_managers, load_config
from .errors import InputError, Rejected, RenderError
from .injection import Composer, RenderKey, check_deadline, refused_secret, render_uncached
from .jsontypes import AdmissionReviewResponse, is_object
from .memo import ReviewMemo, key_of
from .mutation import Mutation, Source
from .plans import Plan, PlannedOp, encoded, plan_of
from .requests import SecretRequest, decode_annotation, order_annotations, secret_annotations
from .rules.model import ArgumentTooLong, PodRendered, Rendered, Rule, mark_skippable
from .rules.select import load_rules


@dataclass
class _Trace:
    """What a composition leaves for the memo and for plans: the view it read the pod
    through, each secret's init container number and render, and whether it added the
    secrets volume (a fresh pod, neither replayed nor carrying an injection)."""

    view: PodView | None = None
    renders: list[tuple[int, Rendered]] = field(default_factory=list)
    fresh: bool = False
    _record: Recorded | None = None

    def recorded(self) -> Recorded:
        """The record of the pod's answers through `view`, made once (the memo and plans
        both keep it); only once the composition has set the view."""
        if self._record is None:
            assert self.view is not None
            self._record = Recorded.of(self.view.reads)
        return self._record


def _item_texts(chosen: Sequence[tuple[SecretRequest, Rule]], renders: Sequence[Rendered]) -> dict[int, Any]:
    """How the encoder makes the JSON text of each item these renders hold whose fragment's
    skeleton is known (FragmentSpec.item_json), by the item's id (PatchEncoder)."""
    known = {}
    for (_, rule), rendered in zip(chosen, renders, strict=True):
        for spec, items in zip(rule.fragments, rendered.items, strict=True):
            each = spec.item_json
            if each is not None and items is not spec.items and len(each) == len(items):
                for text, item in zip(each, items, strict=True):
                    known[id(item)] = (text, item)
    return known


def _plan_key(chosen: Sequence[tuple[SecretRequest, Rule]]) -> tuple[str, ...]:
    """Plans are kept by the rules of a pod's secrets, in order."""
    return tuple(rule.name for _, rule in chosen)


class Engine:
    def __init__(self, config: Config, rules: Sequence[Rule], warnings: Sequence[str] = ()) -> None:
        self.config = config
        self.rules = tuple(rules)
        self.warnings = tuple(warnings)
        # The managers Flyte 2.0 tries, as its denial message lists them.
        self.managers = flyte_managers(config)
        mark_skippable(self.rules)
        limits = config.limits
        # Requests repeat all day. What an annotation decodes to depends on its text alone,
        # which rule takes a request on the request alone, and what a rule renders on the
        # request and the init container number alone (unless its templates read the pod).
        # Every cache has a byte budget that counts its keys; rules are shared, not counted.
        # Each keeps what comes a second time: a pod of a new task pays for no entry that
        # may never be asked for, and cannot push out those that are. The decode cache
        # keeps an annotation's request at its second sight (budget.Doorkeeper); the rule
        # and render caches are asked only for the request of an annotation that came
        # before (`_request`), and keep what they compute for it. A never-seen secret
        # costs them nothing. (A decode cache too small for a doorkeeper cannot tell: then
        # they have their own.)
        self._decoded: BoundedCache[tuple[str, str], SecretRequest] = BoundedCache(
            "decode", limits.decodeCacheBytes, second_sight=True
        )
        own = not self._decoded.at_second_sight
        chosen: BoundedCache[SecretRequest, Rule] = BoundedCache(
            "rule", limits.ruleCacheBytes, lambda request, _: approx_size(request), second_sight=own
        )
        self._rule_for = chosen.cached(self._choose_rule)
        # A per-pod render is keyed by all the rule's requests and shares the budget.
        rendered: BoundedCache[RenderKey, Rendered | PodRendered] = BoundedCache(
            "render",
            limits.renderCacheBytes,
            lambda key, value: approx_size(key[1:]) + approx_size(value, key[0].shared),
            second_sight=own,
        )
        self._composer = Composer(limits, rendered.cached(render_uncached), self.managers)
        self._encode = admission.PatchEncoder(limits.encoderCacheBytes)
        self._caches: list[BoundedCache[Any, Any]] = [self._decoded, chosen, rendered, self._encode.cache]
        # A rule whose templates read the pod makes patches depend on more than the memo sees.
        off = limits.memoBytes == 0 or any(rule.reads_pod for rule in self.rules)
        # A quarter of the memo's budget holds plans (plans.py): compositions by shape, for
        # pods whose secrets are new.
        plan_bytes = limits.memoBytes // 4
        self._memo: ReviewMemo[Recorded, admission.Answer] | None = (
            None if off else ReviewMemo(max_bytes=limits.memoBytes - plan_bytes, second_sight=True)
        )
        self._plans: ReviewMemo[Plan, tuple[PlannedOp, ...]] | None = (
            None if off else ReviewMemo(max_bytes=plan_bytes, second_sight=True, name="plans")
        )
        # The annotations `remembered_outcome` last found no answer for, and their memo key
        # (a digest: 30-50 us at 50 secrets), which the review that follows reuses when its
        # pod's annotations are equal. Threads may race here: an older pair only misses.
        self._last_key: tuple[list[tuple[str, str]], bytes | None] | None = None

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

    def _request(self, name: str, value: str) -> tuple[SecretRequest, bool]:
        """The annotation's request, and whether this is the first sight of the annotation
        (then the rule and render caches are not asked: see __init__)."""
        decoded, key = self._decoded, (name, value)
        request = decoded.get(key)
        if request is not None:
            return request, False
        request = decode_annotation(name, value)
        if decoded.admits(key):  # (a decode cache without a doorkeeper admits every key)
            decoded.keep(key, request)
            return request, False
        return request, True

    def _rule_of(self, request: SecretRequest, first_sight: bool) -> Rule:
        return self._choose_rule(request) if first_sight else self._rule_for(request)

    def _chosen(
        self, annotations: list[tuple[str, str]], deadline: float | None
    ) -> tuple[list[tuple[SecretRequest, Rule]], frozenset[int]]:
        """Each annotation decoded and given its rule, one by one, so that the first bad
        request stops the work: a hostile pod costs at most one decoding more than its
        valid requests. With the ids of the requests of annotations at their first sight,
        which are rendered without the render cache (see __init__)."""
        limits = self.config.limits
        chosen = []
        fresh = set()
        for name, value in order_annotations(annotations, limits.maxSecrets, limits.maxAnnotationChars):
            check_deadline(deadline)
            request, first_sight = self._request(name, value)
            chosen.append((request, self._rule_of(request, first_sight)))
            if first_sight:
                fresh.add(id(request))
        return chosen, frozenset(fresh)

    def _mutate(
        self,
        pod: Mapping[str, Any],
        *,
        copy_items: bool,
        decided: tuple[list[tuple[SecretRequest, Rule]], frozenset[int]] | None = None,
        deadline: float | None = None,
        trace: _Trace | None = None,
    ) -> Mutation:
        """`decided`: what `_chosen` gave, when the caller has it."""
        chosen, fresh = self._chosen(self._annotations(pod), deadline) if decided is None else decided
        if not chosen:
            return Mutation(pod, [])
        # Provenance is for callers that keep the Mutation; reviews serialise and drop it.
        patch = PodPatch(
            pod,
            copy_items=copy_items,
            max_items=self.config.limits.maxListItems,
            track_sources=copy_items,
            max_ops=self.config.limits.maxPatchOperations,
        )
        if trace is not None:
            trace.view = patch.view
        try:
            renders = None if trace is None else trace.renders
            injected = self._composer.compose(patch, chosen, pod, deadline, renders=renders, fresh=fresh)
            if patch.ops and not patch.added_singleton:
                replay = self._composer.replay(
                    patch, chosen, pod, deadline, copy_items=copy_items, fresh=fresh
                )
                if replay is not None:
                    patch = replay
            elif trace is not None:
                trace.fresh = True
        except (TooManyItems, ArgumentTooLong) as exc:
            raise Rejected(str(exc), annotation="", code="limit") from None
        if patch.replaying and patch.unchanged():
            return Mutation(pod, [])  # carried: this review injects nothing, and counts none
        sources = tuple(Source(*source) for source in patch.sources)
        return Mutation(pod, patch.ops, tuple(injected), sources)

    @property
    def memo(self) -> ReviewMemo[Recorded, admission.Answer] | None:
        """The remembered answers (None when a rule reads the pod or limits.memoBytes is 0);
        `hits` and `misses` count reviews that asked for secrets."""
        return self._memo

    def cache_stats(self) -> list[CacheStats]:
        """Each cache's budget, bytes held, entries and evictions (the server exports them)."""
        stats = [cache.stats() for cache in self._caches]
        for memo in (self._memo, self._plans):
            if memo is not None:
                stats.append(memo.stats())
        return stats

    def review(self, review: Mapping[str, Any]) -> AdmissionReviewResponse:
        """An AdmissionReview response; raises InputError only for a malformed review."""
        return self.review_outcome(review).response

    def review_outcome(
        self, review: Mapping[str, Any], *, deadline: float | None = None
    ) -> admission.Outcome:
        """`review`, plus what a server logs and counts: result, secret names, denial code.

        `deadline` (a `time.monotonic()` value) stops the work between two secrets once it has
        passed, raising DeadlineExceeded: no answer is better than a late one."""
        request = admission.parse_request(review)
        if request.operation != "CREATE":
            return admission.skipped(request)
        try:
            answer = self._review_mutate(request.pod, deadline)
        except Rejected as exc:
            if self.config.on_refusal == "admit":
                return admission.admitted(request, self._refusals(request.pod, exc, deadline))
            return admission.refused(request, exc)
        except (InputError, RenderError) as exc:
            return admission.refused(request, exc)
        return admission.answered(request, answer)

    def _refusals(self, pod: Mapping[str, Any], first: Rejected, deadline: float | None) -> list[Rejected]:
        """Every secret request of a refused pod that cannot be injected, for the warnings of
        an admitted pod: composing stopped at the first, so the others are decoded and
        matched to a rule here (at most `limits.maxSecrets` of them, as for a valid pod)."""
        refusals = [first]
        if not first.annotation:  # the pod as a whole (a limit, a bad name): nothing is read
            return refusals
        limits = self.config.limits
        ordered = order_annotations(self._annotations(pod), limits.maxSecrets, limits.maxAnnotationChars)
        for name, value in ordered:
            check_deadline(deadline)
            if name == first.annotation:
                continue
            try:
                self._rule_of(*self._request(name, value))
            except Rejected as exc:
                refusals.append(exc)
        return refusals

    def remembered_outcome(self, review: Mapping[str, Any]) -> admission.Outcome | None:
        """`review_outcome` when it costs no decoding, rendering or composing: a review that
        is not a CREATE, a pod that asks for no secrets, or a pod the memo has answered.
        None otherwise. A server answers these at once and hands the rest to a worker."""
        request = admission.parse_request(review)
        if request.operation != "CREATE":
            return admission.skipped(request)
        try:
            annotations, key, remembered, _ = self._lookup(request.pod)
        except InputError as exc:
            return admission.refused(request, exc)
        if remembered is None:
            # A server reviews this pod next (review_outcome): the memo key need not be
            # worked out again from the same annotations.
            self._last_key = (annotations, key)
            return None
        return admission.answered(request, remembered)

    def _lookup(
        self, pod: Mapping[str, Any]
    ) -> tuple[list[tuple[str, str]], bytes | None, admission.Answer | None, PodView | None]:
        """The pod's secret annotations, their memo key, the answer they need without
        composing (none for no secrets, or the memo's) if there is one, and the view the
        memo asked the pod through (for plans; none when it could not ask)."""
        annotations = self._annotations(pod)
        if not annotations:
            return annotations, None, admission.Answer(), None
        if self._memo is None:
            return annotations, None, None, None
        # The annotations as they are decide the requests, so they key the memo undecoded.
        last = self._last_key
        key = last[1] if last is not None and last[0] == annotations else key_of(annotations)
        try:
            view = PodView(pod, self.config.limits.maxListItems)
        except InputError:
            return annotations, key, None, None  # composing says what is wrong with it
        return annotations, key, self._memo.find(key, lambda record: record.holds(view)), view

    def _review_mutate(self, pod: Mapping[str, Any], deadline: float | None = None) -> admission.Answer:
        annotations, key, remembered, view = self._lookup(pod)
        if remembered is not None:
            return remembered
        memo = self._memo
        if memo is not None:
            memo.misses += 1
        chosen, fresh = self._chosen(annotations, deadline)
        trace = _Trace()
        planned = None if view is None else self._planned(view, chosen, fresh, deadline)
        if planned is not None:  # every secret is injected, with its rule
            text, record = planned
            secrets = tuple(request.label() for request, _ in chosen)
            rules = sorted({rule.name for _, rule in chosen})
        else:
            mutation = self._mutate(
                pod, copy_items=False, decided=(chosen, fresh), deadline=deadline, trace=trace
            )
            self._plan(chosen, trace, mutation)
            record = None
            renders = [rendered for _, rendered in trace.renders]
            known = _item_texts(chosen, renders) if len(renders) == len(chosen) else None
            text = self._encode(mutation.patch, known) if mutation.patch else b""
            secrets = tuple(i.secret.label() for i in mutation.injected)
            rules = sorted({i.rule for i in mutation.injected})
        answer = admission.Answer(
            admission.patch_field(text) if text else "",
            secrets,
            {"secrets": ",".join(secrets), "rule": ",".join(rules)},
        )
        if memo is not None and key is not None:
            # A plan's record holds for this pod: composing it would have asked its questions.
            if record is not None:
                memo.store(key, lambda: record, answer)
            elif trace.view is not None:
                memo.store(key, trace.recorded, answer)
        return answer

    def _planned(
        self,
        view: PodView,
        chosen: list[tuple[SecretRequest, Rule]],
        fresh: frozenset[int],
        deadline: float | None,
    ) -> tuple[bytes, Recorded] | None:
        """The patch's JSON text a remembered plan gives this pod (plans.py), if one fits,
        with the plan's record of the pod (this pod gives each of its answers). `view` is
        the one the memo asked the pod through: the plan's record asks the same kind of
        questions."""
        plans = self._plans
        if plans is None or not chosen or any(rule.per_pod for _, rule in chosen):
            return None
        render = self._composer.render
        fitted: list[tuple[Plan, list[Rendered]]] = []

        def rendered(rule: Rule, request: SecretRequest, index: int) -> Rendered:
            check_deadline(deadline)
            return cast(Rendered, render((rule, request, index), fresh))

        def fits(plan: Plan) -> bool:
            renders = plan.fits(view, chosen, rendered)
            if renders is not None:
                fitted.append((plan, renders))
            return renders is not None

        try:
            planned = plans.find(_plan_key(chosen), fits)
        except (RenderError, ArgumentTooLong):
            return None  # composing renders the same secret at the same number, and refuses it
        if planned is None:
            return None
        plan, renders = fitted[-1]
        known = _item_texts(chosen, renders)
        return encoded(planned, renders, lambda item: self._encode.item(item, known)), plan.record

    def _plan(self, chosen: list[tuple[SecretRequest, Rule]], trace: _Trace, mutation: Mutation) -> None:
        """Remember a fresh pod's composition as a plan (plans.py) for pods shaped like it."""
        plans, view = self._plans, trace.view
        if plans is None or not trace.fresh or view is None or not mutation.patch:
            return
        if any(rule.per_pod for _, rule in chosen) or len(trace.renders) != len(chosen):
            return
        # Kept at the second sight of its rules with this record: a pod of a shape no other
        # pod has (another number of env variables, say) makes and sizes no plan.
        record, key = trace.recorded(), _plan_key(chosen)
        try:
            sight: Any = (key, hash(record))
        except TypeError:  # (an answer that cannot be hashed: the rules alone)
            sight = key
        plans.remember(key, lambda: plan_of(record, chosen, trace.renders, mutation.patch), sight=sight)

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
        raise refused_secret(request, text, reasons[0][1], self.managers)
