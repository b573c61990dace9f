"""Rules at request time: which secret requests a secret manager takes, and what it renders.

A compiled rule (see load.py for reading rule files) answers two questions per request:
does it accept it (and if not, why), and which items does each of its fragments add.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

from ..compose.modes import MergeMode, ShapeError
from ..compose.pod_patch import CONTAINER_LISTS
from ..errors import RefusalCode, RenderError, quote_value
from ..requests import MAX_FIELD_LENGTH, SecretRequest
from ..templating.fragments import Fragment
from ..templating.jinja import TextTemplate

REQUEST_FIELDS = ("group", "group_version", "key", "env_var")
# The oldest Kubernetes a rule's patched pods are valid for when it does not say.
DEFAULT_MINIMUM_KUBERNETES = "1.31"

SAMPLE_REQUEST = SecretRequest(annotation="flyte.secrets/s0", group="sample-secret", group_version="1")
SAMPLE_POD: Mapping[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sample", "namespace": "default", "labels": {}, "annotations": {}},
    "spec": {"containers": [{"name": "main", "image": "sample"}]},
}


@dataclass(frozen=True)
class FieldRule:
    name: str
    required: bool
    pattern: re.Pattern[str] | None
    rule: str


@dataclass
class FragmentSpec:
    """One entry of a rule's `fragments`: a compiled template and where it merges."""

    fragment: Fragment
    mode: MergeMode
    into: tuple[str, ...]
    field: str | None
    line: int | None
    # "secret": rendered and merged for each secret; "pod": once per pod, with every secret
    # the rule took (`secrets`), where the rule's first secret merges.
    per: str = "secret"
    # Two secrets of a pod may not render items of the same name (the pod is refused).
    unique: bool = False
    # Set by the engine: merging into a container twice is known to change nothing.
    skip_merged: bool = False
    # A static fragment's items, worked out once by the loader (`static_items`): every
    # render hands out the same ones.
    items: tuple[Mapping[str, Any], ...] | None = None
    # What merging those items may look at (MergeMode.shape), for plans, worked out with them.
    shape: tuple[Any, ...] | None = None
    # For a fragment rendered per secret: what gives the shape of each item it renders,
    # worked out at load from its template (MergeMode.item_shapes); None: MergeMode.shapes.
    item_shapes: tuple[Callable[[Any], Any], ...] | None = None
    # The same, for each item's JSON text (jsontypes.skeleton_json; None: encoded whole).
    item_json: tuple[Callable[[Any], str], ...] | None = None


class Rendered(NamedTuple):
    """What a rule renders for one secret: its texts and each fragment's items (none for a
    fragment rendered per pod). (A NamedTuple: made for every secret of a never-seen pod,
    in a third of a frozen dataclass's time.)"""

    texts: Mapping[str, str]
    items: tuple[tuple[Mapping[str, Any], ...], ...]


@dataclass(frozen=True)
class PodRendered:
    """What a rule's per-pod fragments render for all its secrets: each fragment's items, in
    the order of `Rule.fragments` (none for a fragment rendered per secret)."""

    items: tuple[tuple[Mapping[str, Any], ...], ...]


@dataclass(eq=False)
class Rule:
    name: str
    manager: str
    file: str
    config_section: str | None
    config_keys: tuple[str, ...]
    values: dict[str, Any]
    mount: Mapping[str, bool | str]
    fields: Mapping[str, FieldRule]
    texts: dict[str, TextTemplate] = field(default_factory=dict)
    fragments: list[FragmentSpec] = field(default_factory=list)
    reads_pod: bool = False
    # The request fields the rule's templates may read (set by the loader, which knows them
    # with the values): only these are validated, and only these reach the templates.
    reads: frozenset[str] = frozenset(REQUEST_FIELDS)
    # The oldest Kubernetes minor version its patched pods are valid for (`secretpatch lint`).
    minimum_kubernetes: str = DEFAULT_MINIMUM_KUBERNETES
    # The objects its renders share (see Fragment.shared), set by the loader.
    shared: frozenset[int] = frozenset()

    def refusal(self, request: SecretRequest) -> tuple[RefusalCode, str] | None:
        """Why this rule will not take the request (a metrics code and the reason), or None."""
        for name, rule in self.fields.items():
            if rule.required and not getattr(request, name):
                return "required-field", f"{name} is empty; it {rule.rule}"
        verdict = self.mount.get(request.mount_requirement)
        if verdict is not True:
            if isinstance(verdict, str):
                return "mount-requirement", verdict
            accepted = ", ".join(k for k, v in self.mount.items() if v is True)
            return (
                "mount-requirement",
                f"mount_requirement {request.mount_requirement} is not accepted; accepted: {accepted}",
            )
        for name in REQUEST_FIELDS:
            value: str = getattr(request, name)
            if not value or name not in self.reads:
                continue
            grammar = self.fields.get(name)
            if grammar is None or grammar.pattern is None:
                return (
                    "invalid-field",
                    f"{name} {quote_value(value)} is not accepted: this rule takes no {name}",
                )
            if len(value) > MAX_FIELD_LENGTH:
                return "invalid-field", f"{name} is {len(value)} characters long; it {grammar.rule}"
            # Whatever a rule allows, a value from a pod is printable ASCII of bounded length.
            if not (value.isascii() and value.isprintable()) or not grammar.pattern.fullmatch(value):
                return "invalid-field", f"{name} {quote_value(value)} is not valid: it {grammar.rule}"
        return None

    @cached_property
    def per_pod(self) -> bool:
        """Whether a fragment of the rule is rendered once per pod (asked for every secret
        composed; fragments are fixed once the rule is loaded)."""
        return any(spec.per == "pod" for spec in self.fragments)

    @cached_property
    def _unread(self) -> tuple[str, ...]:
        """The request fields no template reads (`reads` is set by the loader before any
        render)."""
        return tuple(name for name in REQUEST_FIELDS if name not in self.reads)

    def _visible(self, request: SecretRequest) -> SecretRequest:
        """The request as templates see it: a field no template reads is not validated, so
        none may see it."""
        unread = {name: "" for name in self._unread if getattr(request, name)}
        return replace(request, **unread) if unread else request

    def _texts(self, request: SecretRequest, index: int, pod: Mapping[str, Any]) -> dict[str, Any]:
        context: dict[str, Any] = {"secret": request, "index": index, "values": self.values, "pod": pod}
        context["texts"] = {name: template.render(context) for name, template in self.texts.items()}
        return context

    def render(self, request: SecretRequest, index: int, pod: Mapping[str, Any]) -> Rendered:
        """What the rule adds for one secret. The engine caches it by request and index when
        the rule's templates do not read the pod (`reads_pod`)."""
        context = self._texts(self._visible(request), index, pod)
        return Rendered(context["texts"], self._render_items(context, "secret"))

    def render_pod(
        self, requests: Sequence[SecretRequest], index: int, pod: Mapping[str, Any]
    ) -> PodRendered:
        """What the rule's per-pod fragments add for all the secrets it took, in the pod's
        order. They see `secrets`: for each, its annotation, its label (group/version,
        escaped) and its texts rendered with this `index`; never a request's fields, which
        the texts alone read (so `reads` stays what the texts and per-secret fragments read)."""
        secrets = []
        for request in requests:
            visible = self._visible(request)
            texts = self._texts(visible, index, pod)["texts"]
            secrets.append({"annotation": visible.annotation, "label": visible.label(), "texts": texts})
        context: dict[str, Any] = {"secrets": secrets, "index": index, "values": self.values, "pod": pod}
        return PodRendered(self._render_items(context, "pod"))

    def _render_items(
        self, context: Mapping[str, Any], per: str
    ) -> tuple[tuple[Mapping[str, Any], ...], ...]:
        """Each fragment's items: rendered for the fragments of this `per`, none for the others."""
        rendered: list[tuple[Mapping[str, Any], ...]] = []
        for spec in self.fragments:  # (a loop, not a generator: it runs for every secret)
            if spec.per != per:
                rendered.append(())
            elif spec.items is not None:
                rendered.append(spec.items)
            else:
                rendered.append(_items(spec, spec.fragment.render(context)))
        return tuple(rendered)


# Linux's MAX_ARG_STRLEN: the longest single argument or environment string exec takes. A
# container whose command holds a longer one cannot start ("argument list too long").
MAX_ARG_BYTES = 32 * 4096


class ArgumentTooLong(Exception):
    """A rendered container would not start: the engine refuses the pod, naming the limit."""


def _items(spec: FragmentSpec, value: Any) -> tuple[Mapping[str, Any], ...]:
    """The items a fragment rendered, in the shape its merge mode takes; a container's
    argument or environment string past MAX_ARG_BYTES raises ArgumentTooLong."""
    try:
        items = spec.mode.items(value)
    except ShapeError as exc:
        raise RenderError(str(exc), file=spec.fragment.file) from None
    if spec.field is None and not CONTAINER_LISTS.isdisjoint(spec.into):
        strings = [s for item in items for field in ("command", "args") for s in item.get(field) or ()]
    elif spec.field == "env":
        strings = [f"{item['name']}={item.get('value', '')}" for item in items]
    else:
        return items
    for text in strings:
        if not isinstance(text, str) or len(text) * 4 <= MAX_ARG_BYTES:
            continue  # (UTF-8 takes at most 4 bytes a character: no need to encode it)
        size = len(text.encode())
        if size > MAX_ARG_BYTES:
            raise ArgumentTooLong(
                f"{spec.fragment.name} renders a string of {size} bytes for a container's "
                f"{'environment' if spec.field else 'command'}; Linux passes at most {MAX_ARG_BYTES} "
                "bytes in one, so the container could not start; ask for fewer secrets in this pod"
            )
    return items


def static_items(spec: FragmentSpec) -> tuple[Mapping[str, Any], ...] | None:
    """The items of a fragment that renders the same for every secret (None for one that
    does not, or whose items are refused: they are refused again at each render, naming the
    pod's secret, as before)."""
    if not spec.fragment.is_static:
        return None
    try:
        return _items(spec, spec.fragment.static)
    except (RenderError, ArgumentTooLong):
        return None


def mark_skippable(rules: Sequence[Rule]) -> None:
    """A fragment may skip targets it has merged into when re-merging cannot change them.

    That holds when the mode is idempotent, the fragment renders the same items for every
    secret, every other fragment that writes the same lists only adds items whose names are
    not there yet (an idempotent mode that does not reorder: it can neither move nor
    duplicate what this one put there), and no fragment reorders the container lists the
    fragment walks.
    """
    writers: dict[tuple[str, str | None], list[FragmentSpec]] = {}
    reordered: set[str] = set()
    specs = [spec for rule in rules for spec in rule.fragments]
    for spec in specs:
        for list_name in spec.into:
            writers.setdefault((list_name, spec.field), []).append(spec)
            if spec.field is None and spec.mode.reorders:
                reordered.add(list_name)
    for spec in specs:
        others = [
            other
            for list_name in spec.into
            for other in writers[(list_name, spec.field)]
            if other is not spec
        ]
        spec.skip_merged = (
            spec.mode.idempotent
            and spec.fragment.is_static
            and all(other.mode.idempotent and not other.mode.reorders for other in others)
            and not (spec.field is not None and reordered & set(spec.into))
        )
