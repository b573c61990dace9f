"""Property tests: random pods and secret requests against the reference mutation."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secretpatch import Engine, Rejected

from .conftest import annotation
from .kube import validate_pod
from .reference import Req, reference_mutate

ENGINE = Engine.from_config(None)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
env_vars = st.lists(
    st.builds(
        lambda name, value: {"name": name, "value": value},
        st.sampled_from(["FLYTE_SECRETS_DEFAULT_DIR", "FLYTE_SECRETS_FILE_PREFIX", "A", "B", "PATH"]),
        st.sampled_from(["", "x", "/etc/other"]),
    ),
    max_size=5,
)
mounts = st.lists(st.sampled_from(["gcp-secret-vol", "data", "cache"]), unique=True, max_size=3).map(
    lambda ns: [{"name": n, "mountPath": f"/mnt/{n}"} for n in ns]
)


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "task:1"}
    env = draw(st.one_of(st.none(), env_vars))
    if env is not None:
        container["env"] = env
    mount_list = draw(st.one_of(st.none(), mounts))
    if mount_list is not None:
        container["volumeMounts"] = mount_list
    return container


secret_ids = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
project_ids = st.from_regex(r"[a-z][a-z0-9-]{4,12}[a-z0-9]", fullmatch=True) | st.integers(1, 10**12).map(str)
groups = secret_ids | st.builds(lambda p, s: f"projects/{p}/secrets/{s}", project_ids, secret_ids)
aliases = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda a: a.lower() not in ("latest", "new")
)
versions = st.integers(1, 10**9).map(str) | st.just("latest") | aliases
requests = st.builds(
    Req,
    group=groups,
    group_version=versions,
    key=st.just("") | st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True),
    mount_requirement=st.sampled_from(["ANY", "FILE"]),
)


@st.composite
def task_pods(draw: st.DrawFn) -> tuple[dict[str, Any], list[Req]]:
    all_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    split = draw(st.integers(1, len(all_names)))
    main, init = all_names[:split], all_names[split:]
    wanted = draw(st.lists(requests, max_size=5))
    numbers = draw(st.lists(st.integers(0, 40), min_size=len(wanted), max_size=len(wanted), unique=True))
    annotations = {
        f"flyte.secrets/s{n}": annotation(
            group=r.group, group_version=r.group_version, key=r.key, mount_requirement=r.mount_requirement
        )
        for n, r in zip(numbers, wanted, strict=True)
    }
    spec: dict[str, Any] = {"containers": [draw(containers(n)) for n in main]}
    if init or draw(st.booleans()):
        spec["initContainers"] = [draw(containers(n)) for n in init]
    volumes = draw(st.one_of(st.none(), st.lists(st.sampled_from(["gcp-secret-vol", "data"]), unique=True)))
    if volumes is not None:
        spec["volumes"] = [{"name": v, "emptyDir": {}} for v in volumes]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"inject-flyte-secrets": "true"}, "annotations": annotations},
        "spec": spec,
    }
    in_order = [
        dataclasses.replace(r, annotation=f"flyte.secrets/s{n}")
        for n, r in sorted(zip(numbers, wanted, strict=True), key=lambda pair: pair[0])
    ]
    return pod, in_order


@SETTINGS
@given(task_pods())
def test_the_patch_applies_and_gives_the_reference_pod(case: tuple[dict[str, Any], list[Req]]) -> None:
    pod, wanted = case
    before = copy.deepcopy(pod)
    mutation = ENGINE.mutate(pod)
    assert pod == before, "the engine must not modify its input"
    applied = jsonpatch.apply_patch(pod, mutation.patch)
    assert applied == reference_mutate(pod, wanted)
    assert mutation.pod == applied
    validate_pod(applied)


BATCHED = {
    (k, profile): Engine.from_config(
        {"secretpatch": {"flyte": profile, "values": {"gcp": {"fetch": "batched", "fetchConcurrency": k}}}}
    )
    for k in range(1, 7)
    for profile in ("v2", "v1")
}


@SETTINGS
@given(task_pods(), st.integers(1, 6), st.sampled_from(["v2", "v1"]))
def test_a_batched_fetch_gives_the_per_secret_pod_with_one_fetcher(
    case: tuple[dict[str, Any], list[Req]], concurrency: int, profile: str
) -> None:
    """fetch: batched changes the init containers only: one fetcher where per-secret adds one
    per secret, in the first one's place and name; every file, path, env and mount is the same."""
    pod, wanted = case
    engine = BATCHED[(concurrency, profile)]
    applied = jsonpatch.apply_patch(pod, engine.mutate(pod).patch)
    assert applied == reference_mutate(pod, wanted, flyte=profile, batched=concurrency)
    validate_pod(applied)


@SETTINGS
@given(task_pods())
def test_the_patch_grows_linearly_with_the_secrets(case: tuple[dict[str, Any], list[Req]]) -> None:
    pod, wanted = case
    spec = pod["spec"]
    containers_touched = len(spec["containers"]) + len(spec.get("initContainers") or [])
    bound = 2 + len(wanted) * 6 + containers_touched * 6
    assert len(ENGINE.mutate(pod).patch) <= bound


SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
PROJECT_FORM = re.compile(
    r"projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[1-9][0-9]{0,19})/secrets/[A-Za-z0-9_-]{1,255}"
)
VERSION = re.compile(r"[1-9][0-9]{0,18}|latest|[A-Za-z][A-Za-z0-9_-]{0,62}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20))
def test_any_group_and_version_is_either_valid_or_refused(group: str, version: str) -> None:
    pod = {
        "metadata": {
            "labels": {"inject-flyte-secrets": "true"},
            "annotations": {"flyte.secrets/s0": annotation(group=group, group_version=version)},
        },
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    try:
        mutation = ENGINE.mutate(pod)
    except Rejected as exc:
        assert exc.message.isascii() and "\n" not in exc.message
        return
    assert SECRET_ID.fullmatch(group) or PROJECT_FORM.fullmatch(group)
    assert VERSION.fullmatch(version) and version.lower() != "new"
    assert mutation.injected[0].texts["command"].count(";") == 1


ENV_FILES = Engine.from_config({"secretpatch": {"values": {"gcp": {"envVars": "fileKeyRef"}}}})


@SETTINGS
@given(task_pods())
def test_env_vars_from_files_change_nothing_for_secrets_read_from_files(
    case: tuple[dict[str, Any], list[Req]],
) -> None:
    """With envVars: fileKeyRef a second fragment writes containers' env; requests that name
    no variable (the strategy's: ANY or FILE, no env_var) get exactly the default pod, so
    the env fragment is still merged once per container (rules.model.mark_skippable)."""
    pod, _ = case
    try:
        expected = ENGINE.mutate(pod).patch
    except Rejected:
        return
    assert ENV_FILES.mutate(pod).patch == expected


PATHS = {
    (keys, flyte2): Engine.from_config(
        {"secretpatch": {"values": {"gcp": {"fetch": "batched", "keyFiles": keys, "flyte2Requests": flyte2}}}}
    ).rules[0]
    for keys in (False, True)
    for flyte2 in (False, True)
}


@SETTINGS
@given(requests, st.booleans(), st.booleans(), st.booleans())
def test_the_path_text_is_where_the_gcloud_line_writes(
    req: Req, keys: bool, flyte2: bool, no_version: bool
) -> None:
    """gcp/path.txt.j2 (texts.path: the env of a FILE request, the batched jobs) and
    command.sh.j2 (the gcloud line, which computes its path itself to stay fast) agree, with
    every switch that moves the file."""
    from secretpatch.core.requests import SecretRequest

    rule = PATHS[(keys, flyte2)]
    version = "" if no_version and flyte2 else req.group_version
    key = req.key or ("k" if no_version and flyte2 else "")
    request = SecretRequest("flyte.secrets/s0", req.group, version, key, req.mount_requirement)
    texts = rule.render(request, 0, {}).texts
    assert f"--out-file={texts['path']}" in texts["command"]
