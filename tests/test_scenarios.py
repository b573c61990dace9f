"""Scenario folders as data: tests/scenarios/<name>/pod.yaml (+ config.yaml), one runner.

The golden outputs live in snapshots/<name>/: patch.json (the exact operations), commands.txt
(one gcloud line per secret), pod.yaml (the patched pod), or denied.txt for a refusal. Each
scenario runs again as Flyte 1.16 would (`secretpatch: {flyte: v1, onRefusal: admit}`), with
its golden files in snapshots/flyte-v1/<name>/: patch.json and pod.yaml (the gcloud lines are
the same), or admitted.json (the review's answer) where 2.0 would deny. Each scenario is also
checked against the reference mutation of its profile and the Kubernetes schema.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest
import yaml
from secretpatch import Engine, Rejected
from secretpatch.core.quantity import canonical_resources

from .conftest import ROOT, admission_review
from .kube import validate_pod
from .reference import Req, reference_mutate

SCENARIOS = ROOT / "tests" / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "pod.yaml").is_file())
PROFILES = ("v2", "v1")
# What a Flyte 1.16 operator picks to get 1.16's behaviour: its env merge, and its admission of
# a pod whose secrets cannot be injected (with warnings, where 1.16 is silent).
AS_FLYTE_1_16 = {"flyte": "v1", "onRefusal": "admit"}


def with_own_keys(config: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`config` with secretpatch's keys `own` added where the file keeps them."""
    config = copy.deepcopy(config)
    section = config.get("webhook") if isinstance(config.get("webhook"), dict) else None
    holder = section if section is not None and "secretpatch" in section else config
    holder.setdefault("secretpatch", {}).update(own)
    return config


def load(
    name: str, profile: str = "v2", *, batched: bool = False
) -> tuple[dict[str, Any], Engine, dict[str, Any]]:
    """The scenario's pod, its engine for the profile, and its config; with `batched`, the
    config plus `fetch: batched` (two at a time, so that most scenarios have several waves)."""
    folder = SCENARIOS / name
    pod = yaml.safe_load((folder / "pod.yaml").read_text())
    config_file = folder / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    if batched:
        config = with_own_keys(config or {}, {})
        holder = config["webhook"] if "secretpatch" in config.get("webhook", {}) else config
        values = holder["secretpatch"].setdefault("values", {}).setdefault("gcp", {})
        values.update(fetch="batched", fetchConcurrency=2)
    if profile == "v2" and not batched:
        engine = Engine.from_config(config_file if config_file.exists() else None)
    else:
        engine = Engine.from_config(with_own_keys(config or {}, AS_FLYTE_1_16 if profile == "v1" else {}))
    return pod, engine, config


def snapshot_dir(name: str, profile: str) -> Any:
    return ROOT / "snapshots" / name if profile == "v2" else ROOT / "snapshots" / "flyte-v1" / name


def test_there_are_at_least_twenty_scenarios() -> None:
    assert len(NAMES) >= 20


def test_every_v1_golden_folder_has_its_scenario() -> None:
    """A renamed or removed scenario leaves no stale 1.16 golden files behind."""
    assert sorted(p.name for p in (ROOT / "snapshots" / "flyte-v1").iterdir()) == NAMES


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", NAMES)
def test_scenario_matches_its_golden_files(name: str, profile: str, snapshot: Any) -> None:
    pod, engine, _ = load(name, profile)
    snapshot.snapshot_dir = snapshot_dir(name, profile)
    try:
        mutation = engine.mutate(pod)
    except Rejected as exc:
        if profile == "v2":
            snapshot.assert_match(exc.message + "\n", "denied.txt")
        else:
            response = engine.review(admission_review(pod))["response"]
            snapshot.assert_match(json.dumps(response, indent=2) + "\n", "admitted.json")
        return
    commands = "".join(i.texts["command"] + "\n" for i in mutation.injected)
    snapshot.assert_match(json.dumps(mutation.patch, indent=2) + "\n", "patch.json")
    if profile == "v2":
        snapshot.assert_match(commands, "commands.txt")
    else:  # the profiles differ in env only
        assert commands == (snapshot_dir(name, "v2") / "commands.txt").read_text()
    snapshot.assert_match(yaml.safe_dump(mutation.pod, sort_keys=False), "pod.yaml")


@pytest.mark.parametrize("fetch", ["as-configured", "batched"])
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", NAMES)
def test_scenario_patch_applies_and_equals_the_reference(name: str, profile: str, fetch: str) -> None:
    """Also with `fetch: batched`: the per-secret pod with one fetcher (tests/reference.py)."""
    pod, engine, config = load(name, profile, batched=fetch == "batched")
    try:
        mutation = engine.mutate(pod)
    except Rejected:
        return
    applied = jsonpatch.apply_patch(pod, mutation.patch)
    validate_pod(applied, engine.rules[0].minimum_kubernetes)
    section = config.get("webhook", config).get("gcpSecretManager", {})
    # Quantities as Kubernetes writes them (tests/test_quantity.py checks the conversion).
    resources = canonical_resources(section.get("resources")) if section.get("resources") else None
    requests = [
        Req(i.secret.group, i.secret.group_version, i.secret.key, annotation=i.secret.annotation)
        for i in mutation.injected
    ]
    own = config.get("secretpatch") or (config.get("webhook") or {}).get("secretpatch") or {}
    gcp = (own.get("values") or {}).get("gcp", {})
    if gcp.get("envVars") == "fileKeyRef":
        return  # not Flyte's: the schema above, golden files and tests/test_pod_starts.py check it
    flyte2 = bool(gcp.get("flyte2Requests"))
    labelled = pod["metadata"].get("labels", {}).get("inject-flyte-secrets") == "true"
    expected = reference_mutate(
        pod,
        requests if labelled else [],
        section.get("sidecarImage", "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"),
        resources,
        flyte=profile,
        flyte2_requests=flyte2,
        batched=gcp.get("fetchConcurrency", 4) if gcp.get("fetch") == "batched" else None,
    )
    assert applied == expected


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", NAMES)
def test_the_review_carries_exactly_the_rendered_patch(name: str, profile: str) -> None:
    """Engine.review serialises through a memo of item JSON; twice, to use the memo."""
    pod, engine, _ = load(name, profile)
    try:
        expected = engine.mutate(pod).patch
    except Rejected as exc:
        response = engine.review(admission_review(pod))["response"]
        if profile == "v2":
            assert response["status"] == {"code": 400, "message": exc.message}
        else:
            assert response["allowed"] is True and "patch" not in response
            assert exc.reason in response["warnings"]
        return
    for _ in range(2):
        response = engine.review(admission_review(pod))["response"]
        if not expected:
            assert "patch" not in response
            continue
        assert json.loads(base64.b64decode(response["patch"])) == expected
