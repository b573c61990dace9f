"""The review memo: pods of one shape share one composition, and no pod gets another's patch.

Every answer here is checked against a composition made afresh (`Engine.mutate`, which never
uses the memo) or against the reference mutation of reference.py.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st
from secretpatch import Engine, Rejected
from secretpatch.core.admission import Answer
from secretpatch.core.compose.modes import MODES, MergeMode
from secretpatch.core.compose.pod_patch import PodPatch
from secretpatch.core.compose.recorded import Recorded
from secretpatch.core.compose.view import PodView
from secretpatch.core.memo import ReviewMemo

from .conftest import (
    ROOT,
    admission_review,
    annotation,
    answers_from_threads,
    flyte_pod,
    remembering_at_first_sight,
)
from .reference import Req, reference_mutate
from .test_properties import SETTINGS, task_pods

SECRET = {"group": "db-password", "group_version": "3"}


def task_pod(**changes: Any) -> dict[str, Any]:
    """A task pod as the API server hands it over: a service-account token volume with a
    random suffix, mounted in the task container, and Flyte's env."""
    token = changes.pop("token", "kube-api-access-4xq2m")
    pod = flyte_pod(
        SECRET,
        {"group": "api-key", "group_version": "latest"},
        containers=[
            {
                "name": "main",
                "image": "task:1",
                "env": [
                    {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": changes.pop("execution", "a1b2c3")},
                    {"name": "FLYTE_ATTEMPT_NUMBER", "value": "0"},
                ],
                "volumeMounts": [
                    {"name": token, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
                ],
            }
        ],
        volumes=[{"name": token, "projected": {"sources": []}}],
    )
    pod["metadata"]["name"] = changes.pop("name", "a1b2c3-n0-0")
    assert not changes
    return pod


def answer(engine: Engine, pod: dict[str, Any], uid: str = "u") -> dict[str, Any]:
    return engine.review(admission_review(pod, uid=uid))["response"]  # type: ignore[return-value]


def patch_of(response: dict[str, Any]) -> list[Any]:
    return json.loads(base64.b64decode(response["patch"])) if "patch" in response else []


def test_the_memo_keeps_an_answer_when_its_secrets_come_again() -> None:
    """The first pod of a task is composed and nothing is kept (a pod of a new task often
    has no sibling); the second is composed and its answer kept; the third is answered."""
    engine = Engine.from_config(None)
    memo = engine.memo
    assert memo is not None
    answers = [answer(engine, task_pod(name=f"pod-{n}")) for n in range(3)]
    assert (memo.hits, memo.misses) == (1, 2)
    assert memo.stats().entries == 1
    assert patch_of(answers[2]) == patch_of(answers[0]) == engine.mutate(task_pod()).patch
    lone = task_pod(name="lone")
    lone["metadata"]["annotations"]["flyte.secrets/s0"] = annotation(
        group="asked-for-once", group_version="1"
    )
    answer(engine, lone)
    assert memo.stats().entries == 1, "a secret no other pod asked for left nothing behind"


def test_pods_of_one_task_share_one_composition() -> None:
    engine = remembering_at_first_sight(Engine.from_config(None))
    memo = engine.memo
    assert memo is not None
    first = answer(engine, task_pod())
    assert (memo.hits, memo.misses) == (0, 1)
    for number, pod in enumerate(
        [
            task_pod(name="d4e5f6-n0-0", execution="d4e5f6"),
            task_pod(token="kube-api-access-zz9k1"),
            task_pod(name="x", execution="y", token="kube-api-access-7h2pd"),
        ],
        start=1,
    ):
        response = answer(engine, pod, uid=f"uid-{number}")
        assert memo.hits == number
        assert response["uid"] == f"uid-{number}"
        assert patch_of(response) == engine.mutate(pod).patch == patch_of(first)
        assert response["auditAnnotations"] == first["auditAnnotations"]


def test_an_answer_handed_out_cannot_change_the_next_one() -> None:
    engine = remembering_at_first_sight(Engine.from_config(None))
    response = answer(engine, task_pod())
    response["auditAnnotations"]["secrets"] = "tampered"
    response["patch"] = "tampered"
    again = answer(engine, task_pod(name="other"))
    assert engine.memo is not None and engine.memo.hits == 1
    assert again["auditAnnotations"]["secrets"] == "db-password/3,api-key/latest"
    assert patch_of(again) == engine.mutate(task_pod()).patch


def env(pod: dict[str, Any]) -> Any:
    return pod["spec"]["containers"][0]["env"]


def mounts(pod: dict[str, Any]) -> Any:
    return pod["spec"]["containers"][0]["volumeMounts"]


def _env_first(pod: dict[str, Any]) -> None:
    env(pod).insert(0, {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"})


def _env_later(pod: dict[str, Any]) -> None:
    env(pod).append({"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"})


def _env_twice(pod: dict[str, Any]) -> None:
    _env_first(pod)
    _env_later(pod)


SHAPE_CHANGES = {
    "the env already names FLYTE_SECRETS_DEFAULT_DIR": _env_first,
    "the same variable further down": _env_later,
    "the same variable twice": _env_twice,
    "one more env variable": lambda pod: env(pod).append({"name": "X", "value": ""}),
    "no env": lambda pod: pod["spec"]["containers"][0].pop("env"),
    "an empty env": lambda pod: pod["spec"]["containers"][0].update(env=[]),
    "no volume mounts": lambda pod: pod["spec"]["containers"][0].pop("volumeMounts"),
    "the pod already has gcp-secret-vol": lambda pod: pod["spec"]["volumes"].append(
        {"name": "gcp-secret-vol", "emptyDir": {}}
    ),
    "no volumes": lambda pod: pod["spec"].pop("volumes"),
    "a user init container": lambda pod: pod["spec"].update(initContainers=[{"name": "setup", "image": "i"}]),
    "an empty init container list": lambda pod: pod["spec"].update(initContainers=[]),
    "a second container": lambda pod: pod["spec"]["containers"].append({"name": "side", "image": "s"}),
    "the containers swapped": lambda pod: pod["spec"]["containers"].insert(0, {"name": "side", "image": "s"}),
    "a container already mounting the volume": lambda pod: mounts(pod).append(
        {"name": "gcp-secret-vol", "mountPath": "/elsewhere"}
    ),
    "another volume mounted at the secrets path": lambda pod: mounts(pod).append(
        {"name": "mine", "mountPath": "/etc/flyte/secrets"}
    ),
    "that mount in the same place under another path": lambda pod: mounts(pod).append(
        {"name": "mine", "mountPath": "/etc/flyte/other"}
    ),
    "a sidecar named like our first init container": lambda pod: pod["spec"]["containers"].append(
        {"name": "gcp-pull-secret-0", "image": "s"}
    ),
    "an ephemeral container named like our init container": lambda pod: pod["spec"].update(
        ephemeralContainers=[{"name": "gcp-pull-secret-1", "image": "s"}]
    ),
    # The same lengths, other names: only where a looked-up name sits tells these apart.
    "an env variable renamed FLYTE_SECRETS_DEFAULT_DIR": lambda pod: env(pod)[1].update(
        name="FLYTE_SECRETS_DEFAULT_DIR"
    ),
    "a mount renamed gcp-secret-vol": lambda pod: mounts(pod)[0].update(name="gcp-secret-vol"),
    "a volume renamed gcp-secret-vol": lambda pod: pod["spec"]["volumes"][0].update(name="gcp-secret-vol"),
    "the container renamed like our second init container": lambda pod: pod["spec"]["containers"][0].update(
        name="gcp-pull-secret-1"
    ),
    "env that is not a list": lambda pod: pod["spec"]["containers"][0].update(env={"A": "1"}),
    "a container that is not an object": lambda pod: pod["spec"]["containers"].append("main"),
    "a volume that is not an object": lambda pod: pod["spec"]["volumes"].append(None),
}


@pytest.mark.parametrize("change", SHAPE_CHANGES.values(), ids=SHAPE_CHANGES.keys())
def test_a_pod_of_another_shape_is_composed_afresh(change: Any) -> None:
    engine = remembering_at_first_sight(Engine.from_config(None))
    answer(engine, task_pod())
    pod = task_pod(name="another")
    change(pod)
    response = answer(engine, pod)
    fresh = answer(Engine.from_config(None), pod)
    assert engine.memo is not None and engine.memo.hits == 0
    assert response == fresh
    again = task_pod(name="third")
    change(again)
    assert answer(engine, again) == fresh


@pytest.mark.parametrize("value", [{}, "", 0])
def test_an_empty_list_and_an_empty_non_list_are_told_apart(value: Any) -> None:
    engine = remembering_at_first_sight(Engine.from_config(None))
    pod = task_pod()
    pod["spec"]["volumes"] = []
    answer(engine, pod)
    pod["spec"]["volumes"] = value
    response = answer(engine, pod)
    assert response["allowed"] is False
    assert response["status"]["message"] == "secretpatch cannot mutate the pod: spec.volumes is not a list"


def test_the_same_requests_in_other_annotations_are_another_key() -> None:
    engine = remembering_at_first_sight(Engine.from_config(None))
    pod = task_pod()
    answer(engine, pod)
    swapped = copy.deepcopy(pod)
    notes = swapped["metadata"]["annotations"]
    notes["flyte.secrets/s0"], notes["flyte.secrets/s1"] = (
        notes["flyte.secrets/s1"],
        notes["flyte.secrets/s0"],
    )
    response = answer(engine, swapped)
    assert engine.memo is not None and engine.memo.hits == 0
    assert response["auditAnnotations"]["secrets"] == "api-key/latest,db-password/3"


def _rules_with(tmp_path: Path, fragments: str, templates: dict[str, str]) -> Engine:
    (tmp_path / "rules").mkdir()
    (tmp_path / "templates" / "gcp").mkdir(parents=True)
    rule = (ROOT / "rules" / "gcp.yaml").read_text()
    (tmp_path / "rules" / "gcp.yaml").write_text(rule + fragments)
    for name, text in templates.items():
        (tmp_path / "templates" / name).write_text(text)
    return remembering_at_first_sight(
        Engine.from_config(
            {"secretpatch": {"rules": str(tmp_path / "rules"), "templates": str(tmp_path / "templates")}}
        )
    )


def test_set_fragments_see_the_current_value_of_the_keys_they_set(tmp_path: Path) -> None:
    engine = _rules_with(
        tmp_path,
        "  - template: gcp/labels.yaml.j2\n    merge: set\n    into: [labels]\n",
        {"gcp/labels.yaml.j2": "secretpatch.io/secrets: injected\n"},
    )
    plain = task_pod()
    already = task_pod(name="b")
    already["metadata"]["labels"]["secretpatch.io/secrets"] = "injected"
    other = task_pod(name="c")
    other["metadata"]["labels"]["secretpatch.io/secrets"] = "no"
    unrelated = task_pod(name="d")
    unrelated["metadata"]["labels"]["team"] = "ml"
    for pod in (plain, already, other, unrelated, plain, already, other):
        assert patch_of(answer(engine, pod)) == engine.mutate(pod).patch
    assert engine.memo is not None and engine.memo.hits == 4  # unrelated is plain's shape
    label_ops = [op for op in patch_of(answer(engine, other)) if op["path"].startswith("/metadata")]
    assert label_ops == [
        {"op": "add", "path": "/metadata/labels/secretpatch.io~1secrets", "value": "injected"}
    ]
    assert not [op for op in patch_of(answer(engine, already)) if op["path"].startswith("/metadata")]


class WhenImageIsSpecial(MergeMode):
    """A merge mode no bundled rule has, reading the pod in a way no bundled mode does: it
    adds its item only when the first container's image is `special`."""

    name = "when-image-is-special"
    field = False
    idempotent = False

    def apply(self, patch: PodPatch, key: Any, item: Any) -> None:
        if patch.item_field(("containers",), 0, "image") == "special":
            patch.add(key, item)


def test_a_new_merge_mode_reading_the_pod_in_a_new_way_gets_no_stale_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memo replays whatever the composer asked: a mode added later needs no change to
    the memo for the memo to stay right."""
    monkeypatch.setitem(MODES, WhenImageIsSpecial.name, WhenImageIsSpecial())
    engine = _rules_with(
        tmp_path,
        "  - template: gcp/marker.yaml.j2\n    merge: when-image-is-special\n    into: [volumes]\n",
        {"gcp/marker.yaml.j2": "name: special-marker\nemptyDir: {}\n"},
    )
    plain, special = task_pod(name="plain"), task_pod(name="special")
    special["spec"]["containers"][0]["image"] = "special"
    answers = [patch_of(answer(engine, pod)) for pod in (plain, special, plain, special)]
    assert answers == [engine.mutate(pod).patch for pod in (plain, special, plain, special)]
    assert "special-marker" not in json.dumps(answers[0]) and "special-marker" in json.dumps(answers[1])
    assert engine.memo is not None and engine.memo.hits == 2  # the third and the fourth


def test_a_static_sidecar_prepended_for_every_secret_starts_afresh_each_time(tmp_path: Path) -> None:
    """Found in review: a static fragment hands the same object to every secret; prepending
    it again after removing it must not inherit the lists the patch kept for its first copy
    (the answer differed from mutate's and did not apply)."""
    sidecars = "".join(
        f"  - template: gcp/sidecar-{n}.yaml.j2\n    merge: prepend\n    into: [containers]\n" for n in "ab"
    )
    engine = _rules_with(
        tmp_path, sidecars, {f"gcp/sidecar-{n}.yaml.j2": f"name: sidecar-{n}\nimage: busybox\n" for n in "ab"}
    )
    pod = flyte_pod(SECRET, {"group": "api", "group_version": "2"}, {"group": "tok", "group_version": "3"})
    for _ in range(2):  # composed, then remembered
        patch = patch_of(answer(engine, pod))
        assert patch == engine.mutate(pod).patch
        containers = jsonpatch.apply_patch(pod, patch)["spec"]["containers"]
        assert [c["name"] for c in containers] == ["sidecar-b", "sidecar-a", "main"]


def test_a_rule_that_reads_the_pod_is_never_answered_from_memory(tmp_path: Path) -> None:
    command = (ROOT / "templates" / "gcp" / "command.sh.j2").read_text()
    engine = _rules_with(
        tmp_path, "", {"gcp/command.sh.j2": command.rstrip("\n") + " # {{ pod.metadata.name | shquote }}\n"}
    )
    assert engine.memo is None
    lines = []
    for name in ("first", "second"):
        pod = task_pod(name=name)
        lines.append(patch_of(answer(engine, pod))[1]["value"][0]["command"][2])
        assert patch_of(answer(engine, pod)) == engine.mutate(pod).patch
    assert lines[0].endswith("# first") and lines[1].endswith("# second")


def volume_questions(view: PodView) -> None:
    """What a `once` fragment adding a volume named v asks of the pod."""
    if view.length(("volumes",)):
        view.positions(("volumes",), "name", "v")


def remember(
    memo: ReviewMemo[Recorded, Answer], key: str, pod: dict[str, Any], answer: Answer, questions: Any = None
) -> None:
    """Store `answer` with the reads `questions` (by default volume_questions) made of `pod`."""
    view = PodView(pod)
    (questions or volume_questions)(view)
    memo.store(key, lambda: Recorded.of(view.reads), answer)


def recall(memo: ReviewMemo[Recorded, Answer], key: str, pod: dict[str, Any]) -> Answer | None:
    view = PodView(pod)
    return memo.find(key, lambda record: record.holds(view))


def test_memo_bytes_sets_the_budget_and_zero_turns_the_memo_off() -> None:
    off = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 0}}})
    assert off.memo is None
    for name in ("first", "second"):
        pod = task_pod(name=name)
        assert patch_of(answer(off, pod)) == off.mutate(pod).patch
    small = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 4000}}})
    assert small.memo is not None
    for name in ("first", "second"):
        answer(small, task_pod(name=name))
    assert small.memo.hits == 0, "a 2-secret patch is over a quarter of 4000 bytes: not kept"


def test_the_memo_budget_counts_keys_facts_and_answers_and_evicts_the_oldest() -> None:
    memo: ReviewMemo[Recorded, Answer] = ReviewMemo(max_bytes=40_000)
    pod: dict[str, Any] = {"spec": {"volumes": [{"name": "u"}]}}
    remember(memo, "a", pod, Answer("x" * 100))
    one = memo.stats().bytes
    assert one > 300, "the key, the reads and the answer are counted, not only the patch"
    remember(memo, "k" * 5000, pod, Answer("x" * 100))
    assert memo.stats().bytes - one >= 5000, "a long key costs its length"
    for n in range(100):
        remember(memo, f"key{n}", pod, Answer("x" * 100))
    stats = memo.stats()
    assert stats.bytes <= 40_000 and stats.evictions > 0
    assert recall(memo, "key99", pod) is not None, "the newest stay"
    assert recall(memo, "a", pod) is None, "the oldest went first"
    remember(memo, "big", pod, Answer("x" * 10_001))  # over a quarter of the budget: not kept
    assert recall(memo, "big", pod) is None and recall(memo, "key99", pod) is not None


def test_a_long_list_costs_the_memo_the_places_of_its_looked_up_names_not_one_per_item() -> None:
    memo: ReviewMemo[Recorded, Answer] = ReviewMemo()

    def env_questions(view: PodView) -> None:  # what the env fragment asks of each container
        for index in range(view.length(("containers",)) or 0):
            view.length(("containers", index, "env"))
            view.positions(("containers", index, "env"), "name", "FLYTE_SECRETS_DEFAULT_DIR")

    env = [{"name": f"E{i}", "value": "v"} for i in range(4000)] + [{"name": "FLYTE_SECRETS_DEFAULT_DIR"}]
    pod = {"spec": {"containers": [{"name": "c", "env": env}]}}
    remember(memo, "k", pod, Answer("x"), env_questions)
    assert memo.stats().bytes < 3000
    moved = copy.deepcopy(pod)
    moved["spec"]["containers"][0]["env"].insert(0, moved["spec"]["containers"][0]["env"].pop())
    assert recall(memo, "k", pod) == Answer("x") and recall(memo, "k", moved) is None


def test_the_memo_keeps_a_few_shapes_per_request() -> None:
    memo: ReviewMemo[Recorded, Answer] = ReviewMemo(shapes_per_key=2)
    pods = [{"spec": {"volumes": [{"name": "x"}] * n}} for n in range(3)]
    for n, pod in enumerate(pods):
        remember(memo, "k", pod, Answer(str(n)))
    assert recall(memo, "k", pods[0]) is None
    assert recall(memo, "k", pods[1]) == Answer("1") and recall(memo, "k", pods[2]) == Answer("2")


LOADED = Engine.from_config(None)


def _perturbed(pod: dict[str, Any], salt: str) -> dict[str, Any]:
    """The same pod as far as the rules can tell: other values, other names that no rule
    adds, another pod name."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["name"] = f"p-{salt}"
    spec = pod["spec"]
    renamed = {"data": f"data-{salt}", "cache": f"cache-{salt}"}
    for volume in spec.get("volumes") or []:
        volume["name"] = renamed.get(volume["name"], volume["name"])
    for container in spec.get("containers", []) + (spec.get("initContainers") or []):
        for var in container.get("env") or []:
            var["value"] += salt
        for mount in container.get("volumeMounts") or []:
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return pod


@st.composite
def families(draw: st.DrawFn) -> tuple[list[tuple[int, dict[str, Any]]], list[Req]]:
    """Pods asking for the same secrets: a few shapes, each seen more than once, as
    (shape number, pod)."""
    first, wanted = draw(task_pods())
    shapes = [first]
    for _ in range(draw(st.integers(0, 3))):
        other, _ = draw(task_pods())
        other["metadata"] = copy.deepcopy(first["metadata"])
        shapes.append(other)
    order = draw(st.lists(st.integers(0, len(shapes) - 1), min_size=1, max_size=8))
    salts = st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)
    family = [(0, first)] + [(i, _perturbed(shapes[i], draw(salts))) for i in order]
    return family, wanted


@SETTINGS
@given(families())
def test_every_pod_of_a_family_gets_its_own_reference_patch(
    family: tuple[list[tuple[int, dict[str, Any]]], list[Req]],
) -> None:
    pods, wanted = family
    engine = remembering_at_first_sight(Engine(LOADED.config, LOADED.rules))  # rules already loaded
    memo = engine.memo
    assert memo is not None
    seen = set()
    for number, (shape, pod) in enumerate(pods):
        before = copy.deepcopy(pod)
        hits = memo.hits
        patch = patch_of(answer(engine, pod, uid=str(number)))
        assert pod == before
        assert patch == engine.mutate(pod).patch
        assert jsonpatch.apply_patch(pod, patch) == reference_mutate(pod, wanted)
        if wanted and shape in seen:
            assert memo.hits == hits + 1, (
                "a perturbed copy of a shape already answered is answered from memory"
            )
        seen.add(shape)


def test_threads_sharing_a_memo_that_keeps_filling_up_get_the_right_answers() -> None:
    # A shape's entry (an answer of 2.9 to 4.5 KB with its reads) is about 10 KB as
    # budget.approx_size counts it; a request key keeps its shapes together, and a key's
    # shapes over a quarter of 50,000 bytes are not kept. Eight kinds of pod under two keys
    # take turns, so stores keep replacing entries under the readers (three passes in order:
    # 22 answers from memory, 50 compositions).
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 50000}}})
    pods = []
    for n in range(24):
        pod = task_pod(name=f"pod-{n}")
        pod["metadata"]["annotations"]["flyte.secrets/s2"] = pod["metadata"]["annotations"][
            "flyte.secrets/s0"
        ]
        if n % 3:
            pod["metadata"]["annotations"].pop("flyte.secrets/s2")
        if n % 4 == 1:
            env(pod).insert(0, {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"})
        if n % 5 == 2:
            pod["spec"]["initContainers"] = [{"name": "setup", "image": "i"}]
        pods.append(pod)
    expected = [engine.mutate(pod).patch for pod in pods]

    def patch(i: int, uid: str) -> Any:
        return patch_of(answer(engine, pods[i], uid=uid))

    assert answers_from_threads(patch, expected, rounds=6) == []
    assert engine.memo is not None and engine.memo.hits > 0


@pytest.mark.parametrize("shapes", [1, 2, 3])
def test_the_memo_keeps_exactly_its_number_of_shapes_per_request(shapes: int) -> None:
    memo: ReviewMemo[Recorded, Answer] = ReviewMemo(shapes_per_key=shapes)
    pods = [{"spec": {"volumes": [{"name": "x"}] * n}} for n in range(5)]
    for n, pod in enumerate(pods):
        remember(memo, "k", pod, Answer(str(n)))
    assert [recall(memo, "k", pod) is not None for pod in pods] == [False] * (5 - shapes) + [True] * shapes


def test_a_bad_list_inside_a_container_is_named_by_its_index_in_the_patched_pod(tmp_path: Path) -> None:
    """Found in review: once a container is put before it, the pod's own container is
    spec.containers[1] in every message, as in the patch's operations."""
    fragments = (
        "  - template: gcp/side.yaml.j2\n    merge: prepend\n    into: [containers]\n"
        "  - template: gcp/port.yaml.j2\n    merge: per-container\n    into: [containers]\n    field: ports\n"
    )
    engine = _rules_with(
        tmp_path,
        fragments,
        {"gcp/side.yaml.j2": "name: side\nimage: x\n", "gcp/port.yaml.j2": "name: p\ncontainerPort: 1\n"},
    )
    pod = flyte_pod(SECRET, containers=[{"name": "main", "image": "t", "ports": 1}])
    message = answer(engine, pod)["status"]["message"]
    assert message.endswith("spec.containers[1].ports is not a list")


def test_a_python_value_that_is_not_json_where_the_composer_reads_is_refused_not_a_crash() -> None:
    """Found in review: an embedding caller's pod may hold any Python value; the mount in
    the way is named as the denial says, and the memo never treats it as equal to another."""
    pod = task_pod()
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": {"a", "b"}, "mountPath": "/etc/flyte/secrets"}]
    with pytest.raises(Rejected) as caught:
        LOADED.mutate(pod)
    assert caught.value.code == "mount-conflict" and "<set>" in caught.value.message


def test_a_review_after_remembered_outcome_keys_the_memo_by_its_own_annotations() -> None:
    """remembered_outcome leaves the memo key of a pod it has no answer for to the review
    that follows (the server's order); a review of a pod whose annotations differ, even the
    same pod changed in between, works out its own."""
    engine = Engine.from_config(None)
    first = flyte_pod({"group": "a", "group_version": "1"})
    for _ in range(3):  # answered from the memo from the third
        engine.review(admission_review(first))
    other = flyte_pod({"group": "b", "group_version": "2"})
    review = admission_review(other)
    assert engine.remembered_outcome(review) is None
    other["metadata"]["annotations"] = dict(first["metadata"]["annotations"])
    changed = engine.review_outcome(review)
    assert changed.response == engine.review(admission_review(first))
    assert changed.secrets == ("a/1",)
    for _ in range(3):  # nothing was kept under the key of b's annotations
        assert engine.review_outcome(
            admission_review(flyte_pod({"group": "b", "group_version": "2"}))
        ).secrets == ("b/2",)
    review = admission_review(flyte_pod({"group": "c", "group_version": "3"}))
    assert engine.remembered_outcome(review) is None
    assert engine.review_outcome(review).secrets == ("c/3",)
