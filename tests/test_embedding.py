"""The engine embedded in other admission servers, as examples/ shows; one engine, many threads."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import jsonpatch
from secretpatch import Engine, Rejected
from secretpatch.cli.main import explain

from .conftest import admission_review, answers_from_threads, flyte_pod


def call_asgi(app: Any, body: bytes) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "POST", "path": "/"}, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_the_asgi_example_answers_reviews_and_rejects_bad_calls() -> None:
    from examples.embed_asgi import app

    pod = flyte_pod({"group": "a", "group_version": "1"})
    status, answer = call_asgi(app, json.dumps(admission_review(pod)).encode())
    assert status == 200
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert jsonpatch.apply_patch(pod, patch) == Engine.from_config(None).mutate(pod).pod
    assert call_asgi(app, b"{nope")[0] == 400
    assert call_asgi(app, b"{}")[0] == 400


def test_the_handler_example_combines_its_patch_with_secretpatchs() -> None:
    from examples.embed_handler import handle

    pod = flyte_pod({"group": "a", "group_version": "1"})
    answer = handle(admission_review(pod))["response"]
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(answer["patch"])))
    assert patched["metadata"]["labels"]["team"] == "data"
    assert [c["name"] for c in patched["spec"]["initContainers"]] == ["gcp-pull-secret-0"]
    denied = handle(
        admission_review(flyte_pod({"group": "a", "group_version": "1", "mount_requirement": "ENV_VAR"}))
    )
    assert denied["response"]["allowed"] is False


def test_one_engine_serves_many_threads_with_the_same_answers() -> None:
    engine = Engine.from_config(None)
    rng = random.Random(7)
    pods = []
    for n in range(40):
        requests = [
            {"group": f"g{rng.randrange(20)}", "group_version": str(rng.randrange(1, 4))}
            for _ in range(rng.randrange(0, 6))
        ]
        if n % 9 == 0:
            requests.append({"group": "bad;value", "group_version": "1"})
        pods.append(flyte_pod(*requests, initContainers=[{"name": "init", "image": "x"}] if n % 2 else []))

    def answer(pod: dict[str, Any]) -> Any:
        try:
            mutation = engine.mutate(pod)
            return ("patch", json.dumps(mutation.patch), json.dumps(engine.review(admission_review(pod))))
        except Rejected as exc:
            return ("rejected", exc.message)

    expected = [answer(pod) for pod in pods]
    assert answers_from_threads(lambda i, _: answer(pods[i]), expected, rounds=5) == []


def test_reviews_carry_audit_annotations_naming_secrets_and_rule(engine: Engine) -> None:
    pod = flyte_pod(
        {"group": "a", "group_version": "1"},
        {"group": "projects/p-12345/secrets/b", "group_version": "latest"},
    )
    response = engine.review(admission_review(pod))["response"]
    assert response["auditAnnotations"] == {"secrets": "a/1,projects/p-12345/secrets/b/latest", "rule": "gcp"}
    assert "auditAnnotations" not in engine.review(admission_review(flyte_pod()))["response"]


def test_every_operation_names_its_rule_template_and_secret(engine: Engine, snapshot: Any) -> None:
    import yaml

    from .conftest import ROOT

    pod = yaml.safe_load((ROOT / "examples" / "pod.yaml").read_text())
    mutation = engine.mutate(pod)
    assert len(mutation.sources) == len(mutation.patch)
    assert {s.template for s in mutation.sources} == {
        "gcp/volume.yaml.j2",
        "gcp/init-container.yaml.j2",
        "gcp/mount.yaml.j2",
        "gcp/env.yaml.j2",
    }
    snapshot.snapshot_dir = ROOT / "snapshots" / "explain"
    snapshot.assert_match(explain(mutation) + "\n", "example.txt")
