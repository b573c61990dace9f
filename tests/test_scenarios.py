"""Scenario folders as data: tests/scenarios/<name>/pod.yaml (+ config.yaml), one runner.

The golden outputs live in snapshots/<name>/: patch.json (the exact operations), commands.txt
(one gcloud line per secret), pod.yaml (the patched pod), or denied.txt for a refusal. Each
scenario is also checked against the reference mutation and the Kubernetes schema.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest
import yaml
from secretpatch import Engine, Rejected

from .conftest import ROOT, admission_review
from .kube import validate_pod
from .reference import Req, reference_mutate

SCENARIOS = ROOT / "tests" / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "pod.yaml").is_file())


def load(name: str) -> tuple[dict[str, Any], Engine, dict[str, Any]]:
    folder = SCENARIOS / name
    pod = yaml.safe_load((folder / "pod.yaml").read_text())
    config_file = folder / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    engine = Engine.from_config(config_file if config_file.exists() else None)
    return pod, engine, config


def test_there_are_at_least_twenty_scenarios() -> None:
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_scenario_matches_its_golden_files(name: str, snapshot: Any) -> None:
    pod, engine, _ = load(name)
    snapshot.snapshot_dir = ROOT / "snapshots" / name
    try:
        mutation = engine.mutate(pod)
    except Rejected as exc:
        snapshot.assert_match(exc.message + "\n", "denied.txt")
        return
    commands = "".join(i.texts["command"] + "\n" for i in mutation.injected)
    snapshot.assert_match(json.dumps(mutation.patch, indent=2) + "\n", "patch.json")
    snapshot.assert_match(commands, "commands.txt")
    snapshot.assert_match(yaml.safe_dump(mutation.pod, sort_keys=False), "pod.yaml")


@pytest.mark.parametrize("name", NAMES)
def test_scenario_patch_applies_and_equals_the_reference(name: str) -> None:
    pod, engine, config = load(name)
    try:
        mutation = engine.mutate(pod)
    except Rejected:
        return
    applied = jsonpatch.apply_patch(pod, mutation.patch)
    section = config.get("webhook", config).get("gcpSecretManager", {})
    requests = [Req(i.secret.group, i.secret.group_version) for i in mutation.injected]
    labelled = pod["metadata"].get("labels", {}).get("inject-flyte-secrets") == "true"
    expected = reference_mutate(
        pod,
        requests if labelled else [],
        section.get("sidecarImage", "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"),
        section.get("resources"),
    )
    assert applied == expected
    validate_pod(applied)


@pytest.mark.parametrize("name", NAMES)
def test_the_review_carries_exactly_the_rendered_patch(name: str) -> None:
    """Engine.review serialises through a memo of item JSON; twice, to use the memo."""
    pod, engine, _ = load(name)
    try:
        expected = engine.mutate(pod).patch
    except Rejected as exc:
        expected_denial = exc.message
        response = engine.review(admission_review(pod))["response"]
        assert response["status"] == {"code": 400, "message": expected_denial}
        return
    for _ in range(2):
        response = engine.review(admission_review(pod))["response"]
        if not expected:
            assert "patch" not in response
            continue
        assert json.loads(base64.b64decode(response["patch"])) == expected
