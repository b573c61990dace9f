"""Plans (engine/core/plans.py): a pod whose secrets are new gets the operations of a pod of
its shape, filled with its own rendered items, and exactly the patch composing would give.

Every answer here is checked against a composition made afresh (`Engine.mutate`, which uses
neither the memo nor plans) and, for generated pods, against reference.py.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st
from secretpatch import Engine
from secretpatch.core.admission import PatchEncoder
from secretpatch.core.memo import ReviewMemo

from .conftest import ROOT, annotation, answers_from_threads, flyte_pod, remembering_at_first_sight
from .reference import Req, reference_mutate
from .test_memo import _perturbed, answer, patch_of
from .test_properties import SETTINGS, requests, task_pods


def planning_at_first_sight(engine: Engine) -> Engine:
    """`engine`, keeping a plan from the first composition of a shape, not the second
    (test_a_plan_is_kept_when_a_shape_comes_again checks the engine's own rule), so that
    every later pod of the shape is answered from a plan and checked."""
    assert engine._plans is not None
    engine._plans = ReviewMemo(max_bytes=engine.config.limits.memoBytes // 4, name="plans")
    return engine


def plans_of(engine: Engine) -> ReviewMemo[Any, Any]:
    assert engine._plans is not None
    return engine._plans


def with_requests(pod: dict[str, Any], wanted: list[Req], salt: str) -> tuple[dict[str, Any], list[Req]]:
    """`pod` asking for other secrets: each request's group gets `salt`, so no cache or memo
    has seen them."""
    pod = copy.deepcopy(pod)
    renamed = [dataclasses.replace(r, group=f"{r.group}{salt}") for r in wanted]
    pod["metadata"]["annotations"] = {
        r.annotation: annotation(
            group=r.group, group_version=r.group_version, key=r.key, mount_requirement=r.mount_requirement
        )
        for r in renamed
    }
    return pod, renamed


def test_a_plan_is_kept_when_a_shape_comes_again() -> None:
    """The first pod of a shape is composed and nothing is kept; the second is composed and
    its plan kept; the third, with secrets no pod asked for, gets the plan."""
    engine = Engine.from_config(None)
    pods = [
        flyte_pod({"group": f"new-{n}", "group_version": "1"}, {"group": f"k-{n}", "group_version": "2"})
        for n in range(4)
    ]
    for n, pod in enumerate(pods):
        hits = plans_of(engine).hits
        assert patch_of(answer(engine, pod, uid=str(n))) == engine.mutate(pod).patch
        assert plans_of(engine).hits == hits + (1 if n >= 2 else 0), n
    assert engine.memo is not None and engine.memo.hits == 0  # every pod asked for new secrets


def test_pods_each_of_a_shape_no_other_pod_has_make_no_plans() -> None:
    """A plan is kept at the second sight of its rules with the same record of the pod: a
    pod of a shape no other has (here another number of env variables each) makes and
    sizes none, and pushes out none; two of one shape make one."""
    engine = Engine.from_config(None)
    for n in range(10):
        containers = [
            {"name": "main", "image": "task:1", "env": [{"name": f"E{i}", "value": "x"} for i in range(n)]}
        ]
        pod = flyte_pod({"group": f"new-{n}", "group_version": "1"}, containers=containers)
        assert patch_of(answer(engine, pod, uid=str(n))) == engine.mutate(pod).patch
    assert plans_of(engine).stats().entries == 0
    for n in range(3):
        pod = flyte_pod({"group": f"again-{n}", "group_version": "1"})
        assert patch_of(answer(engine, pod, uid=f"a{n}")) == engine.mutate(pod).patch
    assert plans_of(engine).stats().entries == 1 and plans_of(engine).hits == 1


def test_a_plan_fills_in_each_pods_own_items() -> None:
    engine = planning_at_first_sight(Engine.from_config(None))
    first = flyte_pod({"group": "alpha", "group_version": "1"})
    second = flyte_pod({"group": "beta", "group_version": "7", "key": "k"})
    answer(engine, first)
    patch = patch_of(answer(engine, second))
    assert plans_of(engine).hits == 1
    assert patch == engine.mutate(second).patch
    assert "beta" in str(patch) and "alpha" not in str(patch)


@pytest.mark.parametrize(
    "change",
    [
        lambda pod: pod["spec"].setdefault("initContainers", []).append({"name": "setup", "image": "i"}),
        lambda pod: (
            pod["spec"]["containers"][0]
            .setdefault("env", [])
            .insert(0, {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/x"})
        ),
        lambda pod: pod["spec"].setdefault("volumes", []).append({"name": "gcp-secret-vol", "emptyDir": {}}),
        lambda pod: pod["spec"]["containers"].append({"name": "gcp-pull-secret-0", "image": "i"}),
        lambda pod: (
            pod["spec"]["containers"][0]
            .setdefault("volumeMounts", [])
            .append({"name": "other", "mountPath": "/etc/flyte/secrets"})
        ),
    ],
)
def test_a_pod_of_another_shape_gets_no_plan(change: Any) -> None:
    engine = planning_at_first_sight(Engine.from_config(None))
    answer(engine, flyte_pod({"group": "alpha", "group_version": "1"}))
    other = flyte_pod({"group": "beta", "group_version": "1"})
    change(other)
    assert answer(engine, other) == answer(Engine.from_config(None), other)  # refusals too
    assert plans_of(engine).hits == 0


def test_another_number_of_secrets_is_another_plan() -> None:
    engine = planning_at_first_sight(Engine.from_config(None))
    answer(engine, flyte_pod({"group": "a", "group_version": "1"}))
    two = flyte_pod({"group": "b", "group_version": "1"}, {"group": "c", "group_version": "1"})
    assert patch_of(answer(engine, two)) == engine.mutate(two).patch
    assert plans_of(engine).hits == 0


@st.composite
def new_secret_families(draw: st.DrawFn) -> list[tuple[int, dict[str, Any], list[Req]]]:
    """Pods of a few shapes, each asking for secrets no pod before it asked for (as
    (shape number, pod, requests))."""
    shapes = [draw(task_pods()) for _ in range(draw(st.integers(1, 3)))]
    order = draw(st.lists(st.integers(0, len(shapes) - 1), min_size=2, max_size=8))
    family = []
    for n, i in enumerate(order):
        pod, wanted = shapes[i]
        if draw(st.booleans()):  # the same shape, or only the same number of secrets
            wanted = [dataclasses.replace(draw(requests), annotation=r.annotation) for r in wanted]
        pod, renamed = with_requests(_perturbed(pod, f"s{n}"), wanted, f"-{n}")
        family.append((i, pod, renamed))
    return family


ENGINES = {
    "default": Engine.from_config(None),
    "keyFiles, flyte2Requests, fileKeyRef, v1": Engine.from_config(
        {
            "secretpatch": {
                "flyte": "v1",
                "values": {"gcp": {"keyFiles": True, "flyte2Requests": True, "envVars": "fileKeyRef"}},
            }
        }
    ),
}


@SETTINGS
@given(new_secret_families(), st.sampled_from(sorted(ENGINES)))
def test_every_pod_with_new_secrets_gets_its_own_patch(
    family: list[tuple[int, dict[str, Any], list[Req]]], config: str
) -> None:
    loaded = ENGINES[config]
    engine = planning_at_first_sight(Engine(loaded.config, loaded.rules))
    for number, (_, pod, wanted) in enumerate(family):
        before = copy.deepcopy(pod)
        response = answer(engine, pod, uid=str(number))
        patch = patch_of(response)
        assert pod == before
        mutation = engine.mutate(pod)
        assert patch == mutation.patch
        # Byte for byte what encoding the operations gives (a plan writes its text itself).
        if mutation.patch:
            assert base64.b64decode(response["patch"]) == PatchEncoder()(mutation.patch)
        if config == "default":
            assert jsonpatch.apply_patch(pod, patch) == reference_mutate(pod, wanted)


def test_pods_of_one_shape_with_new_secrets_are_answered_from_plans() -> None:
    """Not only right: used. Every pod after the first of a shape gets a plan."""
    engine = planning_at_first_sight(Engine.from_config(None))
    base = flyte_pod(*[{"group": "g", "group_version": "1"}] * 3)
    wanted = [Req("g", "1", annotation=f"flyte.secrets/s{i}") for i in range(3)]
    for n in range(5):
        pod, renamed = with_requests(_perturbed(base, f"x{n}"), wanted, f"-{n}")
        patch = patch_of(answer(engine, pod, uid=str(n)))
        assert jsonpatch.apply_patch(pod, patch) == reference_mutate(pod, renamed)
    assert plans_of(engine).hits == 4


def _with_fragment(tmp_path: Path, entry: str, template: str) -> Engine:
    """The GCP rule with one more fragment (`entry`, whose template is gcp/extra.yaml.j2)."""
    (tmp_path / "rules").mkdir(parents=True)
    (tmp_path / "templates" / "gcp").mkdir(parents=True)
    rule = (ROOT / "rules" / "gcp.yaml").read_text()
    (tmp_path / "rules" / "gcp.yaml").write_text(rule + "  - template: gcp/extra.yaml.j2\n" + entry)
    (tmp_path / "templates" / "gcp" / "extra.yaml.j2").write_text(template)
    return planning_at_first_sight(
        Engine.from_config(
            {"secretpatch": {"rules": str(tmp_path / "rules"), "templates": str(tmp_path / "templates")}}
        )
    )


def test_a_mount_path_named_after_its_secret_is_looked_for_at_its_own_path(tmp_path: Path) -> None:
    """A mount where the container already mounts another volume is refused: a plan made
    where the path was free must not mount another pod's secret over the container's own."""
    engine = _with_fragment(
        tmp_path,
        "    merge: per-container\n    into: [containers]\n    field: volumeMounts\n",
        'name: "extra-{{ index }}"\nmountPath: "/s/{{ secret.group }}"\n',
    )
    pods = []
    for group in ("a", "b"):
        pod = flyte_pod({"group": group, "group_version": "1"})
        pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "own", "mountPath": "/s/b"}]
        pods.append(pod)
    fresh = _with_fragment(
        tmp_path / "fresh",
        "    merge: per-container\n    into: [containers]\n    field: volumeMounts\n",
        'name: "extra-{{ index }}"\nmountPath: "/s/{{ secret.group }}"\n',
    )
    answers = [answer(engine, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert answers == [answer(fresh, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert answers[0]["allowed"] and not answers[1]["allowed"]


def test_a_set_fragment_whose_values_differ_gets_no_plan_of_another(tmp_path: Path) -> None:
    """A metadata fragment's values are compared with the pod's, so its whole item is the
    shape: a label that names the secret is another shape for every secret."""
    engine = _with_fragment(
        tmp_path,
        "    merge: set\n    into: [labels]\n",
        'secretpatch.io/first: "{{ secret.group }}"\nsecretpatch.io/injected: "yes"\n',
    )
    pods = [flyte_pod({"group": group, "group_version": "1"}) for group in ("a", "b", "a")]
    for n, pod in enumerate(pods):
        patch = patch_of(answer(engine, pod, uid=str(n)))
        assert patch == engine.mutate(pod).patch
        assert {
            "op": "add",
            "path": "/metadata/labels/secretpatch.io~1first",
            "value": ["a", "b", "a"][n],
        } in patch
    assert plans_of(engine).hits == 1  # the third pod's label is the first's


def test_plans_stay_within_their_share_of_the_memo_budget() -> None:
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 200_000}}})
    for n in range(60):
        secrets = [{"group": f"g{n}-{i}", "group_version": "1"} for i in range(n % 7 + 1)]
        pod = flyte_pod(*secrets)
        pod["spec"]["containers"][0]["name"] = f"main{n % 5}"
        answer(engine, pod, uid=str(n))
        answer(engine, pod, uid=f"again-{n}")
    stats = {s.name: s for s in engine.cache_stats()}
    assert stats["plans"].budget == 50_000 and stats["memo"].budget == 150_000
    assert 0 < stats["plans"].bytes <= stats["plans"].budget
    assert stats["memo"].bytes <= stats["memo"].budget


def test_no_plans_without_a_memo() -> None:
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 0}}})
    assert engine._plans is None and engine.memo is None
    pod = flyte_pod({"group": "a", "group_version": "1"})
    assert patch_of(answer(engine, pod)) == engine.mutate(pod).patch


def test_an_item_named_after_its_secret_is_looked_for_by_its_own_name() -> None:
    """With envVars: fileKeyRef, a secret's variable is named after it, and a container that
    sets the variable keeps its own: a plan made where the variable was added must not add
    another pod's variable that its container already sets."""
    engine = planning_at_first_sight(
        Engine.from_config({"secretpatch": {"values": {"gcp": {"envVars": "fileKeyRef"}}}})
    )
    pods = []
    for variable in ("FIRST", "SECOND"):
        pod = flyte_pod(
            {"group": "g", "group_version": "1", "mount_requirement": "ENV_VAR", "env_var": variable}
        )
        pod["spec"]["containers"][0]["env"] = [{"name": "SECOND", "value": "the task's own"}]
        pods.append(pod)
    for n, pod in enumerate(pods):
        patch = patch_of(answer(engine, pod, uid=str(n)))
        assert patch == engine.mutate(pod).patch
    assert not [op for op in patch if "SECOND" in str(op.get("value"))]


def test_the_items_of_a_list_inside_a_rendered_container_are_part_of_its_shape(tmp_path: Path) -> None:
    """The env fragment puts FLYTE_SECRETS_DEFAULT_DIR first in every init container,
    removing one already there: a container rendered with one (a secret with a key) needs
    a remove that one rendered without it does not."""
    entry = "    merge: append\n    into: [initContainers]\n"
    template = (
        'name: "extra-{{ index }}"\nimage: x\n'
        "env: \"{{ [{'name': 'FLYTE_SECRETS_DEFAULT_DIR', 'value': 'mine'}] if secret.key else [] }}\"\n"
    )
    engine = _with_fragment(tmp_path, entry, template)
    fresh = _with_fragment(tmp_path / "fresh", entry, template)
    # The second secret's env fragment reaches the first secret's extra container.
    pods = [
        flyte_pod({"group": "g", "group_version": "1", **extra}, {"group": "h", "group_version": "1"})
        for extra in ({}, {"key": "k"})
    ]
    answers = [answer(engine, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert answers == [answer(fresh, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert '"remove"' in str(patch_of(answers[1])).replace("'", '"')


def test_siblings_of_a_pod_answered_from_a_plan_are_then_answered_from_the_memo() -> None:
    """A pod answered from a plan leaves its answer in the memo (with the plan's record,
    which holds for it), so its task's later pods get the memo's cheaper answer."""
    engine = planning_at_first_sight(remembering_at_first_sight(Engine.from_config(None)))
    answer(engine, flyte_pod({"group": "first", "group_version": "1"}))
    task = flyte_pod({"group": "task", "group_version": "1"})
    memo = engine.memo
    assert memo is not None
    first = patch_of(answer(engine, task, uid="a"))
    assert plans_of(engine).hits == 1
    sibling = _perturbed(task, "s")
    hits = memo.hits
    assert patch_of(answer(engine, sibling, uid="b")) == first == engine.mutate(sibling).patch
    assert memo.hits == hits + 1


def test_a_secret_that_fails_to_render_is_refused_as_composing_refuses_it(tmp_path: Path) -> None:
    """A plan renders each secret before using it; a render that fails (here, an environment
    string longer than exec takes) is left to composing, which refuses the pod as it always
    did."""
    entry = "    merge: per-container\n    into: [containers]\n    field: env\n"
    template = 'name: "V{{ index }}"\nvalue: "{{ secret.group * 600 }}"\n'
    engine = _with_fragment(tmp_path, entry, template)
    fresh = _with_fragment(tmp_path / "fresh", entry, template)
    pods = [flyte_pod({"group": group, "group_version": "1"}) for group in ("a", "b", "g" * 250)]
    answers = [answer(engine, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert answers == [answer(fresh, pod, uid=str(n)) for n, pod in enumerate(pods)]
    assert plans_of(engine).hits == 1
    assert not answers[2]["allowed"] and "Linux passes at most" in answers[2]["status"]["message"]


def test_threads_sharing_plans_get_the_patch_composing_gives() -> None:
    """Eight threads send pods of four shapes, each with secrets no pod asked for before,
    while plans are kept and replaced under them (two shapes per key, four shapes)."""
    engine = Engine.from_config({"secretpatch": {"limits": {"memoBytes": 1 << 20}}})
    engine._plans = ReviewMemo(max_bytes=1 << 18, shapes_per_key=2, name="plans")
    shapes = []
    for n in range(4):
        pod = flyte_pod({"group": "g", "group_version": "1"}, {"group": "h", "group_version": "2"})
        pod["spec"]["containers"][0]["env"] = [{"name": f"E{i}", "value": "x"} for i in range(n)]
        shapes.append(pod)

    def right(i: int, tag: str) -> bool:
        pod = copy.deepcopy(shapes[i % 4])
        wanted = [Req("g", "1", annotation="flyte.secrets/s0"), Req("h", "2", annotation="flyte.secrets/s1")]
        pod, _ = with_requests(pod, wanted, f"-{tag}")
        return patch_of(answer(engine, pod, uid=tag)) == engine.mutate(pod).patch

    assert answers_from_threads(right, [True] * 8, rounds=6) == []
    assert plans_of(engine).hits > 0
