"""Kubernetes schema validation of pods, strict, for the oldest and newest versions we check."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

VERSIONS = ("1.31", kubernetes_validate.latest_version())


def validate_pod(pod: dict[str, Any], oldest: str = VERSIONS[0]) -> None:
    """Valid for `oldest` (a rule's minimumKubernetes) and the newest version we know."""
    for version in (oldest, VERSIONS[1]):
        kubernetes_validate.validate(pod, version, strict=True)


def validate_object(obj: dict[str, Any], version: str) -> None:
    """Any built-in object, strict (no field the schema does not know), for one version."""
    kubernetes_validate.validate(obj, version, strict=True)
