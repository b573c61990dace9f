"""A pod that already carries the injection gets no second one.

With reinvocationPolicy: IfNeeded the API server sends the pod again after another webhook
changed it, and a pod spec copied from a running pod is submitted again; Flyte adds a second
set of init containers to both. secretpatch recognises its own injection (first patches
carry no marker) and then adds nothing, or only what containers added since lack."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st
from secretpatch import Engine, Rejected
from secretpatch.core import injection

from .conftest import admission_review, flyte_pod, remembering_at_first_sight
from .kube import validate_pod
from .reference import Req, reference_mutate
from .test_properties import SETTINGS, task_pods
from .test_scenarios import NAMES, PROFILES, load

CONFIGS = {
    "v2": None,
    "v1": {"secretpatch": {"flyte": "v1"}},
    "batched": {"secretpatch": {"values": {"gcp": {"fetch": "batched"}}}},
}
ENGINES = {name: Engine.from_config(config) for name, config in CONFIGS.items()}
REQUESTS = (
    {"group": "a", "group_version": "1"},
    {"group": "projects/p-1234/secrets/b", "group_version": "2"},
)
OTHER_INIT = {"name": "istio-init", "image": "istio/proxyv2", "args": ["istio-iptables"]}
OTHER_MAIN = {"name": "istio-proxy", "image": "istio/proxyv2", "env": [{"name": "ISTIO_META", "value": "x"}]}


def injected(engine: Engine, pod: dict[str, Any]) -> dict[str, Any]:
    return jsonpatch.apply_patch(pod, engine.mutate(pod).patch)


def gcp_inits(pod: dict[str, Any]) -> list[str]:
    return [
        c["name"] for c in pod["spec"].get("initContainers", []) if c["name"].startswith("gcp-pull-secret-")
    ]


@pytest.mark.parametrize("fetch", ["as-configured", "batched"])
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", NAMES)
def test_every_scenario_reviewed_again_gets_an_empty_patch(name: str, profile: str, fetch: str) -> None:
    pod, engine, _ = load(name, profile, batched=fetch == "batched")
    try:
        once = injected(engine, pod)
    except Rejected:  # a refused scenario: nothing to review again
        return
    assert engine.mutate(once).patch == []


@pytest.mark.parametrize("config", CONFIGS)
def test_after_another_webhook_adds_containers_only_they_get_the_mount_and_env(config: str) -> None:
    """IfNeeded's case: istio's injector ran after secretpatch. The second review adds no
    fetcher; the new containers get the secrets volume and env, as a first patch gives every
    container; a third review adds nothing."""
    engine = Engine.from_config(CONFIGS[config])
    once = injected(engine, flyte_pod(*REQUESTS, initContainers=[{"name": "setup", "image": "x"}]))
    fetchers = gcp_inits(once)
    changed = copy.deepcopy(once)
    changed["spec"]["initContainers"].append(copy.deepcopy(OTHER_INIT))
    changed["spec"]["containers"].append(copy.deepcopy(OTHER_MAIN))
    twice = injected(engine, changed)
    assert gcp_inits(twice) == fetchers
    first_time = injected(engine, flyte_pod(*REQUESTS, initContainers=[{"name": "setup", "image": "x"}]))
    for added in (twice["spec"]["initContainers"][-1], twice["spec"]["containers"][-1]):
        reference = next(c for c in first_time["spec"]["containers"])
        mount = next(m for m in reference["volumeMounts"] if m["name"] == "gcp-secret-vol")
        assert mount in added["volumeMounts"]
        names = [v["name"] for v in added["env"]]
        assert {"FLYTE_SECRETS_DEFAULT_DIR", "FLYTE_SECRETS_FILE_PREFIX"} <= set(names)
    own = {"name": "ISTIO_META", "value": "x"}
    env = twice["spec"]["containers"][-1]["env"]
    assert env[0 if config == "v1" else -1] == own, "each profile merges env as on a first patch"
    validate_pod(twice)
    assert engine.mutate(twice).patch == []


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda pod: pod["spec"]["initContainers"][0].update(image="attacker/gcloud"), "another image"),
        (lambda pod: pod["spec"]["initContainers"][0]["command"].__setitem__(2, "true"), "another command"),
        (lambda pod: pod["spec"]["initContainers"][0].update(name="gcp-pull-secret-7"), "another name"),
        (lambda pod: pod["spec"]["initContainers"][0].pop("resources"), "a field removed"),
        (lambda pod: pod["spec"]["initContainers"].pop(0), "the fetcher removed"),
    ],
)
def test_a_fetcher_that_is_not_as_secretpatch_wrote_it_is_not_taken_for_the_injection(
    change: Any, what: str
) -> None:
    """Only the injection exactly as written counts: a pod whose fetcher was altered gets a
    fetcher of its own, never nothing."""
    engine = Engine.from_config(None)
    once = injected(engine, flyte_pod(REQUESTS[0]))
    change(once)
    again = injected(engine, once)
    fetchers = [c for c in again["spec"]["initContainers"] if c["name"].startswith("gcp-pull-secret-")]
    assert any(
        c
        == injected(engine, flyte_pod(REQUESTS[0]))["spec"]["initContainers"][0]
        | {"name": c["name"], "env": c["env"]}
        for c in fetchers
    ), what


def test_a_pod_asking_for_another_secret_than_the_one_it_carries_is_injected() -> None:
    engine = Engine.from_config(None)
    once = injected(engine, flyte_pod(REQUESTS[0]))
    other = copy.deepcopy(once)
    other["metadata"]["annotations"] = flyte_pod(REQUESTS[1])["metadata"]["annotations"]
    assert gcp_inits(injected(engine, other)) == ["gcp-pull-secret-0", "gcp-pull-secret-1"]


@SETTINGS
@given(task_pods())
def test_any_pod_injected_once_is_a_fixed_point(case: tuple[dict[str, Any], Any]) -> None:
    pod, _ = case
    for engine in ENGINES.values():
        once = injected(engine, pod)
        assert engine.mutate(once).patch == []


def test_the_memo_tells_a_fresh_pod_from_one_that_carries_the_injection() -> None:
    """The replay asks its questions through the view, so the memo records them: neither
    answer is served to the other pod, in either order."""
    fresh = flyte_pod(*REQUESTS, initContainers=[{"name": "setup", "image": "x"}])
    for order in ("fresh first", "injected first"):
        engine = remembering_at_first_sight(Engine.from_config(None))
        once = injected(engine, fresh)
        pods = [fresh, once] if order == "fresh first" else [once, fresh]
        answers = [engine.review(admission_review(pod))["response"] for pod in pods * 2]
        by_pod = dict(zip(["a", "b", "a2", "b2"], answers, strict=True))
        assert by_pod["a"] == by_pod["a2"] and by_pod["b"] == by_pod["b2"]
        fresh_answer, once_answer = (
            (by_pod["a"], by_pod["b"]) if order == "fresh first" else (by_pod["b"], by_pod["a"])
        )
        assert "patch" not in once_answer and once_answer["allowed"] is True
        assert json.loads(base64.b64decode(fresh_answer["patch"])) == engine.mutate(fresh).patch
        assert engine.memo is not None and engine.memo.hits >= 2


def test_the_search_for_a_carried_injection_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod with thousands of init containers and the secrets volume in place (so the search
    runs) is composed at most REPLAY_WINDOW times more, not once per init container."""
    engine = Engine.from_config(None)
    once = injected(engine, flyte_pod(REQUESTS[0]))
    hostile = copy.deepcopy(once)
    hostile["spec"]["initContainers"] = [{"name": f"c{n}", "image": "x"} for n in range(190)]
    calls = []
    composer = engine._composer
    compose = composer.compose
    monkeypatch.setattr(composer, "compose", lambda *a, **k: calls.append(1) or compose(*a, **k))
    patch = engine.mutate(hostile).patch
    assert len(calls) == 1 + injection.REPLAY_WINDOW
    assert any(op["path"] == "/spec/initContainers/-" for op in patch), "not carried: a fetcher is added"


def test_each_large_item_a_replay_compares_is_serialised_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst pod for the search: 190 init containers named as fetchers, each carrying
    64 KiB (3 MiB of body in all is the API server's cap) and none as written. Each replay
    reads only the item named for its position, once, through the recorded view."""
    from secretpatch.core.compose import view

    engine = Engine.from_config(None)
    hostile = injected(engine, flyte_pod(REQUESTS[0]))
    bulk = "x" * 65536
    hostile["spec"]["initContainers"] = [
        {"name": f"gcp-pull-secret-{n}", "image": "x", "args": [bulk]} for n in range(190)
    ]
    serialised = []
    item_json = view._ANSWERS["item-json"]
    monkeypatch.setitem(view._ANSWERS, "item-json", lambda *a: serialised.append(a[1:]) or item_json(*a))
    engine.mutate(hostile)
    assert 0 < len(serialised) == len(set(serialised)) <= injection.REPLAY_WINDOW


@SETTINGS
@given(task_pods(), st.sampled_from(list(CONFIGS)), st.booleans(), st.booleans())
def test_a_pod_changed_by_another_webhook_gets_what_the_reference_gives(
    case: tuple[dict[str, Any], list[Req]], config: str, init: bool, main: bool
) -> None:
    """The reference (tests/reference.py) knows a pod that carries the injection: it adds no
    fetcher and gives every container the volume's mount and the env."""
    pod, wanted = case
    engine = ENGINES[config]
    changed = injected(engine, pod)
    if init:
        changed["spec"].setdefault("initContainers", []).append(copy.deepcopy(OTHER_INIT))
    if main:
        changed["spec"]["containers"].append(copy.deepcopy(OTHER_MAIN))
    expected = reference_mutate(
        changed,
        wanted,
        flyte="v1" if config == "v1" else "v2",
        batched=4 if config == "batched" else None,
    )
    assert injected(engine, changed) == expected


def test_a_pod_that_carries_the_injection_is_answered_unchanged_and_counts_no_secret() -> None:
    """The review of a carried pod is `unchanged`: the metrics and the audit log count each
    secret once, when it was injected, not at every review of the same pod."""
    engine = Engine.from_config(None)
    once = injected(engine, flyte_pod(*REQUESTS))
    outcome = engine.review_outcome(admission_review(once))
    assert outcome.result == "unchanged" and outcome.secrets == ()
    assert "patch" not in outcome.response["response"]


def stored(value: Any) -> Any:
    """What the API server gives back: Go's omitempty drops empty strings, lists and maps."""
    if isinstance(value, dict):
        kept = {key: stored(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ("", None, [], {})}
    if isinstance(value, list):
        return [stored(item) for item in value]
    return value


@pytest.mark.parametrize("config", CONFIGS)
def test_a_pod_as_the_api_server_stores_it_is_recognised(config: str) -> None:
    """Reviewed again, the pod has been stored: FLYTE_SECRETS_FILE_PREFIX has no `value: ""`
    any more. That is still the injection, and the answer is still empty."""
    engine = ENGINES[config]
    once = stored(injected(engine, flyte_pod(*REQUESTS, initContainers=[{"name": "setup", "image": "x"}])))
    assert {"name": "FLYTE_SECRETS_FILE_PREFIX"} in once["spec"]["containers"][0]["env"]
    assert engine.mutate(once).patch == []
