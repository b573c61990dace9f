"""Caps on what one review may cost; a pod over a cap is denied with the cap named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from secretpatch import Engine, LoadError, Rejected
from secretpatch.core.limits import Limits
from secretpatch.webhook.app import WebhookApp
from secretpatch.webhook.bodies import estimated_cost_us, too_deep

from .conftest import admission_review, flyte_pod, post_to_app


def engine_with(**limits: int) -> Engine:
    return Engine.from_config({"secretpatch": {"limits": limits}})


def secrets(count: int) -> list[dict[str, str]]:
    return [{"group": f"s{i}", "group_version": "1"} for i in range(count)]


def test_the_defaults_are_far_above_real_pods(engine: Engine) -> None:
    assert Limits() == Limits(
        maxSecrets=500,
        maxAnnotationChars=64 * 1024,
        maxContainers=200,
        maxListItems=4096,
        maxRequestBytes=3 * 1024 * 1024,
        maxJsonDepth=1024,
        memoBytes=16 * 1024 * 1024,
        decodeCacheBytes=2 * 1024 * 1024,
        ruleCacheBytes=1024 * 1024,
        renderCacheBytes=8 * 1024 * 1024,
        encoderCacheBytes=4 * 1024 * 1024,
    )
    pod = flyte_pod(
        *secrets(60),
        containers=[
            {"name": f"c{i}", "image": "x", "env": [{"name": f"E{j}", "value": "v"} for j in range(200)]}
            for i in range(5)
        ],
    )
    assert len(engine.mutate(pod).injected) == 60


def test_too_many_secrets_are_refused_before_decoding() -> None:
    pod = flyte_pod(*secrets(6))
    pod["metadata"]["annotations"]["flyte.secrets/s5"] = "not base32 at all!"
    with pytest.raises(Rejected) as caught:
        engine_with(maxSecrets=5).mutate(pod)
    assert (
        caught.value.message
        == "secretpatch refused the pod: the pod asks for 6 secrets; secretpatch.limits.maxSecrets is 5"
    )
    assert caught.value.code == "limit"
    assert engine_with(maxSecrets=6).mutate(flyte_pod(*secrets(6))).patch


def test_too_many_containers_are_refused() -> None:
    pod = flyte_pod(
        *secrets(1),
        containers=[{"name": f"c{i}", "image": "x"} for i in range(3)],
        initContainers=[{"name": "i", "image": "x"}],
    )
    with pytest.raises(
        Rejected, match="the pod has 4 containers and init containers; secretpatch.limits.maxContainers is 3"
    ):
        engine_with(maxContainers=3).mutate(pod)


def test_a_list_over_the_cap_is_refused_with_its_place() -> None:
    pod = flyte_pod(
        *secrets(1),
        containers=[{"name": "c", "image": "x", "env": [{"name": f"E{i}", "value": "v"} for i in range(11)]}],
    )
    with pytest.raises(
        Rejected, match=r"spec.containers\[0\].env has 11 items; secretpatch.limits.maxListItems is 10"
    ):
        engine_with(maxListItems=10).mutate(pod)


def test_a_refused_pod_is_a_denial_in_a_review() -> None:
    response = engine_with(maxSecrets=1).review(admission_review(flyte_pod(*secrets(2))))["response"]
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 400,
        "message": "secretpatch refused the pod: the pod asks for 2 secrets; secretpatch.limits.maxSecrets is 1",
    }


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{maxSecret: 3}", "unknown limit 'maxSecret'; did you mean 'maxSecrets'?"),
        ("{maxSecrets: 0}", "secretpatch.limits.maxSecrets must be a positive whole number"),
        ("{maxSecrets: true}", "must be a positive whole number"),
        ("{memoBytes: -1}", "secretpatch.limits.memoBytes must be a whole number, 0 or more"),
        ("[1]", "secretpatch.limits must be a mapping"),
        (
            "{maxJsonDepth: 1025}",
            "secretpatch.limits.maxJsonDepth can be at most 1024, the JSON parser's own limit",
        ),
    ],
)
def test_limit_mistakes_are_located(tmp_path: Path, limits: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"secretpatch:\n  limits: {limits}\n")
    with pytest.raises(LoadError) as caught:
        Engine.from_config(config)
    assert caught.value.line == 2 and message in str(caught.value)


def call(app: WebhookApp, body: bytes) -> tuple[int, dict[str, Any]]:
    status, answer = post_to_app(app, body)
    return status, json.loads(answer)


def test_the_server_refuses_deep_json_and_large_bodies_naming_the_cap() -> None:
    app = WebhookApp(engine_with(maxJsonDepth=20, maxRequestBytes=64 * 1024))
    review = admission_review(flyte_pod(*secrets(1)))
    assert call(app, json.dumps(review).encode())[0] == 200
    review["request"]["object"]["metadata"]["annotations"]["deep"] = json.loads("[" * 30 + "]" * 30)
    status, answer = call(app, json.dumps(review).encode())
    assert (
        status == 400
        and answer["message"]
        == "the body nests JSON deeper than the limit; secretpatch.limits.maxJsonDepth is 20"
    )
    status, answer = call(app, b'{"x": "' + b"a" * 70000 + b'"}')
    assert status == 400 and answer["message"] == "the body is 70009 bytes; the limit is 65536"


def test_the_default_depth_cap_is_the_parsers_and_named_in_the_refusal() -> None:
    app = WebhookApp(Engine.from_config(None))
    review = admission_review(flyte_pod(*secrets(1)))
    review["request"]["object"]["metadata"]["annotations"]["deep"] = "PLACEHOLDER"
    template = json.dumps(review).encode()

    def nested(depth: int) -> bytes:
        return template.replace(b'"PLACEHOLDER"', b"[" * depth + b"]" * depth)

    assert call(app, nested(1000))[0] == 200
    status, answer = call(app, nested(1030))
    assert status == 400
    assert (
        answer["message"]
        == "the body nests JSON deeper than the limit; secretpatch.limits.maxJsonDepth is 1024"
    )


def test_depth_is_measured_without_recursion() -> None:
    deep: Any = []
    for _ in range(100000):
        deep = [deep]
    assert too_deep(deep, 1000)
    assert not too_deep({"a": [1, {"b": 2}]}, 3)
    assert too_deep({"a": [1, {"b": 2}]}, 2)


def test_a_patch_past_the_operations_cap_is_refused_before_it_is_built() -> None:
    """Env vars from files add an item per secret to every container: 500 secrets in a pod of
    199 containers would make a patch of 100,000 operations (35 MB), for a pod the API server
    refuses anyway. The cap stops the composition as it passes it."""
    engine = Engine.from_config(
        {
            "secretpatch": {
                "values": {"gcp": {"envVars": "fileKeyRef"}},
                "limits": {"maxPatchOperations": 2000},
            }
        }
    )
    many = [{"group": f"s{n}", "group_version": "1", "mount_requirement": "ENV_VAR"} for n in range(100)]
    containers = [{"name": f"c{n}", "image": "x"} for n in range(30)]
    with pytest.raises(Rejected) as caught:
        engine.mutate(flyte_pod(*many, containers=containers))
    assert caught.value.code == "limit"
    assert "more than 2000 operations (secretpatch.limits.maxPatchOperations)" in caught.value.message
    assert len(engine.mutate(flyte_pod(*many[:10], containers=containers)).patch) < 2000


def test_a_container_that_could_not_start_is_refused_at_admission() -> None:
    """A batched fetcher's script is one argument of `sh -ec`; past Linux's 128 KiB for one
    argument the container would fail with "argument list too long" and the pod never run."""
    engine = Engine.from_config(
        {"secretpatch": {"values": {"gcp": {"fetch": "batched", "envVars": "fileKeyRef"}}}}
    )
    many = [
        {"group": f"api-token-{n}", "group_version": "latest", "mount_requirement": "ENV_VAR"}
        for n in range(74)
    ]
    with pytest.raises(Rejected) as caught:
        engine.mutate(flyte_pod(*many))
    assert caught.value.code == "limit"
    assert (
        caught.value.message.startswith(
            "secretpatch refused the pod: gcp/fetch-all.yaml.j2 renders a string of "
        )
        or "gcp/fetch-all.yaml.j2 renders a string of " in caught.value.message
    )
    assert "Linux passes at most 131072 bytes in one" in caught.value.message
    script = engine.mutate(flyte_pod(*many[:60])).pod["spec"]["initContainers"][0]["command"][2]
    assert len(script.encode()) <= 131072


def test_a_cached_render_is_charged_for_what_it_holds_of_its_own() -> None:
    """Every render of a rule hands out the same objects for its constant parts (the volume,
    the env, the init container's resources): the render cache charges them once, in the
    rule, not in every entry, and does not walk them."""
    from secretpatch.core.budget import approx_size
    from secretpatch.core.requests import SecretRequest

    rule = Engine.from_config(None).rules[0]
    first = rule.render(SecretRequest("flyte.secrets/s0", "a", "1"), 0, {})
    second = rule.render(SecretRequest("flyte.secrets/s1", "b", "2"), 1, {})
    volume, init = first.items[0][0], first.items[1][0]
    assert volume is second.items[0][0] and id(volume) in rule.shared
    assert init["resources"] is second.items[1][0]["resources"] and id(init["resources"]) in rule.shared
    own = approx_size(first, rule.shared)
    assert own < approx_size(first) - approx_size(init["resources"])
    assert own >= approx_size(first.texts), "what the render made is counted"


def _pod(count: int, containers: int = 1, init: int = 0) -> dict[str, Any]:
    pod = flyte_pod(*secrets(count))
    spec = pod["spec"]
    spec["containers"] = [{"name": f"c{i}", "image": "i"} for i in range(containers)]
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": "i"} for i in range(init)]
    return pod


@pytest.mark.parametrize(
    ("pod", "in_worker"),
    [
        (_pod(1), False),
        (_pod(50), False),
        (_pod(81), True),  # 81 x 62 us
        (_pod(500), True),
        (_pod(10, containers=20), False),
        # Found in review: 20 secrets in a pod of 180 containers and 16 init containers look
        # cheap by their secrets, but such a pod is composed again from each init container.
        (_pod(20, containers=180, init=16), True),
        (_pod(5, containers=2, init=12), True),  # 5 x 88 us x 13
    ],
)
def test_a_cheap_review_is_answered_on_the_event_loop_and_a_costly_one_in_the_worker(
    pod: dict[str, Any], in_worker: bool
) -> None:
    """Handing a review to the worker thread and back cost more CPU than a few secrets' work;
    a review estimated to cost more still goes to the worker, so that costly pods cannot hold
    the loop."""
    app = WebhookApp(Engine.from_config(None))
    handed: list[int] = []
    to_worker = app._in_worker

    async def counted(work: Any, data: Any, deadline: float) -> Any:
        handed.append(1)
        return await to_worker(work, data, deadline)

    app._in_worker = counted  # type: ignore[method-assign]
    status, answer = call(app, json.dumps(admission_review(pod)).encode())
    assert status == 200 and "response" in answer
    assert bool(handed) is in_worker


@pytest.mark.parametrize(
    ("document", "cost"),
    [
        (admission_review(_pod(3)), 3 * (60 + 2)),
        (admission_review(_pod(2, containers=3, init=4)), 2 * (60 + 2 * 7) * 5),
        (admission_review(_pod(2, containers=1, init=40)), 2 * (60 + 2 * 41) * 17),
        (admission_review(None), 0),
        ({"request": {"object": {"metadata": {"annotations": ["x"]}}}}, 1 << 30),
        ({"request": {"object": {"spec": [1]}}}, 1 << 30),
        ({"request": []}, 1 << 30),
        ([], 1 << 30),
    ],
)
def test_what_the_server_estimates_a_review_costs_before_choosing_where_to_run_it(
    document: Any, cost: int
) -> None:
    assert estimated_cost_us(document) == cost


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        (b"timeout=10s", 9.0),
        (b"timeout=1ms", 0.0009),
        (b"timeout=1m30s", 27.0),  # at most 30 s, the API server's own maximum
        (b"x=1&timeout=2s", 1.8),
        (b"timeout=bogus", 7.0),
        (b"", 7.0),
        (b"x=" + b"a" * 100 + b"&timeout=5s", 4.5),  # long: worked out without the cache
        (b"timeout=" + b"9" * 40 + b"s", 7.0),  # past 32 characters: the default
        # The most a request line can carry (the 16 KiB header cap) of timeouts that say
        # nothing: one pass over the parts, each a match of a few characters; the default.
        (b"timeout=0s&" * (16 * 1024 // 11), 7.0),
    ],
)
def test_the_review_timeout_is_the_api_servers_less_a_tenth(query: bytes, seconds: float) -> None:
    from secretpatch.webhook.bodies import review_timeout

    for _ in range(2):  # the second from the cache, for the short ones
        assert review_timeout(query, 7.0) == pytest.approx(seconds)
