"""What `Engine.mutate` returns: the patch, with where each operation came from, and the
patched pod made from it on demand."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jsonpatch

from .jsontypes import PatchOp
from .requests import SecretRequest


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
